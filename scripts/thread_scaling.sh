#!/usr/bin/env bash
# How training and the GEMM scale with threads: for each round, batch size and
# thread count, a 3-epoch headless run of the tutorial model (best epoch's
# samples/s), then `simdnet bench` on each thread count.
#   scripts/thread_scaling.sh [BIN] [ROUNDS] [THREAD COUNTS...]
# BIN defaults to target/release/simdnet (built if missing); thread counts
# default to 1, 2 and every power of two up to the machine's cores.
set -euo pipefail
cd "$(dirname "$0")/.."
bin="${1:-target/release/simdnet}"
rounds="${2:-2}"
shift $(( $# < 2 ? $# : 2 ))
if [ ! -x "$bin" ]; then cargo build --release -q; bin=target/release/simdnet; fi
threads=("$@")
if [ ${#threads[@]} -eq 0 ]; then
    t=1; while [ "$t" -le "$(nproc)" ]; do threads+=("$t"); t=$((t * 2)); done
fi
echo "machine: $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | xargs), $(nproc) CPUs"
for r in $(seq "$rounds"); do
    for b in 32 256 1024; do
        for t in "${threads[@]}"; do
            best=$("$bin" --no-tui --threads "$t" --batch-size "$b" --epochs 3 |
                grep '^Epoch' | sed -E 's/.* ([0-9.]+)k samples\/s.*/\1/' | sort -g | tail -1)
            echo "round $r batch $b threads $t: ${best}k samples/s"
        done
    done
done
for t in "${threads[@]}"; do
    echo "--- bench --threads $t"
    "$bin" bench --threads "$t" --seconds 0.2
done
