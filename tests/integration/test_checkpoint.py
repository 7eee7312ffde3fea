"""Checkpoints, snapshots and restart: exact continuation on the same and on
other rank counts, runs killed at any moment (also half-way through a
checkpoint write), signals and max_time, the H5MD layout as h5py sees it, and
bad files."""
import hashlib
import os
import re
import shutil
import signal
import subprocess
import sys
import time

import h5py
import numpy as np
import pytest

from conftest import (ENV, MFRES, MPIRUN, SMALL_CONFIG, mfres, pin_to_two_cpus, read_metrics,
                      write_config)

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "..", "analysis"))
from mfresfile import Measure, checksum  # noqa: E402  checksum: an independent implementation

COMPARED = ["step", "time", "loss", "test_loss", "test_accuracy", "grad_norm", "shallow_gap"]


def particles(path):
    with h5py.File(path, "r") as f:
        return [f[f"particles/blocks/{k}/value"][()] for k in "uwb"]


def ckpt(run, step):
    return os.path.join(run, "checkpoints", f"ckpt-{step:08d}.h5")


def read_outputs(run):
    with h5py.File(os.path.join(run, "outputs.h5"), "r") as f:
        return {k: f[k][()] for k in ("step", "time", "loss", "test_loss", "output")}


def assert_same_metrics(a, b, rtol=0.0):
    """metrics.tsv and outputs.h5 (the probe outputs included) of two runs."""
    ma, mb = read_metrics(a), read_metrics(b)
    for col in COMPARED:
        np.testing.assert_allclose(mb[col], ma[col], rtol=rtol, atol=0, err_msg=col)
    oa, ob = read_outputs(a), read_outputs(b)
    for name, value in oa.items():
        np.testing.assert_allclose(ob[name], value, rtol=rtol, atol=1e-14 if rtol else 0,
                                   err_msg=f"outputs.h5 {name}")
    np.testing.assert_array_equal(ob["loss"], mb["loss"])


def tree_digest(path):
    """Hash of every file below path, to prove nothing was touched."""
    digest = {}
    for root, _, files in os.walk(path):
        for name in files:
            full = os.path.join(root, name)
            digest[full] = hashlib.sha256(open(full, "rb").read()).hexdigest()
    return digest


@pytest.fixture(scope="module")
def reference_once(tmp_path_factory):
    """An uninterrupted 40-step run on 2 ranks with checkpoints every 20 of
    the small configuration, made once for this file's tests."""
    folder = tmp_path_factory.mktemp("reference")
    run = folder / "ref"
    mfres("train", write_config(folder / "small.ini", SMALL_CONFIG), "--set",
          "output.checkpoint_every=20", "--out", run, ranks=2, check=True)
    return run


@pytest.fixture
def reference(tmp_path, reference_once):
    """A copy of that run for one test, which may change it."""
    run = tmp_path / "ref"
    shutil.copytree(reference_once, run)
    return run


def test_exact_continuation_same_ranks(tmp_path, small_config, reference):
    part = tmp_path / "part"
    mfres("train", small_config, "--set", "train.steps=20", "--out", part, ranks=2, check=True)
    proc = mfres("train", small_config, "--out", part, "--restart", "auto", ranks=2, check=True)
    assert "restarting from" in proc.stdout and "ckpt-00000020.h5" in proc.stdout
    for a, b in zip(particles(ckpt(reference, 40)), particles(ckpt(part, 40))):
        assert np.array_equal(a, b)  # bitwise
    assert_same_metrics(reference, part)
    assert list(read_metrics(part)["step"]) == [0, 10, 20, 30, 40]  # no duplicates, no gaps


@pytest.mark.parametrize("ranks, split", [
    (1, []), (3, []),
    (3, ["--set", "train.balance_every=2"]), (2, ["--set", "train.share_work=off"])])
def test_exact_continuation_other_ranks(tmp_path, small_config, reference, ranks, split):
    """On another rank count, and with the work split otherwise (load
    balancing, no work sharing: keys a restart may change), the same bits."""
    run = tmp_path / "other"
    mfres("train", small_config, "--out", run, "--restart", ckpt(reference, 20), *split,
          ranks=ranks, check=True)
    for a, b in zip(particles(ckpt(reference, 40)), particles(ckpt(run, 40))):
        assert np.array_equal(a, b)  # bitwise
    assert_same_metrics(reference, run)


def assert_same_datasets(a, b):
    """Every dataset of two checkpoints the same bits: particles, data and
    observables, but for the wall-clock seconds per step and the stored
    configuration text (its output.dir differs)."""
    with h5py.File(a, "r") as fa, h5py.File(b, "r") as fb:
        names = []
        fa.visititems(lambda n, o: names.append(n) if isinstance(o, h5py.Dataset) else None)
        assert len(names) > 30
        for name in names:
            if "seconds_per_step" in name or name == "parameters/config":
                continue
            assert fa[name][()].tobytes() == fb[name][()].tobytes(), f"{b}: {name}"


LAYOUTS = [(1, "train.share_work=off"), (2, "train.share_work=node"),
           (3, "train.share_work=off"), (4, "train.balance_every=1"),
           (7, "train.share_work=node")]


def test_bitwise_on_any_layout(tmp_path, small_config):
    """The whole trajectory is the same bits on 1, 2, 3, 4 and 7 ranks,
    with work sharing on or off and with load balancing: every checkpoint
    and metrics.tsv; and so is a run stopped half-way on 3 ranks and
    finished on 7."""
    args = ("--set", "model.width=1100", "--set", "train.batch=24",
            "--set", "output.checkpoint_every=20", "--set", "train.temperature=1e-6")
    runs = []
    for ranks, option in LAYOUTS:
        run = tmp_path / f"r{ranks}"
        mfres("train", small_config, *args, "--set", option, "--out", run, ranks=ranks,
              check=True)
        runs.append(run)
    half = tmp_path / "half"
    mfres("train", small_config, *args, "--set", "train.steps=20", "--out", half, ranks=3,
          check=True)
    mfres("train", small_config, *args, "--out", half, "--restart", "auto", ranks=7,
          check=True)
    for run in runs[1:] + [half]:
        for step in (20, 40) if run != half else (40,):  # half's 20 was a final one
            assert_same_datasets(ckpt(runs[0], step), ckpt(run, step))
        assert_same_metrics(runs[0], run)


