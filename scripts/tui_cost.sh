#!/usr/bin/env bash
# What the dashboard costs: the same training run (tutorial model, 1 thread)
# headless and under the dashboard in a tmux pane, alternating; compares the
# mean per-epoch samples/s each run wrote to its --metrics file.
#   scripts/tui_cost.sh [ROUNDS] [EPOCHS]
set -euo pipefail
cd "$(dirname "$0")/.."
rounds="${1:-3}" epochs="${2:-5}"
cargo build --release -q
bin="$PWD/target/release/simdnet"
out=$(mktemp -d)
mean() { python3 -c "import csv,sys; r=list(csv.DictReader(open(sys.argv[1]))); print(sum(float(x['samples_per_second']) for x in r)/len(r))" "$1"; }
for r in $(seq "$rounds"); do
    "$bin" --no-tui --threads 1 --epochs "$epochs" --metrics "$out/headless$r.csv" >/dev/null
    tmux -L simdnet-cost new-session -d -x 120 -y 40 "$bin --threads 1 --epochs $epochs --metrics $out/tui$r.csv"
    lines() { if [ -f "$1" ]; then wc -l < "$1"; else echo 0; fi; }
    while [ "$(lines "$out/tui$r.csv")" -le "$epochs" ]; do sleep 0.2; done
    tmux -L simdnet-cost send-keys q 2>/dev/null || true; sleep 0.5; tmux -L simdnet-cost kill-server 2>/dev/null || true
    echo "round $r: headless $(mean "$out/headless$r.csv") samples/s, dashboard $(mean "$out/tui$r.csv") samples/s"
done
python3 - "$out" "$rounds" <<'PY'
import csv, sys
out, rounds = sys.argv[1], int(sys.argv[2])
def mean(p):
    r = list(csv.DictReader(open(p))); return sum(float(x["samples_per_second"]) for x in r) / len(r)
h = sum(mean(f"{out}/headless{r}.csv") for r in range(1, rounds + 1)) / rounds
t = sum(mean(f"{out}/tui{r}.csv") for r in range(1, rounds + 1)) / rounds
print(f"mean over {rounds} rounds: headless {h:,.0f} samples/s, dashboard {t:,.0f} samples/s, cost {100 * (h - t) / h:+.1f}%")
PY
