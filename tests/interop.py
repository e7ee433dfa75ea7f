#!/usr/bin/env python3
"""Interoperability check: a model saved by simdnet loads in Python with the
`safetensors` package and numpy, and a numpy forward pass over the test set
gives the accuracy (and loss) that `simdnet eval` prints.

    pip install safetensors numpy
    python3 tests/interop.py [--simdnet BIN] [--model PATH] [--data DIR] [--accuracy A]

Without --model, the script trains a small model with BIN (`--save`, dropout
on, 1 epoch); without --data, it writes a small learnable synthetic data set
to a temporary directory; without --accuracy, it runs `BIN eval` and reads
its `test_accuracy`. BIN defaults to $CARGO_TARGET_DIR/release/simdnet, else
target/release/simdnet beside this script's repository.

Exit status: 0 when numpy agrees with simdnet to 4 decimals, 1 when it does
not, 2 when the check cannot run (missing file, bad arguments, failing binary).
"""

import argparse
import gzip
import json
import os
import re
import struct
import subprocess
import sys
import tempfile

import numpy as np
from safetensors import safe_open
from safetensors.numpy import load_file

IMAGE_MAGIC, LABEL_MAGIC = 0x00000803, 0x00000801


def fail(message, code=2):
    print(f"interop: {message}", file=sys.stderr)
    sys.exit(code)


def read_idx(directory, name, magic):
    """An IDX file (raw or .gz) as a numpy uint8 array shaped by its header."""
    for path, opener in ((os.path.join(directory, name), open), (os.path.join(directory, name + ".gz"), gzip.open)):
        if os.path.exists(path):
            with opener(path, "rb") as f:
                data = f.read()
            break
    else:
        fail(f"{directory}: no {name} (raw or .gz)")
    (got,) = struct.unpack(">I", data[:4])
    if got != magic:
        fail(f"{path}: magic {got:#010x}, expected {magic:#010x}")
    ndim = magic & 0xFF
    dims = struct.unpack(">" + "I" * ndim, data[4 : 4 + 4 * ndim])
    body = np.frombuffer(data, dtype=np.uint8, offset=4 + 4 * ndim)
    if body.size != int(np.prod(dims)):
        fail(f"{path}: {body.size} bytes of data for dimensions {dims}")
    return body.reshape(dims)


def write_synthetic(directory, train=2000, test=500, classes=10, rows=28, cols=28, seed=1):
    """Learnable images: class c lights a band of rows, over noise."""
    rng = np.random.default_rng(seed)
    band = rows // classes
    for prefix, n in (("train", train), ("t10k", test)):
        labels = rng.integers(0, classes, n).astype(np.uint8)
        images = rng.integers(0, 140, (n, rows, cols)).astype(np.uint8)
        for i, c in enumerate(labels):
            lit = rng.random((band, cols)) < 0.25
            block = images[i, c * band : (c + 1) * band]
            block[lit] = rng.integers(100, 256, lit.sum())
        with open(os.path.join(directory, f"{prefix}-images-idx3-ubyte"), "wb") as f:
            f.write(struct.pack(">IIII", IMAGE_MAGIC, n, rows, cols) + images.tobytes())
        with open(os.path.join(directory, f"{prefix}-labels-idx1-ubyte"), "wb") as f:
            f.write(struct.pack(">II", LABEL_MAGIC, n) + labels.tobytes())


def load_model(path):
    """The Dense layers [(kernel [in, out], bias [out])] and the metadata."""
    with safe_open(path, framework="np") as f:
        meta = f.metadata() or {}
    tensors = load_file(path)
    if meta.get("format") != "simdnet-mlp-v1":
        fail(f"{path}: metadata format {meta.get('format')!r} is not simdnet-mlp-v1")
    hidden = [int(h) for h in meta["hidden"].split(",") if h]
    layers = []
    for i in range(len(hidden) + 1):
        name = "dense" if i == 0 else f"dense_{i}"
        kernel, bias = tensors[f"{name}.kernel"], tensors[f"{name}.bias"]
        if kernel.dtype != np.float32 or bias.dtype != np.float32:
            fail(f"{path}: {name} is {kernel.dtype}/{bias.dtype}, expected float32")
        layers.append((kernel, bias))
    if len(tensors) != 2 * len(layers):
        fail(f"{path}: {len(tensors)} tensors for {len(layers)} layers")
    return layers, meta


