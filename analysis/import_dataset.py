#!/usr/bin/python3
"""Write a real dataset in mfres's data-file format.

    analysis/import_dataset.py digits OUT.h5

digits: scikit-learn's bundled handwritten digits (1797 images of 8 x 8
pixels, 10 classes; Debian's python3-sklearn ships them, nothing is
downloaded). Pixels are scaled to [0, 1]. The rows are shuffled once with a
fixed seed and stored training rows first: 1437 for training, then 360 for
testing, so `data.samples = 0` with `data.test_samples = 360` uses this split
(mfres trains on the first rows and tests on the last ones).

The file holds x [n][64] (float64), y [n] (int32 labels) and attributes
source, n_train and n_test.
"""
import argparse

import h5py
import numpy as np

N_TEST = 360


def digits():
    from sklearn.datasets import load_digits

    d = load_digits()
    return d.data / 16.0, d.target.astype(np.int32), "scikit-learn load_digits (UCI optdigits)"


DATASETS = {"digits": digits}


def write(name, out, seed=0):
    x, y, source = DATASETS[name]()
    order = np.random.default_rng(seed).permutation(len(x))
    x, y = x[order], y[order]
    with h5py.File(out, "w") as f:
        f["x"] = x.astype(np.float64)
        f["y"] = y
        f.attrs["source"] = source
        f.attrs["n_train"] = len(x) - N_TEST
        f.attrs["n_test"] = N_TEST
    return x.shape, int(y.max()) + 1


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("dataset", choices=sorted(DATASETS))
    parser.add_argument("out")
    args = parser.parse_args()
    shape, classes = write(args.dataset, args.out)
    print(f"{args.out}: x {shape[0]} x {shape[1]}, {classes} classes, last {N_TEST} rows for test")