def test_mpio_hints_and_file_locking(tmp_path, small_config, reference):
    """[output] mpio_hints and file_locking change how files are opened, not
    what they hold: a run with hints and locking on, continued on 3 ranks
    with other hints and best-effort locking, ends with the reference's
    checkpoint; a malformed hint stops every rank with exit 2 before the
    run directory exists."""
    part = tmp_path / "part"
    mfres("train", small_config, "--set", "train.steps=20", "--set", "output.file_locking=on",
          "--set", "output.mpio_hints=romio_cb_write=enable,cb_nodes=1", "--out", part,
          ranks=2, check=True)
    proc = mfres("train", small_config, "--set", "output.file_locking=best_effort",
                 "--set", "output.mpio_hints=striping_factor=2 striping_unit=65536",
                 "--out", part, "--restart", "auto", ranks=3, check=True)
    assert "restarting from" in proc.stdout
    assert_same_datasets(ckpt(reference, 40), ckpt(part, 40))
    bad = mfres("train", small_config, "--set", "output.mpio_hints=cb_nodes", "--out",
                tmp_path / "bad", ranks=2)
    assert bad.returncode == 2, bad.stderr
    assert "[output] mpio_hints: 'cb_nodes' is not name=value" in bad.stderr
    assert not (tmp_path / "bad").exists()


def test_complete_run_restarts_as_complete(tmp_path, small_config, reference):
    before = tree_digest(reference / "checkpoints")
    proc = mfres("train", small_config, "--out", reference, "--restart", "auto", ranks=2,
                 check=True)
    assert "already complete at step 40" in proc.stdout
    assert tree_digest(reference / "checkpoints") == before


def test_restart_auto_without_checkpoint_starts_fresh(tmp_path, small_config, reference):
    run = tmp_path / "fresh"
    proc = mfres("train", small_config, "--out", run, "--restart", "auto", ranks=2, check=True)
    assert "restarting" not in proc.stdout
    assert_same_metrics(reference, run)


# ---- killed runs ----

KILL_CONFIG = """
[model]
layers = 4
width = 20000
dim = 8
[data]
samples = 64
test_samples = 16
input_dim = 8
[train]
steps = 60
lr = 0.2
batch = 16
order = shuffle
temperature = 1e-6
[output]
log_every = 5
checkpoint_every = 5
checkpoint_keep = 3
"""


# mfres with the fault-injection hook (MFRES_TEST_KILL_IN_WRITE); `make` builds it
MFRES_FAULTS = os.environ.get("MFRES_FAULTS", os.path.abspath("build/mfres-faults"))


def launch(cfg, run, env=ENV, binary=MFRES):
    cmd = MPIRUN + ["-n", "2", binary, "train", cfg, "--out", str(run), "--restart", "auto"]
    return subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=env,
                            start_new_session=True)


def kill_session(sid):
    """SIGKILL every process of a session: mpirun and its ranks (Open MPI puts
    each rank in its own process group), as a node failure would."""
    out = subprocess.run(["ps", "-eo", "pid=,sid="], capture_output=True, text=True).stdout
    for line in out.splitlines():
        pid, session = (int(v) for v in line.split())
        if session == sid:
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass


def assert_all_checkpoints_whole(run):
    for name in os.listdir(run / "checkpoints"):
        if name.endswith(".h5"):
            mfres("info", run / "checkpoints" / name, check=True)


def test_kill_at_any_moment_then_restart(tmp_path):
    cfg = write_config(tmp_path / "k.ini", KILL_CONFIG)
    ref = tmp_path / "ref"
    mfres("train", cfg, "--out", ref, ranks=2, check=True, timeout=300)
    run = tmp_path / "run"
    # A node failure half-way through writing checkpoint 30 (the hook is in
    # the test build only: the ordinary binary runs to the end).
    env = dict(ENV, MFRES_TEST_KILL_IN_WRITE="ckpt-00000030.h5")
    ordinary = tmp_path / "ordinary"
    assert launch(cfg, ordinary, env).wait(timeout=300) == 0
    assert os.path.exists(ckpt(ordinary, 60))
    proc = launch(cfg, run, env, MFRES_FAULTS)
    assert proc.wait(timeout=300) != 0
    assert os.path.exists(ckpt(run, 30) + ".tmp") and not os.path.exists(ckpt(run, 30))
    assert_all_checkpoints_whole(run)
    # SIGKILL to the whole job at several moments, wherever it is.
    for delay in (0.9, 1.3, 1.7, 2.2):
        proc = launch(cfg, run)
        time.sleep(delay)
        kill_session(proc.pid)
        proc.wait(timeout=60)
        while subprocess.run(["pgrep", "-s", str(proc.pid)], capture_output=True).stdout:
            time.sleep(0.05)
        assert_all_checkpoints_whole(run)
    mfres("train", cfg, "--out", run, "--restart", "auto", ranks=2, check=True, timeout=300)
    for a, b in zip(particles(ckpt(ref, 60)), particles(ckpt(run, 60))):
        assert np.array_equal(a, b)
    assert_same_metrics(ref, run)
    # The newest 3 (checkpoint_keep), and at most the one that the run which
    # wrote them restarted from: pruning never removes a run's start.
    kept = checkpoint_steps(run / "checkpoints")
    assert kept[-3:] == [50, 55, 60] and len(kept) <= 4, kept


