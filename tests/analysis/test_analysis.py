"""The analysis scripts on small runs made by mfres, and their numbers on
inputs with known answers."""
import json
import os
import re
import shutil
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
# The study's analysis runs under $PYTHON (jobs/study.sh): this interpreter's.
ENV = dict(os.environ, OMPI_ALLOW_RUN_AS_ROOT="1", OMPI_ALLOW_RUN_AS_ROOT_CONFIRM="1",
           OPENBLAS_NUM_THREADS="1", OMPI_MCA_btl_vader_single_copy_mechanism="none",
           PYTHON=sys.executable)
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
    for m in (32, 64):
        train(root / f"M{m:08d}", "--set", f"model.width={m}")
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


STUDY_SHORT = ["--set", "train.steps=30", "--set", "output.log_every=10"]


def study_seed(layers, width, s):
    """init.seed of run s at (L, M) in the uncoupled protocol (jobs/common.sh)."""
    return s + 1000 * (layers + 100000 * width)


def run_study(out, env, *args):
    return subprocess.run([os.path.join(REPO, "jobs", "study.sh"), CONFIG, *STUDY_SHORT, *args,
                           "--out", str(out)], capture_output=True, text=True, timeout=600,
                          env=dict(ENV, MFRES=MFRES, **env))


@pytest.fixture(scope="module")
def study(tmp_path_factory):
    """jobs/study.sh without Slurm: 3 widths x 4 seeds, one run of which was
    interrupted (max_time) before the driver continued it."""
    out = tmp_path_factory.mktemp("study") / "width"
    seed = study_seed(4, 64, 2)
    stopped = subprocess.run(
        ["mpirun", "--oversubscribe", "-n", "2", MFRES, "train", CONFIG, *STUDY_SHORT,
         "--set", "model.width=64", "--set", f"init.seed={seed}", "--set", f"train.seed={seed}",
         "--set", "output.max_time=0.001", "--out", str(out / "L0004-M00000064" / "s002")],
        capture_output=True, text=True, env=ENV, timeout=300)
    assert stopped.returncode == 3, stopped.stderr
    proc = run_study(out, {"MFRES_STUDY_WIDTHS": "16 32 64", "MFRES_STUDY_SEEDS": "4"})
    assert proc.returncode == 0, proc.stdout + proc.stderr
    return out, proc.stdout


def test_study_driver_runs_the_grid_then_the_analysis(study):
    out, stdout = study
    runs = sorted(mfresfile.find_run_dirs([str(out)]))
    assert [os.path.relpath(r, out) for r in runs] == [
        f"L0004-M{m:08d}/s{s:03d}" for m in (16, 32, 64) for s in (1, 2, 3, 4)]
    order = re.findall(r"L = 4, M = (\d+), seed (\d)", stdout)
    assert [int(m) for m, _ in order] == [64] * 4 + [32] * 4 + [16] * 4  # widest first
    seeds = set()
    for r in runs:
        run = mfresfile.load_run(r)
        assert run.finished and list(run.outputs()["step"]) == [0, 10, 20, 30]
        assert run.outputs()["output"].shape == (4, 64, 1)
        seeds.add(run.value("init.seed"))
        layers, width, s = run.value("model.layers"), run.value("model.width"), int(r[-3:])
        assert run.value("init.seed") == study_seed(layers, width, s)
    assert len(seeds) == 12  # uncoupled: every run its own seed
    assert "restarting from" in open(out / "L0004-M00000064" / "s002" / "job.log").read()
    assert re.search(r"fluctuation exponent \(output\): -?[0-9.]+ \[-?[0-9.]+, -?[0-9.]+\]",
                     stdout)
    summary = json.load(open(out / "analysis" / "summary.json"))
    assert summary["widths"] == [16, 32, 64] and summary["seeds"] == 4
    assert summary["protocol"] == "uncoupled" and summary["depths"] == [4]
    for name in ("loss", "output"):
        p, lo, hi = summary["fluctuation_exponent"][name]
        assert lo <= p <= hi
    m, lo, hi = summary["limit"]["loss"]
    assert lo <= m <= hi
    for name in ("fluctuations", "limit", "limit_t", "bands", "exponent_t"):
        assert_png(out / "analysis" / f"{name}.png")
    table = open(out / "analysis" / "table.tsv").read().splitlines()
    assert table[0].startswith("L\tM\tLM\tseeds") and len(table) == 4


