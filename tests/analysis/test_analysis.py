"""The analysis scripts on small runs made by mfres, and their numbers on
inputs with known answers."""
import os
import re
import subprocess
import sys

import h5py
import numpy as np
import pytest

REPO = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
ANALYSIS = os.path.join(REPO, "analysis")
sys.path.insert(0, ANALYSIS)
import mfresfile  # noqa: E402
import scaling  # noqa: E402

MFRES = os.environ.get("MFRES", os.path.join(REPO, "build", "mfres"))
ENV = dict(os.environ, OMPI_ALLOW_RUN_AS_ROOT="1", OMPI_ALLOW_RUN_AS_ROOT_CONFIRM="1",
           OPENBLAS_NUM_THREADS="1", OMPI_MCA_btl_vader_single_copy_mechanism="none")
CONFIG = os.path.join(REPO, "jobs", "configs", "width-study.ini")
SHORT = ["--set", "train.steps=60", "--set", "output.log_every=10",
         "--set", "output.snapshot_every=20"]


def train(out, *sets):
    subprocess.run(["mpirun", "--oversubscribe", "-n", "2", MFRES, "train", CONFIG, *SHORT,
                    *sets, "--out", str(out)], check=True, capture_output=True, env=ENV,
                   timeout=300)


def script(name, *args):
    return subprocess.run([sys.executable, os.path.join(ANALYSIS, name), *map(str, args)],
                          check=True, capture_output=True, text=True, cwd=ANALYSIS,
                          timeout=300).stdout


@pytest.fixture(scope="module")
def width_runs(tmp_path_factory):
    root = tmp_path_factory.mktemp("width")
    for m in (16, 32, 64, 128, 256):
        train(root / f"M{m:08d}", "--set", f"model.width={m}")
    return root


@pytest.fixture(scope="module")
def depth_runs(tmp_path_factory):
    root = tmp_path_factory.mktemp("depth")
    for layers in (1, 2, 4, 8):
        train(root / f"L{layers:08d}", "--set", f"model.layers={layers}",
              "--set", "model.width=32")
    return root


def assert_png(path, min_bytes=8000):
    data = open(path, "rb").read()
    assert data[:8] == b"\x89PNG\r\n\x1a\n", path
    assert len(data) > min_bytes, (path, len(data))


def test_plot_run(width_runs, tmp_path):
    out = script("plot_run.py", width_runs / "M00000064", "--out", tmp_path)
    names = {"loss.png", "measure.png", "trajectories.png", "final_scatter.png"}
    assert set(os.listdir(tmp_path)) == names
    for name in names:
        assert_png(tmp_path / name)
        assert str(tmp_path / name) in out


def test_width_scaling_script(width_runs, tmp_path):
    out = script("width_scaling.py", width_runs, "--out", tmp_path / "w.png", "--tsv",
                 tmp_path / "w.tsv")
    assert "reference:" in out and "M00000256" in out
    assert re.search(r"exponent of loss_distance: -?[0-9.]+ ± [0-9.]+", out)
    assert re.search(r"exponent of w2: -?[0-9.]+ ± [0-9.]+", out)
    assert_png(tmp_path / "w.png")
    rows = open(tmp_path / "w.tsv").read().splitlines()
    assert rows[0].startswith("model.width") and [r.split("\t")[0] for r in rows[1:]] == [
        "16", "32", "64", "128"]
    assert all(r.split("\t")[1] == "1" and float(r.split("\t")[2]) > 0 for r in rows[1:])


def test_width_scaling_averages_over_seeds(width_runs, tmp_path):
    """A second seed at three of the widths: distances are taken within each
    seed and averaged, with standard errors."""
    for m in (16, 64, 256):
        train(tmp_path / f"s2/M{m:08d}", "--set", f"model.width={m}", "--set", "init.seed=7",
              "--set", "train.seed=8")
    runs = mfresfile.load_runs([str(width_runs / f"M{m:08d}") for m in (16, 64, 256)] +
                               [str(tmp_path / "s2")])
    rows, fits, ref = scaling.study(runs, "model.width")
    assert [r["model.width"] for r in rows] == [16, 64] and ref.value("model.width") == 256
    for r in rows:
        assert r["seeds"] == 2 and r["w2_se"] > 0 and r["loss_distance_se"] > 0
        assert any("s2" in path for path in r["runs"])
    with pytest.raises(ValueError, match="every seed needs runs at the same values"):
        scaling.study(runs + [mfresfile.load_run(width_runs / "M00000032")], "model.width")


