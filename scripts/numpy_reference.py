#!/usr/bin/env python3
"""Reference trainer in numpy for side-by-side speed comparisons.

Trains the tutorial model (784 -> Dense(100, relu) -> Dense(10, softmax)) on the
Fashion-MNIST IDX files with Adam in Keras' form (lr 1e-3, beta1 0.9, beta2 0.999,
eps 1e-7), float32, glorot-uniform init, and prints one line per epoch and a final
JSON line with samples/s. It is a yardstick, not part of the product
(scripts/compare_numpy.sh runs it beside simdnet).

Usage:
  pip install numpy threadpoolctl
  env -u OPENBLAS_CORETYPE -u OPENBLAS_L2_SIZE \
      python3 scripts/numpy_reference.py [--data DIR] [--epochs 3] [--batch 32] [--threads 1]

(OPENBLAS_CORETYPE / OPENBLAS_L2_SIZE, when set on a machine, slow numpy's OpenBLAS;
unset them for this command only.)
"""
import argparse, gzip, json, os, struct, time
import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))

def read_idx(path):
    opener = gzip.open if path.endswith(".gz") else open
    with opener(path, "rb") as f:
        b = f.read()
    nd = b[3]
    dims = struct.unpack(">" + "I" * nd, b[4:4 + 4 * nd])
    return np.frombuffer(b, np.uint8, offset=4 + 4 * nd).reshape(dims)

def find(d, stem):
    for name in (stem, stem + ".gz"):
        p = os.path.join(d, name)
        if os.path.exists(p):
            return p
    raise SystemExit(f"missing {stem}[.gz] in {d}")

def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--data", default=os.path.join(HERE, "..", "data", "fashion-mnist"))
    ap.add_argument("--epochs", type=int, default=3)
    ap.add_argument("--batch", type=int, default=32)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--validation-split", type=float, default=0.2)
    a = ap.parse_args()

    x = read_idx(find(a.data, "train-images-idx3-ubyte")).reshape(-1, 784).astype(np.float32) / 255
    y = read_idx(find(a.data, "train-labels-idx1-ubyte")).astype(np.int64)
    rng = np.random.default_rng(42)
    perm = rng.permutation(len(x))
    nval = int(len(x) * a.validation_split)
    xv, yv, xt, yt = x[perm[:nval]], y[perm[:nval]], x[perm[nval:]], y[perm[nval:]]

    def glorot(i, o):
        lim = np.sqrt(6.0 / (i + o))
        return rng.uniform(-lim, lim, (i, o)).astype(np.float32)
    P = [glorot(784, 100), np.zeros(100, np.float32), glorot(100, 10), np.zeros(10, np.float32)]
    M = [np.zeros_like(p) for p in P]
    V = [np.zeros_like(p) for p in P]

    def forward(xb):
        h = xb @ P[0] + P[1]
        r = np.maximum(h, 0)
        z = r @ P[2] + P[3]
        z -= z.max(1, keepdims=True)
        e = np.exp(z)
        return h, r, e / e.sum(1, keepdims=True)

    import threadpoolctl
    t = 0
    best = None
    with threadpoolctl.threadpool_limits(a.threads, user_api="blas"):
        for ep in range(a.epochs):
            t0 = time.perf_counter()
            order = rng.permutation(len(xt))
            for i in range(0, len(xt), a.batch):
                idx = order[i:i + a.batch]
                xb, yb = xt[idx], yt[idx]
                h, r, p = forward(xb)
                dz = p
                dz[np.arange(len(yb)), yb] -= 1
                dz /= np.float32(len(yb))
                dr = dz @ P[2].T
                dr *= h > 0
                G = [xb.T @ dr, dr.sum(0), r.T @ dz, dz.sum(0)]
                t += 1
                alpha = np.float32(1e-3 * np.sqrt(1 - 0.999 ** t) / (1 - 0.9 ** t))
                for p_, g, m, v in zip(P, G, M, V):
                    m += (g - m) * np.float32(0.1)
                    v += (g * g - v) * np.float32(0.001)
                    p_ -= alpha * m / (np.sqrt(v) + np.float32(1e-7))
            dt = time.perf_counter() - t0
            _, _, pv = forward(xv)
            acc = float((pv.argmax(1) == yv).mean())
            sps = len(xt) / dt
            best = sps if best is None else max(best, sps)
            print(f"epoch {ep + 1}/{a.epochs} {dt:.2f}s {sps:,.0f} samples/s val_accuracy {acc:.4f}", flush=True)
    print(json.dumps({"impl": "numpy", "numpy": np.__version__, "batch": a.batch, "threads": a.threads,
                      "best_samples_per_s": round(best), "val_accuracy": round(acc, 4)}))

if __name__ == "__main__":
    main()