def test_study_driver_skips_finished_runs(study):
    out, _ = study
    proc = run_study(out, {"MFRES_STUDY_WIDTHS": "16 32 64", "MFRES_STUDY_SEEDS": "4"})
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.count("finished; skipped") == 12


def test_study_driver_refuses_a_bad_grid(tmp_path):
    for env, message in (({"MFRES_STUDY_WIDTHS": "16 x"}, "MFRES_STUDY_WIDTHS entry 'x'"),
                         ({"MFRES_STUDY_SEEDS": "0"}, "MFRES_STUDY_SEEDS='0'"),
                         ({"MFRES_STUDY_SCHEMES": "fixed twisted"},
                          "MFRES_STUDY_SCHEMES entry 'twisted' is not fixed, shuffle or shallow"),
                         ({"MFRES_STUDY_DEPTHS": "3", "MFRES_STUDY_PARTICLES": "64"},
                          "not a multiple of the depth 3")):
        proc = run_study(tmp_path / "s", env)
        assert proc.returncode == 2 and message in proc.stderr, proc.stderr
    assert not os.path.exists(tmp_path / "s")


GRID = {"MFRES_STUDY_GRID": "model.alpha=0.5,1,2 model.architecture=resnet,shallow",
        "MFRES_STUDY_WIDTHS": "16 32", "MFRES_STUDY_SEEDS": "2"}


@pytest.fixture(scope="module")
def grid_study(tmp_path_factory):
    """jobs/study.sh with MFRES_STUDY_GRID over alpha and the architecture:
    2 widths x 2 seeds x 6 combinations."""
    out = tmp_path_factory.mktemp("grid") / "grid"
    proc = run_study(out, GRID)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    return out


def test_study_over_another_key(grid_study, tmp_path):
    """MFRES_STUDY_GRID: every (alpha, architecture) combination runs the
    grid with the same seeds into OUT/model.alpha=A/model.architecture=X/...,
    then one key analysis of alpha per architecture; a value mfres refuses,
    a key the study sets, a key given twice, a grid point of one seed, or
    schemes besides, stop it before any run."""
    out, env = grid_study, GRID
    runs = sorted(os.path.relpath(r, out) for r in mfresfile.find_run_dirs([str(out)]))
    assert runs == [f"model.alpha={a}/model.architecture={x}/L0004-M{m:08d}/s{s:03d}"
                    for a in (0.5, 1, 2) for x in ("resnet", "shallow") for m in (16, 32)
                    for s in (1, 2)]
    for r in runs:
        run = mfresfile.load_run(str(out / r))
        a, x = (part.split("=")[1] for part in r.split("/")[:2])
        assert run.value("model.alpha") == float(a) and run.value("model.architecture") == x
        assert run.value("init.seed") == study_seed(4, run.value("model.width"), int(r[-3:]))
    for arch in ("resnet", "shallow"):
        s = json.load(open(out / "analysis" / f"model.architecture={arch}" / "summary.json"))
        assert s["kind"] == "key" and s["key"] == "model.alpha" and s["values"] == [0.5, 1, 2]
        assert s["at"] == {"L": 4, "M": 32, "protocol": "coupled"}
        p, lo, hi = s["fluctuation_exponent"]["output"]
        assert lo <= p <= hi
        assert [len(e["points"]) for e in s["per_value"]] == [2, 2, 2]
        assert all(len(e["limit"]["loss"]) == 3 for e in s["per_value"])
        assert_png(out / "analysis" / f"model.architecture={arch}" / "fluctuations.png")
    subprocess.run([sys.executable, os.path.join(ANALYSIS, "report.py"), str(
        out / "analysis" / "model.architecture=resnet"), "--out", str(tmp_path / "k.html")],
        check=True, capture_output=True, timeout=120)
    assert "fluctuation exponent in model.alpha (output)" in (tmp_path / "k.html").read_text()
    for grid, message in (("model.alpha=1,x", "model.alpha"), ("model.width=8,16", "cannot vary"),
                          ("model.alpha=1 model.alpha=2", "twice")):
        bad = tmp_path / "bad"
        proc = run_study(bad, dict(env, MFRES_STUDY_GRID=grid))
        assert proc.returncode == 2 and message in proc.stderr, proc.stderr
        assert not bad.exists() or not mfresfile.find_run_dirs([str(bad)])
    for extra, message in (({"MFRES_STUDY_SEEDS": "1"}, "at least 2 seeds"),
                           ({"MFRES_STUDY_SCHEMES": "fixed"}, "exclude each other")):
        proc = run_study(tmp_path / "bad", dict(env, **extra))
        assert proc.returncode == 2 and message in proc.stderr, proc.stderr
    proc = subprocess.run([sys.executable, os.path.join(ANALYSIS, "scaling.py"), "key",
                           "model.alpha", str(out / "model.alpha=0.5")], capture_output=True,
                          text=True, timeout=120)
    assert proc.returncode == 2 and "runs differ in model.architecture" in proc.stderr


