"""End-to-end runs of mfres under mpirun: rank-count invariance, training
that converges, the run directory's files."""
import re

import numpy as np
import pytest

from conftest import mfres, read_metrics, write_config

COMPARED = ["step", "time", "loss", "test_loss", "grad_norm", "shallow_gap"]


@pytest.mark.parametrize("arch", ["resnet", "shallow"])
def test_one_two_three_ranks_agree(tmp_path, small_config, arch):
    runs = {}
    for ranks in (1, 2, 3):
        out = tmp_path / f"r{ranks}"
        mfres("train", small_config, "--set", f"model.architecture={arch}", "--out", out,
              ranks=ranks, check=True)
        runs[ranks] = read_metrics(out)
    ref = runs[1]
    assert len(ref["step"]) == 5 and ref["step"][-1] == 40
    assert ref["loss"][-1] < 0.5 * ref["loss"][0]
    for ranks in (2, 3):
        for col in COMPARED:  # bitwise
            np.testing.assert_array_equal(runs[ranks][col], ref[col],
                                          err_msg=f"{col} on {ranks} ranks")


def test_teacher_loss_drops_100x(tmp_path):
    """d_in = 4, L = 4, M = 256 teacher: 100x lower loss in 500 steps, 2 ranks."""
    cfg = write_config(tmp_path / "t.ini", """
[model]
layers = 4
width = 256
[data]
kind = teacher
input_dim = 4
[train]
steps = 500
lr = 0.5
""")
    mfres("train", cfg, "--out", tmp_path / "run", ranks=2, check=True, timeout=120)
    m = read_metrics(tmp_path / "run")
    assert m["loss"][-1] < m["loss"][0] / 100, (m["loss"][0], m["loss"][-1])
    assert m["test_loss"][-1] < m["test_loss"][0] / 10
    assert np.all(np.isnan(m["test_accuracy"]))  # regression: no accuracy


def test_spirals_classification(tmp_path):
    cfg = write_config(tmp_path / "s.ini", """
[model]
layers = 3
width = 128
dim = 4
[data]
kind = spirals
samples = 200
test_samples = 200
noise = 0.02
[train]
loss = cross_entropy
steps = 600
lr = 0.5
batch = 50
[output]
log_every = 200
""")
    mfres("train", cfg, "--out", tmp_path / "run", ranks=2, check=True)
    m = read_metrics(tmp_path / "run")
    assert m["loss"][-1] < 0.6 * m["loss"][0]
    assert m["test_accuracy"][0] < 0.5 and m["test_accuracy"][-1] > 0.7
    assert np.all((m["test_accuracy"] >= 0) & (m["test_accuracy"] <= 1))


def test_run_directory(tmp_path, small_config):
    out = tmp_path / "run"
    proc = mfres("train", small_config, "--out", out, ranks=2, check=True)
    assert f"run directory: {out}" in proc.stdout
    assert "step 40/40" in proc.stdout and "ETA" in proc.stdout
    header = open(out / "metrics.tsv").readline().rstrip("\n").split("\t")
    assert header == ["step", "time", "loss", "test_loss", "test_accuracy", "grad_norm",
                      "shallow_gap", "seconds_per_step"]
    m = read_metrics(out)
    assert list(m["step"]) == [0, 10, 20, 30, 40]
    np.testing.assert_allclose(m["time"], m["step"] * 0.2)
    assert np.all(m["shallow_gap"] > 0) and np.all(m["grad_norm"] > 0)
    # The resolved configuration reproduces the run exactly.
    again = tmp_path / "again"
    mfres("train", out / "config.ini", "--out", again, ranks=2, check=True)
    m2 = read_metrics(again)
    for col in COMPARED:
        np.testing.assert_array_equal(m2[col], m[col])


def test_timers_add_up(tmp_path, small_config):
    """The timer table's total holds every save, the final one included: the
    disjoint parts (forward, backward, evaluation, output, balancing) add
    up to at most the total, on each of 2 ranks' means."""
    proc = mfres("train", small_config, "--set", "output.checkpoint_every=10", "--set",
                 "output.snapshot_every=10", "--out", tmp_path / "run", ranks=2, check=True)
    share = {}
    for line in proc.stdout.splitlines():
        fields = line.split()
        if len(fields) == 6 and fields[5].endswith("%"):
            share[fields[0]] = float(fields[5][:-1])
    assert share["total"] == 100.0 and share["output"] > 0, proc.stdout
    parts = sum(share.get(name, 0) for name in ("forward", "backward", "observables", "output",
                                                "balance"))
    assert parts <= 100.5, proc.stdout


def test_heartbeat_between_evaluated_rows(tmp_path, small_config):
    """Between evaluated rows, a short line at most progress_seconds apart:
    the step, steps per second and the ETA as h:mm:ss, in step order, with
    no metrics row of its own; progress_seconds = 0 turns it off."""
    args = ("train", small_config, "--set", "train.steps=400", "--set", "output.log_every=400")
    proc = mfres(*args, "--set", "output.progress_seconds=0.01", "--out", tmp_path / "a",
                 check=True)
    beats = re.findall(r"\] step (\d+)/400  ([0-9.e+]+) steps/s  ETA (\d+):(\d\d):(\d\d)$",
                       proc.stdout, re.M)
    steps = [int(b[0]) for b in beats]
    assert len(steps) >= 2 and steps == sorted(set(steps)) and 0 < steps[0] and steps[-1] < 400
    assert all(float(b[1]) > 0 for b in beats), proc.stdout
    assert list(read_metrics(tmp_path / "a")["step"]) == [0, 400]
    proc = mfres(*args, "--set", "output.progress_seconds=0", "--out", tmp_path / "b",
                 check=True)
    assert "steps/s" not in proc.stdout