def test_depth_scaling_script(depth_runs, tmp_path):
    out = script("depth_scaling.py", depth_runs, "--out", tmp_path / "d.png")
    assert "model.layers = 8" in out and "exponent of w2" in out
    assert_png(tmp_path / "d.png")


def test_report_references_existing_files(width_runs, tmp_path):
    out = tmp_path / "report.html"
    script("report.py", width_runs / "M00000016", width_runs / "M00000256", "--out", out)
    page = open(out).read()
    sources = re.findall(r"src='([^']+)'", page)
    assert len(sources) == 8
    for src in sources:
        assert_png(os.path.join(tmp_path, src))
    assert page.count("<tr><td>M000") == 2 and "[model]" in page
    assert "http" not in page  # nothing external


def test_fit_recovers_a_known_exponent():
    """Loss curves built as loss_inf(t) + C M^p g(t): the sup distance from
    the (very wide) reference and the fit give back p."""
    t = np.linspace(0, 50, 101)
    base, shape = np.exp(-t / 10), t * np.exp(-t / 5)
    widths = np.array([10, 30, 100, 300, 1000, 3000])
    for p in (-0.5, -1.0, -0.25):
        ref = base + 2.0 * 1e40 ** p * shape  # the limit, for practical purposes
        d = [scaling.sup_distance(t, ref, t, base + 2.0 * m ** p * shape) for m in widths]
        slope, se, c = scaling.fit_power(widths, d)
        assert slope == pytest.approx(p, abs=1e-5) and se < 1e-5


def test_w2_of_a_measure_to_itself_and_to_a_shift():
    rng = np.random.default_rng(3)
    a = rng.standard_normal((300, 5))
    shift = np.array([0.3, -1.2, 0.0, 2.0, 0.5])
    assert scaling.w2(a, a) == pytest.approx(0.0, abs=1e-10)
    assert scaling.w2(a, a + shift) == pytest.approx(np.linalg.norm(shift), rel=1e-9)
    big = rng.standard_normal((6000, 5))  # past EXACT_LIMIT: the sliced distance
    assert 6000 * 6000 > scaling.EXACT_LIMIT
    assert scaling.w2(big, big) == pytest.approx(0.0, abs=1e-10)


def test_matching_layers_by_relative_depth():
    assert [scaling.matching_layer(l, 3, 9) for l in range(3)] == [1, 4, 7]  # centres
    assert [scaling.matching_layer(l, 4, 4) for l in range(4)] == [0, 1, 2, 3]


def test_reader(width_runs, tmp_path):
    run = mfresfile.load_run(width_runs / "M00000032")
    assert run.value("model.width") == 32 and run.metrics["step"][-1] == 60
    measures = run.measures()
    assert [m.step for m in measures] == [0, 20, 40, 60]
    final = run.final_measure()
    assert final.kind == "checkpoint" and final.u.shape == (4 * 32, 4)
    assert final.theta(layer=1).shape == (32, 9)
    bogus = tmp_path / "other.h5"
    with h5py.File(bogus, "w") as f:
        f["x"] = np.zeros(2)
    with pytest.raises(ValueError, match="not an mfres file"):
        mfresfile.Measure(str(bogus))


def test_import_digits_and_train_on_them(tmp_path):
    data = tmp_path / "digits.h5"
    out = script("import_dataset.py", "digits", data)
    assert "1797 x 64, 10 classes" in out
    with h5py.File(data, "r") as f:
        assert f["x"].shape == (1797, 64) and f["y"].shape == (1797,)
        assert f["y"].dtype.kind == "i" and set(f["y"][()]) == set(range(10))
        assert 0 <= f["x"][()].min() and f["x"][()].max() <= 1
        assert f.attrs["n_train"] == 1437 and f.attrs["n_test"] == 360
    for order in ("fixed", "shuffle"):
        cfg = os.path.join(REPO, "jobs", "configs", f"digits-{order}.ini")
        sets = ["--set", f"data.file={data}", "--set", "train.steps=30",
                "--set", "output.snapshot_every=0", "--set", "output.log_every=10"]
        resolved = subprocess.run([MFRES, "config", cfg, *sets], capture_output=True,
                                  text=True, env=ENV, check=True).stdout
        assert "samples = 1437" in resolved and "dim = 64" in resolved
        assert "output_dim = 10" in resolved and f"order = {order}" in resolved
        subprocess.run(["mpirun", "--oversubscribe", "-n", "2", MFRES, "train", cfg, *sets,
                        "--out", str(tmp_path / order)], check=True, capture_output=True,
                       env=ENV, timeout=300)
        m = mfresfile.load_run(tmp_path / order).metrics
        assert m["loss"][-1] < m["loss"][0] and m["test_accuracy"][-1] > 0.3
