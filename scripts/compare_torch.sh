#!/usr/bin/env bash
# Side-by-side speed of simdnet and PyTorch on the book's chapter-8 CNN
# (scripts/torch_cnn.py: same model, batch 32, Adam), alternating runs in one
# sitting; prints each round's samples/s and the ratio of the best figures.
# Needs a python3 with torch and numpy (PYTHON=path/to/python to pick one).
#   scripts/compare_torch.sh [ROUNDS] [THREADS]
set -euo pipefail
cd "$(dirname "$0")/.."
rounds="${1:-3}"
threads="${2:-1}"
py="${PYTHON:-python3}"
die() { echo "compare_torch.sh: $*" >&2; exit 1; }
command -v "$py" >/dev/null || die "$py is not installed"
"$py" -c 'import torch, numpy' 2>/dev/null || die "$py lacks torch or numpy: pip install torch numpy (or set PYTHON)"
cargo build --release -q
best_simd=0 best_torch=0
for r in $(seq "$rounds"); do
    s=$(target/release/simdnet bench --arch cnn --threads "$threads" --seconds 1 2>/dev/null |
        sed -nE 's/^Training step.* = ([0-9]+) samples\/s.*/\1/p')
    [[ -n "$s" ]] || die "simdnet bench printed no training step figure"
    t=$("$py" scripts/torch_cnn.py --threads "$threads" --seconds 8 |
        "$py" -c 'import json,sys; print(json.load(sys.stdin)["best_samples_per_s"])')
    echo "round $r: simdnet $s samples/s, pytorch $t samples/s ($threads thread(s))"
    best_simd=$(( s > best_simd ? s : best_simd )); best_torch=$(( t > best_torch ? t : best_torch ))
done
"$py" -c "print(f'best: simdnet {$best_simd:,} samples/s, PyTorch {$best_torch:,} samples/s, ratio {$best_simd/$best_torch:.2f}x')"