def test_checkpoints_by_the_clock_lose_at_most_their_interval(tmp_path):
    """No step interval, checkpoints every 0.005 minutes of wall time (the
    default is 15): a SIGKILL to the whole job leaves a checkpoint written
    at most 0.3 s, plus a step and a write, before the kill, and --restart
    auto ends with the bits of the uninterrupted run."""
    text = KILL_CONFIG.replace("checkpoint_every = 5", "checkpoint_minutes = 0.005")
    cfg = write_config(tmp_path / "k.ini", text.replace("steps = 60", "steps = 400").replace(
        "log_every = 5", "log_every = 50").replace("width = 20000", "width = 10000"))
    ref, run = tmp_path / "ref", tmp_path / "run"
    mfres("train", cfg, "--set", "output.checkpoint_minutes=0", "--out", ref, ranks=2,
          check=True, timeout=300)
    assert checkpoint_steps(ref / "checkpoints") == [400]
    proc = launch(cfg, run)
    wait_for_rows(run, 2)
    time.sleep(0.8)
    killed = time.time()
    kill_session(proc.pid)
    proc.wait(timeout=60)
    steps = checkpoint_steps(run / "checkpoints")
    assert 0 < steps[-1] < 400, steps
    assert killed - os.path.getmtime(ckpt(run, steps[-1])) < 0.3 + 0.5
    mfres("train", cfg, "--out", run, "--restart", "auto", ranks=2, check=True, timeout=300)
    for a, b in zip(particles(ckpt(ref, 400)), particles(ckpt(run, 400))):
        assert np.array_equal(a, b)
    assert_same_metrics(ref, run)


# ---- signals and time limits ----

LONG = ["--set", "train.steps=600", "--set", "output.log_every=50"]


def rank_pids(run):
    out = subprocess.run(["pgrep", "-f", f"^{MFRES} train .* --out {run}"], capture_output=True,
                         text=True).stdout
    return [int(p) for p in out.split()]


def wait_for_rows(run, rows, timeout=60):
    path = os.path.join(run, "metrics.tsv")
    end = time.time() + timeout
    while time.time() < end:
        if os.path.exists(path) and len(open(path).readlines()) > rows:
            return
        time.sleep(0.05)
    raise AssertionError("the run did not make progress")


def handles(pid, sig):
    """Whether process `pid` has a handler installed for `sig` (SigCgt)."""
    try:
        with open(f"/proc/{pid}/status") as f:
            mask = next(line for line in f if line.startswith("SigCgt:")).split()[1]
    except FileNotFoundError:
        return False
    return bool(int(mask, 16) >> (sig - 1) & 1)


def wait_for_handlers(run, proc, timeout=60):
    """The pids of the run's 2 ranks, as soon as both handle SIGTERM."""
    end = time.time() + timeout
    while True:
        pids = rank_pids(run)
        if len(pids) == 2 and all(handles(p, signal.SIGTERM) for p in pids):
            return pids
        assert time.time() < end and proc.poll() is None, "the ranks did not start"


@pytest.mark.parametrize("how", ["SIGTERM to one rank", "SIGUSR1 to mpirun",
                                 "SIGTERM during start-up"])
def test_signal_checkpoints_and_exits_3(tmp_path, small_config, how):
    """A signal stops the run with a checkpoint from which it completes
    exactly. train handles them from its first instruction, before MPI_Init:
    a rank signalled during start-up (no metrics.tsv yet, which here lasts
    about 0.3 s after the handlers are in place) stops after one step."""
    ref = tmp_path / "ref"
    mfres("train", small_config, *LONG, "--out", ref, ranks=2, check=True)
    run = tmp_path / "run"
    cmd = MPIRUN + ["-n", "2", MFRES, "train", small_config, *LONG, "--out", str(run)]
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            env=ENV)
    if how.endswith("start-up"):
        pids = wait_for_handlers(run, proc)
        assert not os.path.exists(run / "metrics.tsv"), "start-up was over before the signal"
        os.kill(pids[0], signal.SIGTERM)
    elif how.startswith("SIGTERM"):
        wait_for_rows(run, 2)
        os.kill(rank_pids(run)[-1], signal.SIGTERM)
    else:
        wait_for_rows(run, 2)
        proc.send_signal(signal.SIGUSR1)
    out, err = proc.communicate(timeout=60)
    assert proc.returncode == 3, err
    assert "stopped at step" in err and "(signal)" in err
    names = os.listdir(run / "checkpoints")
    assert len(names) == 1 and names[0].endswith(".h5")
    if how.endswith("start-up"):
        assert names == ["ckpt-00000001.h5"]
    mfres("train", small_config, *LONG, "--out", run, "--restart", "auto", ranks=2, check=True)
    for a, b in zip(particles(ckpt(ref, 600)), particles(ckpt(run, 600))):
        assert np.array_equal(a, b)
    assert_same_metrics(ref, run)


def test_second_sigint_stops_at_once(tmp_path, small_config):
    """The first SIGINT asks for a checkpoint after the current step; a second
    one, while that step (about a second here) still runs, ends the run at
    once, and no file under a final name is damaged."""
    run = tmp_path / "run"
    cmd = [MFRES, "train", small_config, "--set", "model.width=1000000", "--set",
           "train.steps=100", "--set", "output.log_every=1", "--out", str(run)]
    proc = subprocess.Popen(MPIRUN + ["-n", "1"] + cmd, stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL, env=ENV)
    wait_for_rows(run, 1)
    pid = rank_pids(run)[0]
    os.kill(pid, signal.SIGINT)
    time.sleep(0.2)  # two signals sent at once coalesce into one
    os.kill(pid, signal.SIGINT)
    assert proc.wait(timeout=30) not in (0, 3)
    assert not os.path.isdir(run / "checkpoints") or not [
        n for n in os.listdir(run / "checkpoints") if n.endswith(".h5")]


def test_max_time(tmp_path, small_config):
    run = tmp_path / "run"
    start = time.time()
    proc = mfres("train", small_config, "--set", "train.steps=1000000", "--set",
                 "output.max_time=2", "--out", run, ranks=2)
    assert proc.returncode == 3 and "max_time reached" in proc.stderr
    assert time.time() - start < 10
    assert len(os.listdir(run / "checkpoints")) == 1