def test_study_list_gives_every_run_its_own_seed(tmp_path):
    """--list prints the runs without running anything: 2 depths x 3000
    seeds, each line "DIR L M INIT_SEED TRAIN_SEED" with the seeds distinct
    over the study (beyond seed 999 the second seed form), the published
    form s + 1000 (L + 100000 M) below, and the core-hours last."""
    out = tmp_path / "s"
    proc = subprocess.run([os.path.join(REPO, "jobs", "study.sh"), "--list", CONFIG, "--out",
                           str(out)], capture_output=True, text=True, timeout=300,
                          env=dict(ENV, MFRES=MFRES, MFRES_STUDY_DEPTHS="2 4",
                                   MFRES_STUDY_WIDTHS="64", MFRES_STUDY_SEEDS="3000"))
    assert proc.returncode == 0, proc.stderr
    lines = proc.stdout.splitlines()
    runs = [line.split() for line in lines[:-1]]
    assert len(runs) == 6000 and all(len(r) == 5 and r[3] == r[4] for r in runs)
    assert len({r[3] for r in runs}) == 6000 and len({r[0] for r in runs}) == 6000
    assert [f"{out}/L0002-M00000064/s001", "2", "64", str(1 + 1000 * (2 + 100000 * 64))] == \
        runs[[r[0] for r in runs].index(f"{out}/L0002-M00000064/s001")][:4]
    assert all(int(r[3]) >= 1 << 62 for r in runs if int(r[0].rsplit("/s", 1)[1]) >= 1000)
    assert re.match(r"# total core-hours [0-9.e+-]+ for 6000 runs of 2 ranks", lines[-1]), lines[-1]
    assert not os.path.exists(out)


def copy_runs(src, dst):
    """The study's run directories without their checkpoints."""
    for r in mfresfile.find_run_dirs([str(src)]):
        target = dst / os.path.relpath(r, src)
        os.makedirs(target)
        for name in ("config.ini", "metrics.tsv", "outputs.h5"):
            shutil.copy(os.path.join(r, name), target)
    return dst


def analysis(*args):
    return subprocess.run([sys.executable, os.path.join(ANALYSIS, "scaling.py"), *map(str, args)],
                          capture_output=True, text=True, timeout=300)


