#!/usr/bin/env bash
# Side-by-side speed of simdnet, PyTorch and Keras on the book's chapter-8
# CNN (scripts/torch_cnn.py, scripts/keras_cnn.py: same model, batch 32,
# Adam), alternating runs in one sitting; prints each round's samples/s and
# the ratio of the best figures. Frameworks that the python lacks are skipped.
# Needs a python3 with numpy and torch and/or tensorflow (PYTHON=path/to/python).
#   scripts/compare_frameworks.sh [ROUNDS] [THREADS]
set -euo pipefail
cd "$(dirname "$0")/.."
rounds="${1:-3}"
threads="${2:-1}"
py="${PYTHON:-python3}"
die() { echo "compare_frameworks.sh: $*" >&2; exit 1; }
command -v "$py" >/dev/null || die "$py is not installed"
"$py" -c 'import numpy' 2>/dev/null || die "$py lacks numpy: pip install numpy (or set PYTHON)"
frameworks=()
"$py" -c 'import torch' 2>/dev/null && frameworks+=(torch)
"$py" -c 'import tensorflow, keras' 2>/dev/null && frameworks+=(keras)
[[ ${#frameworks[@]} -gt 0 ]] || die "$py has neither torch nor tensorflow: pip install torch tensorflow"
cargo build --release -q
declare -A best=([simdnet]=0)
for f in "${frameworks[@]}"; do best[$f]=0; done
for r in $(seq "$rounds"); do
    s=$(target/release/simdnet bench --arch cnn --threads "$threads" --seconds 1 2>/dev/null |
        sed -nE 's/^Training step.* = ([0-9]+) samples\/s.*/\1/p')
    [[ -n "$s" ]] || die "simdnet bench printed no training step figure"
    line="round $r ($threads thread(s)): simdnet $s"
    (( s > best[simdnet] )) && best[simdnet]=$s
    for f in "${frameworks[@]}"; do
        t=$("$py" "scripts/${f}_cnn.py" --threads "$threads" --seconds 8 2>/dev/null |
            "$py" -c 'import json,sys; print(json.load(sys.stdin)["best_samples_per_s"])') ||
            die "scripts/${f}_cnn.py failed"
        line+=", $f $t"
        (( t > best[$f] )) && best[$f]=$t
    done
    echo "$line samples/s"
done
for f in "${frameworks[@]}"; do
    "$py" -c "print(f'best: simdnet {${best[simdnet]}:,} samples/s, $f {${best[$f]}:,} samples/s, ratio {${best[simdnet]}/${best[$f]}:.2f}x')"
done
