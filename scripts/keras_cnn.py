#!/usr/bin/env python3
"""The book's chapter-8 CNN in Keras (TensorFlow backend), timed like
`simdnet bench --arch cnn`: training steps (forward, cross-entropy, backward,
Adam) at batch 32 on Fashion-MNIST images. `model.fit` runs epochs of
--steps batches (the book's own loop, compiled by tf.function); the figure
is the best epoch's samples/s after a first, warm-up epoch. Prints one JSON
line. Used by scripts/compare_frameworks.sh.

    python3 scripts/keras_cnn.py [--threads N] [--seconds S] [--data DIR]
"""
import argparse, gzip, json, os, time

ap = argparse.ArgumentParser()
ap.add_argument("--threads", type=int, default=1)
ap.add_argument("--seconds", type=float, default=8.0)
ap.add_argument("--batch-size", type=int, default=32)
ap.add_argument("--steps", type=int, default=200, help="batches per timed epoch")
ap.add_argument("--data", default="data/fashion-mnist")
a = ap.parse_args()

# Thread counts must be fixed before TensorFlow starts its pools.
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
os.environ["TF_NUM_INTRAOP_THREADS"] = str(a.threads)
os.environ["TF_NUM_INTEROP_THREADS"] = "1"
import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402
import keras  # noqa: E402

tf.config.threading.set_intra_op_parallelism_threads(a.threads)
tf.config.threading.set_inter_op_parallelism_threads(1)


def images(path):
    with gzip.open(path, "rb") as f:
        data = f.read()
    n, rows, cols = (int.from_bytes(data[i:i + 4], "big") for i in (4, 8, 12))
    return np.frombuffer(data, np.uint8, offset=16).reshape(n, rows, cols, 1)


def labels(path):
    with gzip.open(path, "rb") as f:
        return np.frombuffer(f.read(), np.uint8, offset=8)


class EpochTimes(keras.callbacks.Callback):
    def __init__(self):
        super().__init__()
        self.times = []

    def on_epoch_begin(self, epoch, logs=None):
        self.t = time.perf_counter()

    def on_epoch_end(self, epoch, logs=None):
        self.times.append(time.perf_counter() - self.t)


def main():
    keras.utils.set_random_seed(42)
    n = a.steps * a.batch_size
    x = images(os.path.join(a.data, "train-images-idx3-ubyte.gz"))[:n].astype(np.float32) / 255.0
    y = labels(os.path.join(a.data, "train-labels-idx1-ubyte.gz"))[:n].astype(np.int64)
    # The book's model (chapter 8): same padding, relu convs, 2x2 pools,
    # dense 100 relu, dropout 0.4, dense 10 softmax; Adam at its defaults.
    model = keras.Sequential([
        keras.Input(shape=(28, 28, 1)),
        keras.layers.Conv2D(32, 3, padding="same", activation="relu"),
        keras.layers.MaxPooling2D(),
        keras.layers.Conv2D(64, 3, padding="same", activation="relu"),
        keras.layers.MaxPooling2D(),
        keras.layers.Flatten(),
        keras.layers.Dense(100, activation="relu"),
        keras.layers.Dropout(0.4),
        keras.layers.Dense(10, activation="softmax"),
    ])
    model.compile(loss="sparse_categorical_crossentropy", optimizer="adam", metrics=["accuracy"])
    times = EpochTimes()
    # One warm-up epoch (tracing, oneDNN's primitives), then as many epochs
    # as fill the time, in one fit.
    model.fit(x, y, batch_size=a.batch_size, epochs=1, verbose=0, callbacks=[times])
    epochs = max(2, int(a.seconds / times.times[0]) + 1)
    model.fit(x, y, batch_size=a.batch_size, epochs=epochs, verbose=0, callbacks=[times])
    best = n / min(times.times[1:])
    print(json.dumps({"framework": f"keras {keras.__version__} / tensorflow {tf.__version__}", "threads": a.threads,
                      "batch": a.batch_size, "best_samples_per_s": round(best)}))


if __name__ == "__main__":
    main()
