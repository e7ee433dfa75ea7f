#!/usr/bin/env bash
# A/B one SGEMM shape between two commits, alternating runs in one sitting
# and keeping each build's best (the host's noise only ever slows a run down).
#   scripts/gemm_ab.sh REV_A REV_B ROUNDS M N K [--trans-a | --trans-b]
# Each revision is built in its own worktree and target directory under
# ${TMPDIR:-/tmp}/simdnet-ab (release profile without LTO, for quick rebuilds).
set -euo pipefail
cd "$(dirname "$0")/.."
if [ $# -lt 6 ]; then
    echo "usage: scripts/gemm_ab.sh REV_A REV_B ROUNDS M N K [--trans-a | --trans-b]" >&2
    exit 2
fi
rev_a=$1 rev_b=$2 rounds=$3; shift 3
work="${TMPDIR:-/tmp}/simdnet-ab"
mkdir -p "$work"
bins=()
for rev in "$rev_a" "$rev_b"; do
    sha=$(git rev-parse --short "$rev")
    tree="$work/tree-$sha"
    [ -d "$tree" ] || git worktree add -q --detach "$tree" "$sha"
    # The example may postdate the revision under test.
    mkdir -p "$tree/examples" && cp examples/gemm_shape.rs "$tree/examples/"
    (cd "$tree" && CARGO_TARGET_DIR="$work/target-$sha" CARGO_PROFILE_RELEASE_LTO=false \
        CARGO_PROFILE_RELEASE_CODEGEN_UNITS=4 cargo build -q --release --example gemm_shape)
    bins+=("$work/target-$sha/release/examples/gemm_shape")
done
best_a=0 best_b=0
for r in $(seq "$rounds"); do
    a=$("${bins[0]}" "$@" | sed -E 's/.*: ([0-9.]+) GFLOP.*/\1/')
    b=$("${bins[1]}" "$@" | sed -E 's/.*: ([0-9.]+) GFLOP.*/\1/')
    echo "round $r: $rev_a $a GFLOP/s, $rev_b $b GFLOP/s"
    best_a=$(python3 -c "print(max($best_a, $a))"); best_b=$(python3 -c "print(max($best_b, $b))")
done
echo "best: $rev_a $best_a GFLOP/s, $rev_b $best_b GFLOP/s ($*)"
