#!/usr/bin/env bash
# Regenerates docs/dashboard*.txt, the dashboard captures the README shows:
# a one-thread default run at 100×32 in a private tmux server, captured once
# it has finished, on the curves, confusion-matrix and samples panels.
#   scripts/capture_dashboard.sh
set -euo pipefail
cd "$(dirname "$0")/.."
command -v tmux >/dev/null || { echo "capture_dashboard.sh: needs tmux (apt-get install -y tmux)" >&2; exit 1; }
cargo build --release -q
sock="simdnet-capture-$$"
trap 'tmux -L "$sock" kill-server 2>/dev/null || true' EXIT
tmux -L "$sock" new-session -d -x 100 -y 32 "target/release/simdnet --threads 1"
for _ in $(seq 600); do
    tmux -L "$sock" capture-pane -p | grep -q ' done  q quit' && break
    sleep 0.1
done
tmux -L "$sock" capture-pane -p | grep -q ' done  q quit' || { echo "capture_dashboard.sh: the run did not finish" >&2; exit 1; }
capture() { sleep 0.5; tmux -L "$sock" capture-pane -p | sed -e 's/[[:space:]]*$//' >"$1"; }
capture docs/dashboard.txt
tmux -L "$sock" send-keys Tab; capture docs/dashboard-confusion.txt
tmux -L "$sock" send-keys Tab; capture docs/dashboard-samples.txt
tmux -L "$sock" send-keys q
grep -h 'test accuracy' docs/dashboard.txt
