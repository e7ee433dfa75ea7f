#!/usr/bin/env python3
"""The book's chapter-8 CNN in PyTorch, timed like `simdnet bench --arch cnn`:
training steps (forward, cross-entropy, backward, Adam) at batch 32 on
Fashion-MNIST images, best samples/s over chunks of steps. Prints one JSON
line. Used by scripts/compare_frameworks.sh.

    python3 scripts/torch_cnn.py [--threads N] [--seconds S] [--data DIR]
"""
import argparse, gzip, json, os, time

import numpy as np
import torch
from torch import nn


def images(path):
    with gzip.open(path, "rb") as f:
        data = f.read()
    n, rows, cols = (int.from_bytes(data[i:i + 4], "big") for i in (4, 8, 12))
    return np.frombuffer(data, np.uint8, offset=16).reshape(n, 1, rows, cols)


def labels(path):
    with gzip.open(path, "rb") as f:
        return np.frombuffer(f.read(), np.uint8, offset=8)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--seconds", type=float, default=8.0)
    ap.add_argument("--batch-size", type=int, default=32)
    ap.add_argument("--data", default="data/fashion-mnist")
    a = ap.parse_args()
    torch.set_num_threads(a.threads)
    torch.manual_seed(42)
    x_all = torch.from_numpy(images(os.path.join(a.data, "train-images-idx3-ubyte.gz")).astype(np.float32) / 255.0)
    y_all = torch.from_numpy(labels(os.path.join(a.data, "train-labels-idx1-ubyte.gz")).astype(np.int64))
    # Keras' model: same padding, relu convs, 2x2 pools, dense 100 relu, dropout 0.4, dense 10.
    model = nn.Sequential(
        nn.Conv2d(1, 32, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
        nn.Conv2d(32, 64, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
        nn.Flatten(), nn.Linear(3136, 100), nn.ReLU(), nn.Dropout(0.4), nn.Linear(100, 10),
    )
    opt = torch.optim.Adam(model.parameters(), lr=1e-3, eps=1e-7)
    loss_fn = nn.CrossEntropyLoss()
    b = a.batch_size
    order = torch.randperm(x_all.shape[0])
    pos = 0

    def step():
        nonlocal pos
        if pos + b > len(order):
            pos = 0
        idx = order[pos:pos + b]
        pos += b
        opt.zero_grad(set_to_none=True)
        loss = loss_fn(model(x_all[idx]), y_all[idx])
        loss.backward()
        opt.step()

    for _ in range(20):  # warm up oneDNN's primitive caches
        step()
    best, start = 0.0, time.perf_counter()
    while time.perf_counter() - start < a.seconds:
        t, n = time.perf_counter(), 50
        for _ in range(n):
            step()
        best = max(best, n * b / (time.perf_counter() - t))
    print(json.dumps({"framework": f"pytorch {torch.__version__}", "threads": a.threads,
                      "batch": b, "best_samples_per_s": round(best)}))


if __name__ == "__main__":
    main()
