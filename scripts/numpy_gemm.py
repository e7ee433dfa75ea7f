#!/usr/bin/env python3
"""numpy (OpenBLAS) SGEMM GFLOP/s on simdnet bench's square shapes, one thread.

    python3 scripts/numpy_gemm.py [ROUNDS] [SECONDS] [N]...

(N: only those squares.) `scripts/gemm_compare` runs it once per round, so
its table has an OpenBLAS column measured in the same sitting.

Best time per call over chunks of calls, as `simdnet bench` times its own
GEMM. Only the squares: for the MLP's small products numpy's per-call
overhead (about a microsecond) is a large share of the time, so those
figures would measure Python rather than OpenBLAS.
"""
import os
import sys
import time

# Must be set before numpy loads OpenBLAS.
os.environ["OPENBLAS_NUM_THREADS"] = "1"
import numpy as np  # noqa: E402

SQUARES = [64, 128, 256, 512, 1024]


def best_gflops(n, seconds, rng):
    a = rng.random((n, n), dtype=np.float32) - 0.5
    b = rng.random((n, n), dtype=np.float32) - 0.5
    c = np.empty((n, n), dtype=np.float32)
    np.matmul(a, b, out=c)  # warm up
    per_chunk = max(1, int(2e7 / n**3))
    best = float("inf")
    end = time.perf_counter() + seconds
    while time.perf_counter() < end:
        t = time.perf_counter()
        for _ in range(per_chunk):
            np.matmul(a, b, out=c)
        best = min(best, (time.perf_counter() - t) / per_chunk)
    return 2 * n**3 / best / 1e9


def main():
    rounds = int(sys.argv[1]) if len(sys.argv) > 1 else 3
    seconds = float(sys.argv[2]) if len(sys.argv) > 2 else 0.25
    sizes = [int(a) for a in sys.argv[3:]] or SQUARES
    rng = np.random.default_rng(1)
    best = {n: 0.0 for n in sizes}
    for _ in range(rounds):
        for n in sizes:
            best[n] = max(best[n], best_gflops(n, seconds, rng))
    cfg = np.show_config(mode="dicts")["Build Dependencies"]["blas"]
    print(f"numpy {np.__version__}, {cfg.get('name')} {cfg.get('version')}, one thread, best of {rounds} rounds")
    for n in sizes:
        print(f"{n}x{n}x{n}: {best[n]:.1f} GFLOP/s")


if __name__ == "__main__":
    main()
