#!/usr/bin/env bash
# Fuzzing simdnet (targets in fuzz/fuzz_targets: idx, checkpoint, gemm, gzip, arch).
#
#   scripts/fuzz.sh SECONDS [TARGET...]  run each target (default: all) for SECONDS, one after another
#   scripts/fuzz.sh build                build every target: `cargo +nightly fuzz build` (sanitizer, libFuzzer)
#                                        where cargo-fuzz is installed, else a plain `cargo build` of fuzz/
#                                        (checks that the targets compile and link; they cannot fuzz then)
#   scripts/fuzz.sh smoke                build, then run each target for 30 s where cargo-fuzz is installed (CI);
#                                        without it, replay the seeds through the plain build
#
# Each run starts from the committed seeds (fuzz/seeds/TARGET, read-only) and
# grows fuzz/corpus/TARGET (git-ignored). A crash stops the script with a
# non-zero status; the input lands in fuzz/artifacts/TARGET. The last lines of
# each run (libFuzzer's "Done N runs in S second(s)") go to fuzz/logs/TARGET.log.
# Environment: FUZZ_ARGS adds libFuzzer flags (e.g. FUZZ_ARGS=-rss_limit_mb=4096);
# FUZZ_SANITIZER picks cargo-fuzz's sanitizer (default address; `smoke` uses
# none, whose build takes a minute instead of ten with the SIMD kernels, while
# the coverage-guided fuzzing and every assertion stay the same).
set -euo pipefail
sanitizer="${FUZZ_SANITIZER:-address}"
if [ "${1:-}" = smoke ]; then sanitizer="${FUZZ_SANITIZER:-none}"; fi

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root/fuzz"
all_targets=(idx checkpoint gemm gzip arch)

have_fuzz() {
    cargo +nightly fuzz --version >/dev/null 2>&1
}

build() {
    if have_fuzz; then
        cargo +nightly fuzz build -s "$sanitizer"
    else
        echo "fuzz: cargo +nightly fuzz unavailable (rustup toolchain install nightly; cargo install cargo-fuzz):" \
            "building the targets without instrumentation" >&2
        cargo build --release --bins
    fi
}

need_fuzz() {
    if ! have_fuzz; then
        echo "fuzz: running targets needs cargo +nightly fuzz (rustup toolchain install nightly; cargo install cargo-fuzz)" >&2
        exit 1
    fi
}

run_one() {
    local target="$1" seconds="$2"
    mkdir -p "corpus/$target" logs
    echo "fuzz: $target for ${seconds}s"
    # shellcheck disable=SC2086
    cargo +nightly fuzz run -s "$sanitizer" "$target" "corpus/$target" "seeds/$target" -- \
        -max_total_time="$seconds" -print_final_stats=1 ${FUZZ_ARGS:-} 2>&1 | tee "logs/$target.log" |
        grep -E '^(Done|stat::|INFO: Seed|==[0-9]+== ERROR|SUMMARY)' || true
    # tee hides cargo's status: the log says whether libFuzzer found a crash.
    if grep -qE '(==[0-9]+== ERROR|panicked at|deadly signal|Test unit written)' "logs/$target.log"; then
        echo "fuzz: $target FAILED, see fuzz/logs/$target.log and fuzz/artifacts/$target" >&2
        return 1
    fi
}

case "${1:-}" in
    build)
        build
        ;;
    smoke)
        build
        if have_fuzz; then
            for t in "${all_targets[@]}"; do run_one "$t" 30; done
        else
            # Uninstrumented binaries still replay inputs: every seed (and the
            # local corpus, if any) must pass.
            for t in "${all_targets[@]}"; do
                mkdir -p "corpus/$t"
                echo "fuzz: $t: replaying seeds and corpus (no cargo-fuzz: no fuzzing)"
                mkdir -p "artifacts/$t"
                "target/release/$t" -runs=0 -artifact_prefix="artifacts/$t/" "corpus/$t" "seeds/$t"
            done
        fi
        ;;
    '' | -h | --help)
        sed -n '2,15p' "$root/scripts/fuzz.sh"
        ;;
    *[!0-9]*)
        echo "usage: scripts/fuzz.sh SECONDS [TARGET...] | build | smoke" >&2
        exit 2
        ;;
    *)
        seconds="$1"
        shift
        targets=("$@")
        if [ ${#targets[@]} -eq 0 ]; then targets=("${all_targets[@]}"); fi
        need_fuzz
        build
        for t in "${targets[@]}"; do run_one "$t" "$seconds"; done
        ;;
esac
