#!/usr/bin/env python3
"""Interoperability check: a model saved by simdnet loads in Python with the
`safetensors` package and numpy, and a numpy forward pass over the test set
gives the accuracy (and loss) that `simdnet eval` prints.

    pip install safetensors numpy
    python3 tests/interop.py [--simdnet BIN] [--model PATH] [--data DIR] [--accuracy A]

Without --model, the script trains two small models with BIN (`--save`): an
MLP with dropout and a CNN (convolutions written out in numpy, NHWC, HWIO); without --data, it writes a small learnable synthetic data set
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


def parse_arch(text):
    """The layer list of a v2 file: [(kind, [args])], e.g. ("conv2d", ["32", "3", "relu", "same"])."""
    layers, depth, start = [], 0, 0
    items = []
    for i, ch in enumerate(text):
        depth += ch == "("
        depth -= ch == ")"
        if ch == "," and depth == 0:
            items.append(text[start:i])
            start = i + 1
    items.append(text[start:])
    for item in items:
        name, _, rest = item.strip().partition("(")
        args = [a.strip() for a in rest.rstrip(")").split(",") if a.strip()]
        layers.append((name, args))
    return layers


def load_model(path):
    """The layers [(kind, args, tensors)] in order, and the metadata."""
    with safe_open(path, framework="np") as f:
        meta = f.metadata() or {}
    tensors = load_file(path)
    fmt = meta.get("format")
    if fmt == "simdnet-v2":
        arch = parse_arch(meta["arch"])
    elif fmt == "simdnet-mlp-v1":
        hidden = [int(h) for h in meta["hidden"].split(",") if h]
        arch = [("flatten", [])]
        for h in hidden:
            arch.append(("dense", [str(h), meta["activation"]]))
        arch.append(("dense", [meta["classes"]]))
    else:
        fail(f"{path}: metadata format {fmt!r} is not simdnet-v2 or simdnet-mlp-v1")
    counts, layers, used = {}, [], 0
    for kind, args in arch:
        weights = None
        if kind in ("conv2d", "dense"):  # the layers with weights, named as Keras counts them
            n = counts.get(kind, 0)
            counts[kind] = n + 1
            name = kind if n == 0 else f"{kind}_{n}"
            kernel, bias = tensors[f"{name}.kernel"], tensors[f"{name}.bias"]
            if kernel.dtype != np.float32 or bias.dtype != np.float32:
                fail(f"{path}: {name} is {kernel.dtype}/{bias.dtype}, expected float32")
            weights = (kernel, bias)
            used += 2
        layers.append((kind, args, weights))
    if len(tensors) != used:
        fail(f"{path}: {len(tensors)} tensors for {used // 2} layers with weights")
    return layers, meta


def activate(x, name):
    if name == "relu":
        return np.maximum(x, 0)
    if name == "sigmoid":
        return 1 / (1 + np.exp(-x))
    return x


def conv2d(x, kernel, bias, padding):
    """NHWC x [n, h, w, cin], HWIO kernel [k, k, cin, cout], stride 1: written out tap by tap."""
    k = kernel.shape[0]
    n, h, w, _ = x.shape
    if padding == "same":
        p = k // 2
        x = np.pad(x, ((0, 0), (p, p), (p, p), (0, 0)))
        oh, ow = h, w
    else:
        oh, ow = h - k + 1, w - k + 1
    out = np.zeros((n, oh, ow, kernel.shape[3]), dtype=np.float32)
    for ky in range(k):
        for kx in range(k):
            out += x[:, ky : ky + oh, kx : kx + ow, :] @ kernel[ky, kx]
    return out + bias


def maxpool(x, pool):
    n, h, w, c = x.shape
    oh, ow = h // pool, w // pool
    x = x[:, : oh * pool, : ow * pool, :].reshape(n, oh, pool, ow, pool, c)
    return x.max(axis=(2, 4))


def forward(layers, x):
    """Logits of the layer stack (dropout off, softmax in the loss); float32, NHWC."""
    for kind, args, weights in layers:
        if kind == "conv2d":
            words = args[2:]
            padding = "same" if "same" in words else "valid"
            act = next((a for a in words if a in ("relu", "sigmoid", "linear")), "linear")
            x = activate(conv2d(x, weights[0], weights[1], padding), act)
        elif kind == "maxpool":
            x = maxpool(x, int(args[0]) if args else 2)
        elif kind == "flatten":
            x = x.reshape(len(x), -1)  # Keras' order: row, column, channel
        elif kind == "dense":
            x = activate(x @ weights[0] + weights[1], args[1] if len(args) > 1 else "linear")
        elif kind != "dropout":
            fail(f"unknown layer {kind!r}")
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
        if args.model is not None:
            return check(args, data, args.model)
        # Without --model: the tutorial MLP (dropout on) and a small CNN.
        trainings = [
            ("mlp.safetensors", ["--hidden", "128,64", "--dropout", "0.2", "--epochs", "3"]),
            ("cnn.safetensors", ["--arch", "conv2d(8,3,relu,same),maxpool(2),conv2d(6,3,relu,valid),"
                                 "maxpool(3),flatten,dense(32,sigmoid),dropout(0.2),dense(10)", "--epochs", "3"]),
        ]
        status = 0
        for name, flags in trainings:
            model = os.path.join(tmp, name)
            run([args.simdnet, "train", "--data", data, "--no-tui", *flags, "--save", model])
            status = max(status, check(args, data, model))
        return status


def check(args, data, model):
    """numpy's accuracy and loss of `model` on data's test set against simdnet's; 0 when equal."""
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
    x = images.reshape(len(images), rows, cols, 1).astype(np.float32) / np.float32(255)
    logits = forward(layers, x)
    predicted = logits.argmax(axis=1)
    np_accuracy = float((predicted == labels).mean())
    shifted = logits - logits.max(axis=1, keepdims=True)
    log_probs = shifted - np.log(np.exp(shifted).sum(axis=1, keepdims=True))
    np_loss = float(-log_probs[np.arange(len(labels)), labels].astype(np.float64).mean())

    print(f"model {model}: {rows}x{cols} -> {meta.get('arch') or meta.get('hidden')} -> {classes} "
          f"({', '.join(names[:3])}{', ...' if len(names) > 3 else ''})")
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