def forward(layers, activation, x):
    """Logits of Flatten -> Dense(act) ... -> Dense (softmax in the loss); float32."""
    for i, (kernel, bias) in enumerate(layers):
        x = x @ kernel + bias
        if i + 1 < len(layers):
            x = np.maximum(x, 0) if activation == "relu" else 1 / (1 + np.exp(-x))
    return x


def run(cmd):
    try:
        result = subprocess.run(cmd, capture_output=True, text=True)
    except OSError as e:
        fail(f"cannot run {cmd[0]}: {e} (build it with `cargo build --release` or pass --simdnet)")
    if result.returncode != 0:
        fail(f"{' '.join(cmd)} failed ({result.returncode}): {result.stderr.strip()}")
    return result.stdout


def main():
    repo = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    target = os.environ.get("CARGO_TARGET_DIR", os.path.join(repo, "target"))
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--simdnet", default=os.path.join(target, "release", "simdnet"), help="the simdnet binary")
    parser.add_argument("--model", help="a model saved by simdnet [default: train one]")
    parser.add_argument("--data", help="the IDX data directory [default: a synthetic one]")
    parser.add_argument("--accuracy", type=float, help="test_accuracy printed by `simdnet eval` [default: run it]")
    args = parser.parse_args()

    with tempfile.TemporaryDirectory() as tmp:
        data = args.data
        if data is None:
            data = os.path.join(tmp, "data")
            os.mkdir(data)
            write_synthetic(data)
        model = args.model
        if model is None:
            model = os.path.join(tmp, "model.safetensors")
            run([args.simdnet, "train", "--data", data, "--no-tui", "--epochs", "3", "--hidden", "128,64",
                 "--dropout", "0.2", "--save", model])
        loss = None
        if args.accuracy is None:
            out = run([args.simdnet, "eval", "--model", model, "--data", data])
            m = re.search(r"test_loss: ([0-9.]+) - test_accuracy: ([0-9.]+)", out)
            if not m:
                fail(f"no test_loss / test_accuracy in the output of simdnet eval:\n{out}")
            loss, accuracy = float(m.group(1)), float(m.group(2))
        else:
            accuracy = args.accuracy

        layers, meta = load_model(model)
        images = read_idx(data, "t10k-images-idx3-ubyte", IMAGE_MAGIC)
        labels = read_idx(data, "t10k-labels-idx1-ubyte", LABEL_MAGIC).astype(np.int64)
        rows, cols = (int(v) for v in meta["input_shape"].split(","))
        if images.shape[1:] != (rows, cols):
            fail(f"{model}: the model takes {rows}x{cols} images, {data} has {images.shape[1]}x{images.shape[2]}")
        classes = int(meta["classes"])
        if labels.max(initial=0) >= classes:
            fail(f"{model}: the model has {classes} classes, {data} has label {labels.max()}")
        names = json.loads(meta["class_names"])
        x = images.reshape(len(images), rows * cols).astype(np.float32) / np.float32(255)
        logits = forward(layers, meta["activation"], x)
        predicted = logits.argmax(axis=1)
        np_accuracy = float((predicted == labels).mean())
        shifted = logits - logits.max(axis=1, keepdims=True)
        log_probs = shifted - np.log(np.exp(shifted).sum(axis=1, keepdims=True))
        np_loss = float(-log_probs[np.arange(len(labels)), labels].astype(np.float64).mean())

        print(f"model {model}: {rows}x{cols} -> {meta['hidden']} {meta['activation']} -> {classes} "
              f"({', '.join(names[:3])}{', ...' if len(names) > 3 else ''}), dropout {meta['dropout']}")
        print(f"numpy:   test_accuracy {np_accuracy:.4f}, test_loss {np_loss:.4f} on {len(labels)} images")
        print(f"simdnet: test_accuracy {accuracy:.4f}" + ("" if loss is None else f", test_loss {loss:.4f}"))
        # Equal to 4 decimals: simdnet printed its value rounded to 4 places.
        ok = abs(np_accuracy - accuracy) <= 0.5e-4 + 1e-9
        if loss is not None:
            ok = ok and abs(np_loss - loss) <= 1.5e-4
        print("interop: OK" if ok else "interop: MISMATCH")
        return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