def test_divergence_keeps_last_good_checkpoint(tmp_path, small_config):
    run = tmp_path / "run"
    proc = mfres("train", small_config, "--set", "model.activation=relu", "--set",
                 "model.alpha=4", "--set", "train.lr=1", "--set", "train.batch=0", "--set",
                 "output.checkpoint_every=1", "--set", "output.checkpoint_keep=5", "--out", run,
                 ranks=2)
    assert proc.returncode == 4 and "diverged at step" in proc.stderr
    step = int(proc.stderr.split("diverged at step ")[1].split(":")[0])
    names = sorted(os.listdir(run / "checkpoints"))
    assert len(names) >= 2 and names[-1] <= f"ckpt-{step:08d}.h5"  # none after divergence
    for name in names:
        for v in particles(run / "checkpoints" / name):
            assert np.all(np.isfinite(v))
        with h5py.File(run / "checkpoints" / name, "r") as f:
            assert np.all(np.isfinite(f["observables/loss/value"][()]))


# ---- layout ----

def test_layout_with_h5py(tmp_path, small_config):
    run = tmp_path / "run"
    mfres("train", small_config, "--set", "output.snapshot_every=20", "--set",
          "output.snapshot_stride=7", "--out", run, ranks=3, check=True)
    L, M, D = 3, 300, 4
    with h5py.File(ckpt(run, 40), "r") as f:
        assert list(f["h5md"].attrs["version"]) == [1, 1]
        assert f["h5md/creator"].attrs["name"] == b"mfres"
        assert f["h5md/author"].attrs["name"]
        assert f["particles/blocks/box"].attrs["dimension"] == 2 * D + 1
        assert list(f["particles/blocks/box"].attrs["boundary"]) == [b"none"] * (2 * D + 1)
        assert f["particles/blocks/u/value"].shape == (1, L * M, D)
        assert f["particles/blocks/w/value"].shape == (1, L * M, D)
        assert f["particles/blocks/b/value"].shape == (1, L * M)
        assert list(f["particles/blocks/u/step"][()]) == [40]
        assert list(f["particles/blocks/u/time"][()]) == [40 * 0.2]
        np.testing.assert_array_equal(f["particles/blocks/layer"][()], np.repeat(np.arange(L), M))
        np.testing.assert_array_equal(f["particles/blocks/id"][()], np.arange(L * M))
        c = f["checkpoint"].attrs
        assert c["complete"] == 1 and c["step"] == 40 and c["ranks"] == 3
        assert c["kind"] == b"checkpoint" and c["stride"] == 1
        p = f["parameters"].attrs
        assert p["model.width"] == M and p["model.activation"] == b"tanh"
        assert p["train.lr"] == 0.2 and p["output.dir"] == str(run).encode()
        text = f["parameters/config"][()].decode()
        assert text == "".join(open(run / "config.ini").readlines()[1:])
        assert f["parameters/data/x_train"].shape == (64, 4)
        assert f["parameters/data/y_train"].shape == (64, 1)
        assert f["parameters/data/x_test"].shape == (32, 4)
        m = read_metrics(run)
        for name in ("loss", "test_loss", "grad_norm", "shallow_gap"):
            np.testing.assert_array_equal(f[f"observables/{name}/value"][()], m[name])
            np.testing.assert_array_equal(f[f"observables/{name}/step"][()], m["step"])
            np.testing.assert_array_equal(f[f"observables/{name}/time"][()], m["time"])
        full = [f[f"particles/blocks/{k}/value"][()] for k in "uwb"]
    with h5py.File(run / "snapshots" / "snap-00000040.h5", "r") as s:
        assert s["checkpoint"].attrs["kind"] == b"snapshot"
        assert "data" not in s["parameters"]
        per_layer = (M + 6) // 7
        ids = s["particles/blocks/id"][()]
        np.testing.assert_array_equal(
            ids, [l * M + 7 * j for l in range(L) for j in range(per_layer)])
        np.testing.assert_array_equal(s["particles/blocks/layer"][()], ids // M)
        for k, whole in zip("uwb", full):
            np.testing.assert_array_equal(s[f"particles/blocks/{k}/value"][0], whole[0][ids])
    snaps = sorted(os.listdir(run / "snapshots"))
    assert snaps == ["snap-00000000.h5", "snap-00000020.h5", "snap-00000040.h5"]
    for path in (ckpt(run, 40), run / "snapshots" / "snap-00000040.h5"):
        assert_checksums(path)
    dump = subprocess.run(["h5dump", "-H", ckpt(run, 40)], capture_output=True, text=True)
    assert dump.returncode == 0 and 'DATASET "value"' in dump.stdout


def assert_checksums(path):
    """Every dataset of a file carries the checksum that the independent
    implementation of analysis/mfresfile.py computes (written by 3 ranks,
    each its share of the particle datasets)."""
    names = []
    with h5py.File(path, "r") as f:
        f.visititems(lambda name, obj: names.append(name) if isinstance(obj, h5py.Dataset)
                     else None)
        assert len(names) >= 30
        for name in names:
            assert int(f[name].attrs["checksum"]) == checksum(f[name][()]), name


def test_info_and_eval(tmp_path, small_config, reference):
    out = mfres("info", ckpt(reference, 40), ranks=2, check=True).stdout
    assert "step       40 of 40" in out and "written by mfres" in out and "on 2 ranks" in out
    assert "L = 3, M = 300, D = 4" in out and "(5 rows)" in out
    final = read_metrics(reference)["loss"][-1]
    for ranks in (1, 2, 3):
        out = mfres("eval", ckpt(reference, 40), ranks=ranks, check=True).stdout
        values = dict(line.split("\t") for line in out.splitlines() if "\t" in line)
        assert int(values["step"]) == 40 and int(values["ranks"]) == ranks
        np.testing.assert_allclose(float(values["loss"]), final, rtol=1e-12)


# ---- bad files ----

def bad_restart(tmp_path, small_config, reference, path, message, *extra):
    before = tree_digest(reference)
    proc = mfres("train", small_config, "--out", reference, "--restart", path, *extra,
                 ranks=2, timeout=60)
    assert proc.returncode == 2, proc.stderr
    assert message in proc.stderr, proc.stderr
    assert proc.stderr.count("mfres: error:") == 1
    assert tree_digest(reference) == before
    info = mfres("info", path, ranks=1, timeout=60)
    if "configuration" not in message:
        assert info.returncode == 2 and message in info.stderr


def edited_copy(tmp_path, reference, edit):
    path = str(tmp_path / "edited.h5")
    shutil.copy(ckpt(reference, 20), path)
    with h5py.File(path, "r+") as f:
        edit(f)
    return path


def test_truncated_file(tmp_path, small_config, reference):
    path = str(tmp_path / "trunc.h5")
    data = open(ckpt(reference, 20), "rb").read()
    open(path, "wb").write(data[: len(data) // 2])
    bad_restart(tmp_path, small_config, reference, path,
                f"checkpoint '{path}': cannot open as HDF5 (truncated or damaged?)")


def test_not_hdf5(tmp_path, small_config, reference):
    path = str(tmp_path / "text.h5")
    open(path, "w").write("step,loss\n")
    bad_restart(tmp_path, small_config, reference, path, f"checkpoint '{path}': not an HDF5 file")


def test_missing_file(tmp_path, small_config, reference):
    path = str(tmp_path / "none.h5")
    bad_restart(tmp_path, small_config, reference, path,
                f"checkpoint '{path}': cannot open: No such file or directory")


def test_another_codes_file(tmp_path, small_config, reference):
    path = str(tmp_path / "other.h5")
    with h5py.File(path, "w") as f:
        f.create_group("h5md/creator").attrs["name"] = np.bytes_("lammps")
    bad_restart(tmp_path, small_config, reference, path, "not an mfres file (written by 'lammps')")
    with h5py.File(path, "w") as f:
        f["x"] = np.zeros(3)
    bad_restart(tmp_path, small_config, reference, path, "not an mfres file (no /h5md/creator)")


def test_wrong_shape(tmp_path, small_config, reference):
    def edit(f):
        del f["particles/blocks/u/value"]
        f["particles/blocks/u/value"] = np.zeros((1, 10, 4))
    path = edited_copy(tmp_path, reference, edit)
    bad_restart(tmp_path, small_config, reference, path,
                "dataset 'particles/blocks/u/value' has shape [1][10][4], expected [1][900][4]")


def forged(f, step=None, time=None, particles_step=None):
    if step is not None:
        f["checkpoint"].attrs["step"] = np.int64(step)
    if time is not None:
        f["checkpoint"].attrs["time"] = np.float64(time)
    if particles_step is not None:
        for k in "uwb":
            f[f"particles/blocks/{k}/step"][0] = particles_step


@pytest.mark.parametrize("edit, message", [
    (lambda f: forged(f, step=-1), "step -1 is outside [0, train.steps = 40]"),
    (lambda f: forged(f, step=30), "time 4 is not step x lr = 6"),
    (lambda f: forged(f, step=20, time=4.0, particles_step=10),
     "'particles/blocks/u/step' holds step 10, the file says 20"),
    (lambda f: forged(f, step=40, time=8.0, particles_step=40),
     "the history ends at step 10, which does not fit a finished run at step 40"),
], ids=["negative step", "step and time disagree", "particles of another step",
        "a finished run's step on a mid-run state"])
def test_forged_step(tmp_path, small_config, reference, edit, message):
    """A checkpoint's step, time, particle steps and history must agree
    (checkpoint 20 of a 40-step run, rows at steps 0 and 10)."""
    bad_restart(tmp_path, small_config, reference, edited_copy(tmp_path, reference, edit),
                message)


def retyped(dtype):
    """An edit that rewrites the particles' u as dtype."""
    def edit(f):
        u = f["particles/blocks/u/value"][()]
        del f["particles/blocks/u/value"]
        f["particles/blocks/u/value"] = u.astype(dtype)
    return edit


@pytest.mark.parametrize("dtype, holds", [(np.float32, "32-bit floats"),
                                          (np.int64, "64-bit integers")])
def test_particles_of_another_type(tmp_path, small_config, reference, dtype, holds):
    bad_restart(tmp_path, small_config, reference,
                edited_copy(tmp_path, reference, retyped(dtype)),
                f"dataset 'particles/blocks/u/value' holds {holds}, expected 64-bit floats")


def flip_byte(path, dataset, at):
    """Flip one bit of byte `at` of a dataset's stored values, as a bad disk
    or a torn transfer would, outside HDF5."""
    with h5py.File(path, "r") as f:
        offset = f[dataset].id.get_offset()
    with open(path, "r+b") as f:
        f.seek(offset + at)
        byte = f.read(1)[0]
        f.seek(offset + at)
        f.write(bytes([byte ^ 0x10]))


@pytest.mark.parametrize("dataset", ["particles/blocks/u/value", "particles/blocks/id",
                                     "parameters/data/y_test", "observables/loss/value"])
def test_flipped_byte(tmp_path, small_config, reference, dataset):
    path = str(tmp_path / "flipped.h5")
    shutil.copy(ckpt(reference, 20), path)
    flip_byte(path, dataset, 13)
    bad_restart(tmp_path, small_config, reference, path,
                f"checkpoint '{path}': dataset '{dataset}' does not match its checksum (damaged)")


def test_restart_auto_skips_a_checkpoint_that_fails_its_checksum(tmp_path, small_config,
                                                                 reference):
    newest = ckpt(reference, 40)
    flip_byte(newest, "particles/blocks/b/value", 8 * 600 + 2)
    proc = mfres("train", small_config, "--out", reference, "--restart", "auto", ranks=3,
                 check=True)
    assert (f"warning: skipping checkpoint '{newest}': dataset 'particles/blocks/b/value' does "
            "not match its checksum (damaged)") in proc.stderr
    assert "ckpt-00000020.h5" in proc.stdout
    mfres("info", newest, check=True)  # rewritten whole by the finished run


def recompute_checksum(f, name):
    """What a forger who knows the checksum would do."""
    f[name].attrs["checksum"] = np.uint64(checksum(f[name][()]))


def test_non_finite_particles_change_nothing(tmp_path, small_config, reference):
    """A NaN among the particles (with a matching checksum): exit 2 once the
    file is read, before metrics.tsv, outputs.h5 or config.ini of the run are
    touched."""
    def edit(f):
        f["particles/blocks/w/value"][0, 123, 1] = np.nan
        recompute_checksum(f, "particles/blocks/w/value")
    path = edited_copy(tmp_path, reference, edit)
    before = tree_digest(reference)
    proc = mfres("train", small_config, "--out", reference, "--restart", path, ranks=2,
                 timeout=60)
    assert proc.returncode == 2, proc.stderr
    assert f"checkpoint '{path}': particle values that are not finite" in proc.stderr
    assert proc.stderr.count("mfres: error:") == 1
    assert tree_digest(reference) == before


def test_restart_auto_skips_a_forged_newest_checkpoint(tmp_path, small_config, reference):
    with h5py.File(ckpt(reference, 40), "r+") as f:
        forged(f, step=-1)
    proc = mfres("train", small_config, "--set", "train.steps=50", "--out", reference,
                 "--restart", "auto", ranks=2, check=True)
    assert "skipping" in proc.stderr and "step -1 is outside" in proc.stderr
    assert "ckpt-00000020.h5" in proc.stdout
    assert read_metrics(reference)["step"][-1] == 50


def test_text_attributes_written_by_h5py(tmp_path, small_config, reference):
    """h5py writes a str attribute as a variable-length string; mfres and
    mfresfile read it as the text it is (it used to be reported missing)."""
    def edit(f):
        f["checkpoint"].attrs["kind"] = "checkpoint"
        f["checkpoint"].attrs["version"] = "edited by h5py"
        f["h5md/creator"].attrs["name"] = "mfres"
    path = edited_copy(tmp_path, reference, edit)
    with h5py.File(path, "r") as f:
        assert h5py.check_string_dtype(f["checkpoint"].attrs.get_id("kind").dtype).length is None
    assert "written by mfres edited by h5py" in mfres("info", path, check=True).stdout
    mfres("train", small_config, "--out", tmp_path / "continued", "--restart", path, ranks=2,
          check=True)
    assert read_metrics(tmp_path / "continued")["step"][-1] == 40
    assert Measure(path).kind == "checkpoint"


def test_incomplete_file(tmp_path, small_config, reference):
    path = edited_copy(tmp_path, reference, lambda f: f["checkpoint"].attrs.__delitem__("complete"))
    bad_restart(tmp_path, small_config, reference, path, "incomplete (no complete = 1")


def test_conflicting_configuration(tmp_path, small_config, reference):
    bad_restart(tmp_path, small_config, reference, ckpt(reference, 20),
                "model.width = 512 in the configuration but 300 in the checkpoint",
                "--set", "model.width=512")
    bad_restart(tmp_path, small_config, reference, ckpt(reference, 20),
                "train.lr = 0.10000000000000001 in the configuration but 0.20000000000000001",
                "--set", "train.lr=0.1")
    bad_restart(tmp_path, small_config, reference, ckpt(reference, 20),
                "model.precision = mixed in the configuration but double in the checkpoint",
                "--set", "model.precision=mixed")


def test_mixed_precision_checkpoints(tmp_path, small_config, reference):
    """model.precision = mixed: float32 particles with checksums, read by
    mfres info and the Python reader; a restart on 3 ranks with load
    balancing continues the same bits; a restart in double precision is
    refused naming both (the other way round: test_conflicting_configuration);
    particles stored as float64 in a mixed checkpoint are refused."""
    mixed = ("--set", "model.precision=mixed", "--set", "output.checkpoint_every=20")
    ref, other = tmp_path / "mixed", tmp_path / "other"
    mfres("train", small_config, *mixed, "--set", "output.snapshot_every=20", "--set",
          "output.snapshot_stride=7", "--out", ref, ranks=2, check=True)
    mfres("train", small_config, *mixed, "--out", other, "--restart", ckpt(ref, 20), "--set",
          "train.balance_every=2", ranks=3, check=True)
    assert_same_datasets(ckpt(ref, 40), ckpt(other, 40))
    assert_same_metrics(ref, other)
    snap = Measure(str(ref / "snapshots" / "snap-00000040.h5"))  # every 7th particle, copied
    full = Measure(ckpt(ref, 40))
    assert snap.u.dtype == np.float32 and np.array_equal(snap.id, full.id[full.id % 300 % 7 == 0])
    assert np.array_equal(snap.theta(), full.theta()[full.id % 300 % 7 == 0])
    with h5py.File(ckpt(ref, 40), "r") as f:
        for k in "uwb":
            d = f[f"particles/blocks/{k}/value"]
            assert d.dtype == np.float32
            assert int(d.attrs["checksum"]) == checksum(d[()])
    m = Measure(ckpt(ref, 40))
    assert m.precision == "mixed" and m.u.dtype == np.float32
    assert m.theta().dtype == np.float64 and m.theta().shape == (3 * 300, 2 * m.dim + 1)
    info = mfres("info", ckpt(ref, 40), check=True).stdout
    assert "tanh, resnet, mixed precision; 900 particles stored (stride 1, float32)" in info
    # Mixed and double trajectories agree to float rounding, not to the bit.
    a, b = particles(ckpt(ref, 40))[0], particles(ckpt(reference, 40))[0]
    assert a.shape == b.shape and 0 < np.abs(a - b).max() < 1e-4
    bad_restart(tmp_path, small_config, ref, ckpt(ref, 20),
                "model.precision = double in the configuration but mixed in the checkpoint",
                "--set", "output.checkpoint_every=20")
    bad_restart(tmp_path, small_config, ref, edited_copy(tmp_path, ref, retyped(np.float64)),
                "dataset 'particles/blocks/u/value' holds 64-bit floats, expected 32-bit floats",
                *mixed)


def test_snapshot_is_not_a_checkpoint(tmp_path, small_config):
    run = tmp_path / "run"
    mfres("train", small_config, "--set", "output.snapshot_every=20", "--out", run, ranks=2,
          check=True)
    snap = str(run / "snapshots" / "snap-00000020.h5")
    proc = mfres("train", small_config, "--out", tmp_path / "new", "--restart", snap, ranks=2)
    assert proc.returncode == 2 and "a snapshot (the measure only), not a checkpoint" in proc.stderr
    proc = mfres("eval", snap)
    assert proc.returncode == 2 and "a snapshot holds no data" in proc.stderr


def test_restart_auto_skips_a_damaged_newest_checkpoint(tmp_path, small_config, reference):
    newest = ckpt(reference, 40)
    open(newest, "r+b").truncate(1000)
    proc = mfres("train", small_config, "--out", reference, "--restart", "auto", ranks=2,
                 check=True)
    assert "warning: skipping checkpoint" in proc.stderr and "ckpt-00000040.h5" in proc.stderr
    assert "restarting from" in proc.stdout and "ckpt-00000020.h5" in proc.stdout
    mfres("info", newest, check=True)  # rewritten whole by the finished run


def test_fresh_run_refuses_a_directory_with_checkpoints(tmp_path, small_config, reference):
    before = tree_digest(reference)
    proc = mfres("train", small_config, "--out", reference, ranks=2)
    assert proc.returncode == 2 and "already holds checkpoints" in proc.stderr
    assert tree_digest(reference) == before


@pytest.mark.parametrize("remedy", ["balance", "share"])
def test_uneven_cores_run_matches_one_rank(tmp_path, small_config, monkeypatch, remedy):
    """With train.balance_every particles change rank during the run; with
    train.share_work = node ranks compute each other's chunks. Here 3 ranks
    are bound to CPUs 0 and 1 (whatever the machine has), so ranks 0 and 2
    share a core and run at half speed, and either remedy must act. The
    metrics, the checkpoint and the strided snapshots are a 1-rank run's, bit
    for bit, so every particle was computed, updated (Langevin noise
    included) and written where it belongs, and which rank computed or held
    a chunk does not change the sums."""
    pin_to_two_cpus(monkeypatch)
    args = ("--set", "model.width=20000", "--set", "train.batch=64", "--set", "train.steps=20",
            "--set", "output.snapshot_every=10", "--set", "output.snapshot_stride=7")
    option = {"balance": "train.balance_every=1", "share": "train.share_work=node"}[remedy]
    one, three = tmp_path / "one", tmp_path / "three"
    mfres("train", small_config, *args, "--out", one, ranks=1, check=True)
    proc = mfres("train", small_config, *args, "--set", option, "--out", three, ranks=3,
                 check=True)
    if remedy == "balance":
        moves = re.search(r"load balance: (\d+) moves, (\d+) particles per layer moved",
                          proc.stdout)
        assert moves and int(moves[1]) > 0 and int(moves[2]) > 0, proc.stdout
    else:
        # How much is stolen depends on how the kernel's time slices fall
        # within passes of about a millisecond: some, and not nearly all.
        shared = re.search(r"work sharing: (\d+) of (\d+) chunk evaluations", proc.stdout)
        assert shared and 0 < int(shared[1]) < 0.7 * int(shared[2]), proc.stdout
    assert_same_metrics(one, three)
    files = [("checkpoints", "ckpt-00000020.h5")] + [
        ("snapshots", f"snap-{step:08d}.h5") for step in (0, 10, 20)]
    for folder, name in files:
        for a, b in zip(particles(one / folder / name), particles(three / folder / name)):
            assert a.shape == b.shape
            assert np.array_equal(a, b), name  # bitwise


# ---- a full disk ----

def on_small_disk(tmp_path, script, size="1m"):
    """Run a shell script with a tmpfs of `size` mounted at $DISK, in a
    private mount namespace (gone with the script: it copies out what the
    test inspects). Skips where mounting is not allowed."""
    disk = tmp_path / "disk"
    disk.mkdir()
    probe = subprocess.run(["unshare", "--mount", "sh", "-c",
                            f"mount -t tmpfs -o size=64k tmpfs {disk}"], capture_output=True)
    if probe.returncode != 0:
        pytest.skip("cannot mount a tmpfs in a mount namespace here")
    env = dict(ENV, DISK=str(disk), OUT=str(tmp_path), MPIRUN=" ".join(MPIRUN))
    return subprocess.run(["unshare", "--mount", "sh", "-c",
                           f"mount -t tmpfs -o size={size} tmpfs \"$DISK\" && {script}"],
                          env=env, capture_output=True, text=True, timeout=120)


FULL_DISK_RUN = ("$MPIRUN -n 2 {mfres} train jobs/configs/default.ini --out \"$DISK/run\" "
                 "--set model.width=1000 --set model.dim=5 --set train.steps=30 "
                 "--set output.checkpoint_every=10")


def assert_full_disk_handled(tmp_path, proc):
    """Exit 1 naming the file and the bytes it needs, no partial file, and
    the checkpoints written before it whole."""
    assert "rc=1" in proc.stdout, proc.stdout + proc.stderr
    ckpt30 = "run/checkpoints/ckpt-00000030.h5"
    assert f"mfres: error: no space left on device: '{tmp_path}/disk/{ckpt30}' needs about " \
        in proc.stderr, proc.stderr
    assert "the partial file" in proc.stderr or proc.stderr.count("mfres: error:") == 1
    after = tmp_path / "after"
    assert sorted(os.listdir(after / "checkpoints")) == ["ckpt-00000010.h5", "ckpt-00000020.h5"]
    for step in (10, 20):
        mfres("info", ckpt(after, step), check=True)
    assert read_metrics(after)["step"][-1] == 30  # every row written before the failure


def test_full_disk_is_reported_before_writing(tmp_path):
    """The checkpoint at step 30 does not fit: one message, exit 1, nothing
    partial left; with room made, --restart auto finishes the run."""
    run = FULL_DISK_RUN.format(mfres=MFRES)
    proc = on_small_disk(tmp_path, f"""
        {run}; echo rc=$?; cp -a "$DISK/run" "$OUT/after"
        mount -o remount,size=4m "$DISK" && {run} --restart auto; echo resumed=$?
        ls "$DISK/run/checkpoints" """)
    assert_full_disk_handled(tmp_path, proc)
    assert "resumed=0" in proc.stdout and "ckpt-00000030.h5" in proc.stdout.split("resumed=0")[1]


def test_full_disk_during_the_write(tmp_path):
    """The same, with the space check skipped (build/mfres-faults), so the
    collective write itself hits ENOSPC: the failing rank removes the
    partial file, says so and ends the job with exit 1."""
    run = FULL_DISK_RUN.format(mfres=f"env MFRES_TEST_SKIP_SPACE_CHECK=1 {MFRES_FAULTS}")
    proc = on_small_disk(tmp_path, f'{run}; echo rc=$?; cp -a "$DISK/run" "$OUT/after"')
    assert_full_disk_handled(tmp_path, proc)
    assert "(the partial file is removed; earlier checkpoints are kept)" in proc.stderr


def checkpoint_steps(folder):
    return sorted(int(name[5:13]) for name in os.listdir(folder)
                  if re.fullmatch(r"ckpt-\d{8}\.h5", name))


def test_restart_from_an_older_checkpoint_supersedes_the_later_ones(tmp_path, small_config):
    """Checkpoints 20, 30, 40; a restart from 20 to step 26 (checkpoints
    every 5, 2 kept) moves 30 and 40 into checkpoints/superseded-*/ instead
    of pruning its own start and its own checkpoints; the start (20) is
    never pruned while the run is on. --restart auto then continues from 26,
    the newest state of the run asked for, and a shortened run is refused:
    the end is the bits of an uninterrupted run to 30."""
    run, ref = tmp_path / "run", tmp_path / "ref"
    mfres("train", small_config, "--set", "output.checkpoint_every=10", "--set",
          "output.checkpoint_keep=3", "--out", run, ranks=2, check=True)
    assert checkpoint_steps(run / "checkpoints") == [20, 30, 40]
    proc = mfres("train", small_config, "--restart", ckpt(run, 20), "--set", "train.steps=26",
                 "--set", "output.checkpoint_every=5", "--out", run, ranks=2, check=True)
    assert "moved the 2 checkpoints after step 20" in proc.stdout, proc.stdout
    assert checkpoint_steps(run / "checkpoints") == [20, 25, 26]
    moved = [d for d in os.listdir(run / "checkpoints") if d.startswith("superseded-")]
    assert len(moved) == 1 and checkpoint_steps(run / "checkpoints" / moved[0]) == [30, 40]
    proc = mfres("train", small_config, "--restart", "auto", "--set", "train.steps=30",
                 "--set", "output.checkpoint_every=5", "--out", run, ranks=2, check=True)
    assert f"restarting from {ckpt(run, 26)} (step 26" in proc.stdout, proc.stdout
    assert "moved the" not in proc.stdout
    assert checkpoint_steps(run / "checkpoints") == [26, 30]
    proc = mfres("train", small_config, "--restart", "auto", "--set", "train.steps=28",
                 "--out", run, ranks=2)
    assert proc.returncode == 2 and "beyond train.steps = 28" in proc.stderr
    mfres("train", small_config, "--set", "train.steps=30", "--out", ref, ranks=2, check=True)
    for a, b in zip(particles(ckpt(ref, 30)), particles(ckpt(run, 30))):
        assert np.array_equal(a, b)
    assert_same_metrics(ref, run)


@pytest.mark.parametrize("restart", [[], ["--restart", "auto"]])
def test_checkpoints_that_cannot_be_listed_are_an_error(tmp_path, small_config, restart):
    """Only a missing checkpoints/ means "no checkpoints": one that cannot
    be listed (here a file in its place, ENOTDIR) stops the run with exit 2
    and the reason, before the run directory changes."""
    run = tmp_path / "run"
    run.mkdir()
    (run / "checkpoints").write_text("not a folder\n")
    (run / "metrics.tsv").write_text("precious\n")
    before = tree_digest(run)
    proc = mfres("train", small_config, *restart, "--out", run, ranks=2)
    assert proc.returncode == 2, proc.stdout + proc.stderr
    assert re.search(rf"cannot list '{re.escape(str(run))}/checkpoints' \(rank 0 on [^)]+\): "
                     r"Not a directory", proc.stderr), proc.stderr
    assert tree_digest(run) == before


def test_manifest_and_a_restart_on_other_kernels(tmp_path, small_config):
    """The run directory's manifest.txt gains a block per start, and every
    checkpoint records the manifest (mfres info prints it). A restart on
    another kernel path warns in one line naming what changed, and goes on."""
    run = tmp_path / "run"
    env = dict(ENV, MFRES_KERNELS="generic")
    subprocess.run(MPIRUN + ["-n", "2", MFRES, "train", small_config, "--set", "train.steps=20",
                             "--out", str(run)], env=env, check=True, capture_output=True)
    info = mfres("info", ckpt(run, 20), check=True).stdout
    assert re.search(r"^  kernels +generic$", info, re.M) and "  ranks        2" in info, info
    assert f"  command      {MFRES} train {small_config} --set train.steps=20" in info
    proc = mfres("train", small_config, "--restart", "auto", "--out", run, check=True)
    now = re.search(r"^kernels: (\w+)", open(run / "manifest.txt").read().split("# start")[2],
                    re.M).group(1)
    if now != "generic":
        assert (f"warning: this run differs from the one that wrote the checkpoint in what sets "
                f"the last bits (kernels generic -> {now})") in proc.stderr, proc.stderr
    assert open(run / "manifest.txt").read().count("# start\n") == 2
    assert re.search(rf"^  kernels +{now}$", mfres("info", ckpt(run, 40)).stdout, re.M)
