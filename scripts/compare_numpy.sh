#!/usr/bin/env bash
# Side-by-side speed of simdnet and the numpy reference trainer
# (scripts/numpy_reference.py: same model, batch 32, Adam, one thread),
# alternating runs in one sitting; prints each run's best epoch and the ratio
# of the best figures. Needs python3 with numpy and threadpoolctl
# (pip install numpy threadpoolctl).
#   scripts/compare_numpy.sh [ROUNDS] [PATH/TO/numpy_reference.py]
set -euo pipefail
cd "$(dirname "$0")/.."
rounds="${1:-2}"
ref="${2:-scripts/numpy_reference.py}"
die() { echo "compare_numpy.sh: $*" >&2; exit 1; }
[[ -f "$ref" ]] || die "no reference trainer at $ref"
command -v python3 >/dev/null || die "python3 is not installed (the reference trainer is a Python script)"
python3 -c 'import numpy, threadpoolctl' 2>/dev/null ||
    die "python3 lacks numpy or threadpoolctl: pip install numpy threadpoolctl"
cargo build --release -q
best_simd=0 best_np=0
for r in $(seq "$rounds"); do
    s=$(target/release/simdnet --no-tui --threads 1 --epochs 3 |
        grep '^Epoch' | sed -E 's/.* ([0-9.]+)k samples\/s.*/\1/' | sort -g | tail -1)
    s=$(python3 -c "print(round($s * 1000))")
    n=$(env -u OPENBLAS_CORETYPE -u OPENBLAS_L2_SIZE python3 "$ref" --data data/fashion-mnist --epochs 3 --threads 1 |
        tail -1 | python3 -c 'import json,sys; print(json.load(sys.stdin)["best_samples_per_s"])')
    echo "round $r: simdnet $s samples/s, numpy $n samples/s"
    best_simd=$(( s > best_simd ? s : best_simd )); best_np=$(( n > best_np ? n : best_np ))
done
python3 -c "print(f'best: simdnet {$best_simd:,} samples/s, numpy+OpenBLAS {$best_np:,} samples/s, ratio {$best_simd/$best_np:.2f}x')"