def test_compare_mixed_precision_with_double(study, tmp_path):
    """The same study in mixed precision (2 of the widths, 2 seeds):
    compare.py pairs the runs by width and seed, its spread and differences
    recomputed from the files; the paired outputs differ by far less than
    1% of the seed-to-seed spread. Nothing in common: exit 2."""
    out, _ = study
    mixed = tmp_path / "mixed"
    proc = run_study(mixed, {"MFRES_STUDY_WIDTHS": "16 32", "MFRES_STUDY_SEEDS": "2"},
                     "--set", "model.precision=mixed")
    assert proc.returncode == 0, proc.stdout + proc.stderr
    table = tmp_path / "c.json"
    proc = subprocess.run([sys.executable, os.path.join(ANALYSIS, "compare.py"), str(out),
                           str(mixed), "--json", str(table)], capture_output=True, text=True,
                          timeout=120)
    assert proc.returncode == 0, proc.stderr
    rows = json.load(open(table))["rows"]
    assert [(r["width"], r["seeds_a"], r["pairs"]) for r in rows] == [(16, 4, 2), (32, 4, 2)]
    for r in rows:
        z = {s: mfresfile.read_outputs(str(out / f"L0004-M{r['width']:08d}" / f"s{s:03d}" /
                                           "outputs.h5"))["output"][-1] for s in (1, 2, 3, 4)}
        zm = {s: mfresfile.read_outputs(str(mixed / f"L0004-M{r['width']:08d}" / f"s{s:03d}" /
                                            "outputs.h5"))["output"][-1] for s in (1, 2)}
        spread = np.sqrt(np.mean(np.var([z[s] for s in z], axis=0, ddof=1)))
        diff = max(np.abs(z[s] - zm[s]).max() for s in zm)
        assert r["spread"] == pytest.approx(spread, rel=1e-12)
        assert r["diff"] == pytest.approx(diff, rel=1e-12) and 0 < diff < 0.01 * spread
    (tmp_path / "empty").mkdir()
    for other in ("empty", "missing"):
        proc = subprocess.run([sys.executable, os.path.join(ANALYSIS, "compare.py"), str(out),
                               str(tmp_path / other)], capture_output=True, text=True, timeout=60)
        assert proc.returncode == 2
        assert ("no finished run of" if other == "empty" else "no such directory") in proc.stderr


def test_compare_resnet_and_shallow_over_alpha(grid_study, tmp_path):
    """compare.py --split model.architecture=resnet,shallow --by model.alpha
    on the grid study: runs paired by alpha, width and seed; the RMS output
    differences and the shallow gap recomputed from the files; their
    exponent in alpha the slope of the logs of the means."""
    out = grid_study
    table = tmp_path / "c.json"
    proc = subprocess.run([sys.executable, os.path.join(ANALYSIS, "compare.py"), str(out),
                           "--split", "model.architecture=resnet,shallow", "--by",
                           "model.alpha", "--json", str(table), "--plot",
                           str(tmp_path / "gap.png")],
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    result = json.load(open(table))
    rows = result["rows"]
    assert [(r["value"], r["width"], r["pairs"]) for r in rows] == [
        (a, m, 2) for a in (0.5, 1, 2) for m in (16, 32)]
    for r in rows:
        runs = {arch: [mfresfile.load_run(str(out / f"model.alpha={r['value']:g}" /
                                              f"model.architecture={arch}" /
                                              f"L0004-M{r['width']:08d}" / f"s{s:03d}"))
                       for s in (1, 2)] for arch in ("resnet", "shallow")}
        for col, t in ((0, 0), (1, -1)):
            d = [np.sqrt(np.mean((x.outputs()["output"][t] - y.outputs()["output"][t]) ** 2))
                 for x, y in zip(runs["resnet"], runs["shallow"])]
            assert np.allclose([p[col] for p in r["per_pair"]], d, rtol=1e-12)
        assert r["gap_first"] == pytest.approx(
            np.mean([x.metrics["shallow_gap"][0] for x in runs["resnet"]]), rel=1e-12)
    x = np.log([0.5, 1, 2])
    assert [(e["layers"], e["width"]) for e in result["exponents"]] == [(4, 16), (4, 32)]
    for e in result["exponents"]:
        mine = [r for r in rows if r["width"] == e["width"]]
        for which, col in (("first", 0), ("last", 1)):
            y = np.log([np.mean([p[col] for p in r["per_pair"]]) for r in mine])
            p, lo, hi = e[f"exponent_{which}"]
            assert p == pytest.approx(np.polyfit(x, y, 1)[0], rel=1e-9) and lo <= p <= hi
        assert e["exponent_first"][0] > 1  # faster than alpha (the expansion: alpha^2)
    assert_png(tmp_path / "gap.png")


def test_analysis_refuses_bad_input_and_writes_nothing(study, tmp_path):
    out, _ = study
    # A run that differs in another key.
    bad = copy_runs(out, tmp_path / "lr")
    config = bad / "L0004-M00000016" / "s001" / "config.ini"
    config.write_text(config.read_text().replace("lr = 0.5", "lr = 0.25"))
    proc = analysis("width", bad, "--out", tmp_path / "a1")
    assert proc.returncode == 2 and "runs differ in train.lr" in proc.stderr
    assert "s001" in proc.stderr and not os.path.exists(tmp_path / "a1")
    # Mixed probe sets.
    bad = copy_runs(out, tmp_path / "probes")
    with h5py.File(bad / "L0004-M00000032" / "s003" / "outputs.h5", "r+") as f:
        f["probes/x"][0, 0] += 1
    proc = analysis("width", bad, "--out", tmp_path / "a2")
    assert proc.returncode == 2 and "different probe sets" in proc.stderr
    assert "L0004-M00000032/s003" in proc.stderr and not os.path.exists(tmp_path / "a2")
    # One seed where an ensemble is needed.
    bad = copy_runs(out, tmp_path / "single")
    for s in (2, 3, 4):
        shutil.rmtree(bad / "L0004-M00000032" / f"s{s:03d}")
    proc = analysis("width", bad, "--out", tmp_path / "a3")
    assert proc.returncode == 2 and "at least 2 finished seeds" in proc.stderr
    assert "L = 4, M = 32 (1:" in proc.stderr and not os.path.exists(tmp_path / "a3")
    # An unfinished run is skipped with a warning; a point with none left is refused.
    bad = copy_runs(out, tmp_path / "unfinished")
    metrics = bad / "L0004-M00000016" / "s004" / "metrics.tsv"
    metrics.write_text("".join(metrics.read_text().splitlines(True)[:-1]))
    (bad / "L0004-M00000016" / "s004" / "outputs.h5").unlink()
    proc = analysis("width", bad, "--out", tmp_path / "a4")
    assert proc.returncode == 0, proc.stderr
    assert "skipped" in proc.stderr and "L0004-M00000016/s004" in proc.stderr
    summary = json.load(open(tmp_path / "a4" / "summary.json"))
    assert summary["points"][0]["seeds"] == 3
    (warning,) = summary["warnings"]  # the run's outputs.h5 is gone
    assert warning.startswith(f"skipped {bad}/L0004-M00000016/s004: ")
    page = tmp_path / "a4.html"
    subprocess.run([sys.executable, os.path.join(ANALYSIS, "report.py"), str(tmp_path / "a4"),
                    "--out", str(page)], check=True, capture_output=True, timeout=120)
    assert "L0004-M00000016/s004: " in page.read_text()
    for s in (1, 2, 3):
        (bad / "L0004-M00000016" / f"s{s:03d}" / "outputs.h5").unlink()
    proc = analysis("width", bad, "--out", tmp_path / "a5")
    assert proc.returncode == 2 and "L = 4, M = 16 has no finished run" in proc.stderr
    assert not os.path.exists(tmp_path / "a5")


def test_depth_study(tmp_path):
    """Depths 1, 2, 4 at L M = 64, three seeds: the depth analysis and its
    figure; the bias model has the 1/L term and no 1/(L M) term (constant)."""
    out = tmp_path / "depth"
    proc = run_study(out, {"MFRES_STUDY_DEPTHS": "1 2 4", "MFRES_STUDY_PARTICLES": "64",
                           "MFRES_STUDY_SEEDS": "3"})
    assert proc.returncode == 0, proc.stdout + proc.stderr
    summary = json.load(open(out / "analysis" / "summary.json"))
    assert summary["kind"] == "depth" and summary["depths"] == [1, 2, 4]
    assert summary["widths"] == [16, 32, 64]
    assert set(summary["bias"]["loss"]) == {"per_layer"}
    assert_png(out / "analysis" / "depth.png")


def synthetic(rng, widths, seeds, p=-0.5, m_inf=0.3, b=2.0, probes=16, T=3, coupled=False,
              rank=None):
    """An ensemble with known answers: values m_inf + b / N + N^p noise,
    N = 4 M particles. With rank, the probes' noise is a smooth function of
    the probe (rank random cosines), correlated across probes as a real
    network's outputs are."""
    basis = np.array([np.cos((k + 1) * np.linspace(-1, 1, probes)) for k in range(rank or 0)])
    points = []
    for k, width in enumerate(widths):
        point = scaling.Point(4, width)
        n_particles = 4 * width
        for s in range(seeds[k]):
            amp = n_particles ** p
            base = m_inf + b / n_particles
            noise = (rng.standard_normal((T, rank)) @ basis if rank
                     else rng.standard_normal((T, probes)))
            point.add(s if coupled else 1000 * k + s, f"M{width}/s{s}", {
                "output": (np.linspace(0, 1, probes)[None, :, None] + base
                           + amp * noise[:, :, None]),
                "loss": base + 0.5 * amp * rng.standard_normal(T),
                "test_loss": base + 0.5 * amp * rng.standard_normal(T)})
        point.freeze()
        points.append(point)
    return scaling.Study(points, np.arange(T, dtype=float), "coupled" if coupled else "uncoupled",
                         [])


@pytest.mark.parametrize("rank", [3, 64])
def test_synthetic_ensembles_give_back_exponent_limit_and_coverage(rank):
    """Known exponent -1/2 and limit 0.3, in ensembles shaped like the
    README's width study (9 widths, 8 seeds up to 65 536 and 4 above, 64
    probes whose noise is correlated as real outputs are, of 3 or 64
    effective components): the estimates near them, the 95% intervals of
    the exponents, of the limit (at the end and at the first logged time)
    and of every point's output std covering them in 93 to 97% of 400
    ensembles, so does the free bias exponent's (q = 1) where the fit is
    defined, and the outputs' chi2/dof is about 1 (median)."""
    rng = np.random.default_rng(7 + rank)
    widths = [64, 256, 1024, 4096, 16384, 65536, 262144, 524288, 1048576]
    hits = {"output": 0, "loss": 0, "test_loss": 0, "limit": 0, "limit at t = 0": 0}
    estimates, chi2, std_hits, q_hits, q_fits = [], [], 0, 0, 0
    basis = np.array([np.cos((k + 1) * np.linspace(-1, 1, 64)) for k in range(rank)])
    true_std = np.sqrt(np.mean((basis ** 2).sum(axis=0))) * (4.0 * np.array(widths)) ** -0.5
    trials = 400
    for trial in range(trials):
        res = scaling.analyse(synthetic(rng, widths, [8] * 6 + [4] * 3, probes=64, T=2,
                                        rank=rank), draws=50, seed=trial)
        obs = res["observables"]
        for name in ("output", "loss", "test_loss"):
            p, lo, hi = obs[name]["exponent"]
            hits[name] += lo <= -0.5 <= hi
        m, lo, hi = obs["loss"]["limit"]["limit"]
        hits["limit"] += lo <= 0.3 <= hi
        assert np.allclose(obs["loss"]["limit_t"][-1], [m, lo, hi], rtol=1e-12)  # every time
        m, lo, hi = obs["loss"]["limit_t"][0]
        hits["limit at t = 0"] += lo <= 0.3 <= hi
        estimates.append(obs["output"]["exponent"][0])
        chi2.append(obs["output"]["chi2_dof"])
        lo, hi = map(np.array, obs["output"]["std_ci"])
        std_hits += int(((lo <= true_std) & (true_std <= hi)).sum())
        q, lo, hi = obs["loss"]["free_bias_exponent"]  # m_inf + b / N: q = 1
        if np.isfinite(lo):
            q_hits += lo <= 1 <= hi
            q_fits += 1
    assert abs(np.mean(estimates) + 0.5) < 0.01
    assert 0.93 <= std_hits / (trials * len(widths)) <= 0.97, std_hits
    assert q_fits > 0.6 * trials and 0.93 <= q_hits / q_fits <= 0.97, (q_hits, q_fits)
    assert 0.7 < np.median(chi2) < 1.3, np.median(chi2)
    for name, count in hits.items():
        assert 0.93 <= count / trials <= 0.97, (name, count)
    # A steeper law, and the free bias exponent on a nearly noiseless ensemble.
    widths = widths[:6]
    res = scaling.analyse(synthetic(rng, widths, [8] * 6, p=-1.0), draws=300)
    assert abs(res["observables"]["output"]["exponent"][0] + 1.0) < 0.1
    res = scaling.analyse(synthetic(rng, widths, [8] * 6, p=-2.0, b=50.0), draws=100)
    q, lo, hi = res["observables"]["loss"]["free_bias_exponent"]
    assert abs(q - 1.0) < 0.05 and lo <= 1.0 <= hi


def synthetic_key(rng, values, widths, seeds, q=1.0, p=-0.5, probes=64, T=2, rho=0.0, rank=8):
    """A key study with known answers: outputs and losses whose std over
    seeds is v^q N^p (N = 4 M); the same seeds at every value (as
    jobs/study.sh runs a grid), a seed's noise shared across the values
    with correlation rho; the probes' noise of rank smooth components."""
    basis = np.array([np.cos((k + 1) * np.linspace(-1, 1, probes)) for k in range(rank)])
    points = []
    for k, width in enumerate(widths):
        common = [(rng.standard_normal((T, rank)), rng.standard_normal(T)) for _ in range(seeds)]
        for v in values:
            point = scaling.Point(4, width, v)
            amp = v ** q * (4 * width) ** p
            for s, (cz, cl) in enumerate(common):
                z = rho * cz + np.sqrt(1 - rho ** 2) * rng.standard_normal((T, rank))
                loss = rho * cl + np.sqrt(1 - rho ** 2) * rng.standard_normal(T)
                point.add(1000 * k + s, f"v{v}/M{width}/s{s}", {
                    "output": np.linspace(0, 1, probes)[None, :, None] + amp * (z @ basis)[..., None],
                    "loss": 0.3 + amp * loss, "test_loss": 0.4 + amp * loss})
            points.append(point)
    for point in points:
        point.freeze()
    return scaling.Study(points, np.arange(T, dtype=float), "per sub-study", [])


@pytest.mark.parametrize("rho", [0.0, 0.9])
def test_key_study_gives_back_the_exponent_in_the_key(rho):
    """Exponent 1 in the key (as the hidden-width bound is linear in alpha)
    and -1/2 in L·M, with a seed's noise independent across the values or
    shared (rho = 0.9, as runs of one seed share their particles): the
    estimates near them, the key's 95% intervals covering 1 in 93-97% of 400
    ensembles, each value's width analysis, and a grid without two values
    at any (L, M) refused."""
    rng = np.random.default_rng(11)
    values, hits, estimates = [0.25, 0.5, 1, 2, 4], 0, []
    for trial in range(400):
        kres = scaling.key_analysis(synthetic_key(rng, values, [256], 8, rho=rho), draws=20)
        (point,) = kres["by_point"]
        assert point["protocol"] == "coupled" and point["values"] == values
        e, lo, hi = point["observables"]["output"]["exponent"]
        hits += lo <= 1.0 <= hi
        estimates.append(e)
    assert abs(np.mean(estimates) - 1.0) < 0.01 and 0.93 <= hits / 400 <= 0.97, hits
    study = synthetic_key(rng, [0.5, 1, 2, 4], [64, 256, 1024, 4096], 8, rho=rho)
    kres = scaling.key_analysis(study, draws=300)
    assert [(b["L"], b["M"]) for b in kres["by_point"]] == [(4, 64), (4, 256), (4, 1024),
                                                             (4, 4096)]
    s = scaling.key_summary(study, "model.alpha", kres)
    assert s["at"] == {"L": 4, "M": 4096, "protocol": "coupled"}
    p, lo, hi = s["fluctuation_exponent"]["output"]
    assert abs(p - 1.0) < 0.2 and lo <= p <= hi
    for e in s["per_value"]:
        p, lo, hi = e["fluctuation_exponent"]["output"]
        assert lo <= p <= hi and abs(p + 0.5) < 0.1
        assert e["limit"]["loss"][1] <= 0.3 + 0.01 and e["limit"]["loss"][2] >= 0.3 - 0.01
    lone = synthetic_key(rng, [1, 4], [64], 4)
    lone.points[1].width = 128  # value 4 at another width only
    with pytest.raises(scaling.StudyError, match="no grid point"):
        scaling.key_analysis(lone, draws=50)


def test_coupled_protocol_is_detected_and_resampled_jointly():
    rng = np.random.default_rng(3)
    study = synthetic(rng, [64, 256, 1024, 4096], [6] * 4, coupled=True)
    res = scaling.analyse(study, draws=300)
    assert res["protocol"] == "coupled"
    p, lo, hi = res["observables"]["output"]["distance_exponent"]
    assert lo <= p <= hi and abs(p + 0.5) < 0.15


def test_coupled_study_keeps_the_seeds_every_point_has(tmp_path):
    """MFRES_STUDY_COUPLED=1: every point uses seeds 1..3; with one run
    removed, the analysis leaves that seed out everywhere, with a warning."""
    out = tmp_path / "coupled"
    proc = run_study(out, {"MFRES_STUDY_WIDTHS": "16 32", "MFRES_STUDY_SEEDS": "3",
                           "MFRES_STUDY_COUPLED": "1"})
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert json.load(open(out / "analysis" / "summary.json"))["protocol"] == "coupled"
    assert mfresfile.load_run(out / "L0004-M00000032" / "s002").value("init.seed") == 2
    shutil.rmtree(out / "L0004-M00000016" / "s002")
    proc = analysis("width", out, "--out", tmp_path / "a")
    assert proc.returncode == 0, proc.stderr
    assert "L0004-M00000032/s002 left out" in proc.stderr
    assert [p["seeds"] for p in json.load(open(tmp_path / "a" / "summary.json"))["points"]] == [2, 2]


def test_report_shows_a_study(study, tmp_path):
    out, _ = study
    page_path = tmp_path / "report.html"
    script("report.py", out, "--out", page_path)
    page = open(page_path).read()
    assert "fluctuation exponent (output)" in page and "<td>64</td>" in page
    sources = re.findall(r"src='([^']+)'", page)
    assert len(sources) == 5
    for src in sources:
        assert_png(os.path.join(tmp_path, src))
    assert "http" not in page


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

