"""mfres across nodes, on one machine: Open MPI launches each fake node's
daemon through tests/tools/fake_node.sh (its own host name and its own
/tmp, in new UTS and mount namespaces), TCP over the loopback interface
between nodes, shared memory within one. The node-level code (shared
windows and work sharing per node, parallel HDF5 from several nodes, a
restart on another layout) runs as on a cluster of 2 nodes x 2 ranks."""
import os
import shutil
import signal
import subprocess

import h5py
import numpy as np
import pytest

from conftest import ENV, MFRES, SMALL_CONFIG, mfres, read_metrics, write_config
from test_checkpoint import assert_same_datasets, assert_same_metrics, ckpt

REPO = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
AGENT = os.path.join(REPO, "tests", "tools", "fake_node.sh")
LAUNCH = ["--mca", "plm_rsh_agent", AGENT, "--mca", "plm_rsh_no_tree_spawn", "1",
          "--mca", "btl_tcp_if_include", "lo", "--mca", "oob_tcp_if_include", "lo",
          "--mca", "mpi_yield_when_idle", "1"]


def can_make_namespaces():
    return subprocess.run(["unshare", "--uts", "--mount", "true"],
                          capture_output=True).returncode == 0


pytestmark = pytest.mark.skipif(not can_make_namespaces(),
                                reason="no UTS and mount namespaces here (needs root)")


@pytest.fixture
def shared(tmp_path):
    """A folder every fake node sees, holding the small configuration (the
    nodes' /tmp is their own, so pytest's tmp_path, under /tmp, is not
    one), and the nodes' /tmp."""
    root = os.path.join(REPO, "build", "test-nodes", tmp_path.name)
    shutil.rmtree(root, ignore_errors=True)
    os.makedirs(root)
    write_config(os.path.join(root, "small.ini"), SMALL_CONFIG)
    yield root
    shutil.rmtree(root, ignore_errors=True)


def launch_on_nodes(hosts, shared, *args, timeout=180, wrap=(), io=None):
    """mpirun over fake nodes, e.g. hosts = "node1:2,node2:2"; wrap: a
    command that runs mpirun (e.g. strace); io: Open MPI's MPI-IO component
    (ompio, its default, or romio321). Returns the CompletedProcess; a run
    past the timeout is killed with its daemons and fails the test with
    what it printed."""
    env = dict(ENV, MFRES_FAKE_NODES=os.path.join(shared, "node-tmp"))
    cmd = [*wrap, "mpirun", "--host", hosts, *LAUNCH, *(("--mca", "io", io) if io else ()),
           *map(str, args)]
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            env=env, start_new_session=True)
    try:
        out, err = proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        out, err = proc.communicate()
        pytest.fail(f"{cmd} did not end within {timeout} s\n{out}\n{err}")
    return subprocess.CompletedProcess(cmd, proc.returncode, out, err)


def on_nodes(hosts, shared, *args, **kwargs):
    """launch_on_nodes that must succeed; returns its output."""
    proc = launch_on_nodes(hosts, shared, *args, **kwargs)
    assert proc.returncode == 0, f"{proc.args}\n{proc.stdout}\n{proc.stderr}"
    return proc.stdout


def test_the_fake_nodes_are_nodes(shared):
    """Each rank sees its node's host name and a /tmp of that node only."""
    out = on_nodes("node1:2,node2:2", shared, "/bin/sh", "-c",
                   'touch /tmp/seen-$(hostname) && echo "$(hostname) $(ls /tmp | grep seen- | sort | tr "\\n" " ")"')
    assert sorted(out.split("\n")[:-1]) == ["node1 seen-node1 "] * 2 + ["node2 seen-node2 "] * 2


@pytest.fixture(scope="module")
def one_rank(tmp_path_factory):
    """The small run with checkpoints every 20 steps on one rank."""
    folder = tmp_path_factory.mktemp("one")
    cfg = write_config(folder / "small.ini", SMALL_CONFIG)
    mfres("train", cfg, "--set", "output.checkpoint_every=20", "--out", folder / "run",
          check=True)
    return folder / "run"


@pytest.mark.parametrize("share", ["off", "node"])
def test_two_nodes_equal_one_rank(shared, one_rank, share):
    """2 nodes x 2 ranks, work sharing within each node or none: every
    checkpoint and metrics row the same bits as on one rank; the manifest
    names both nodes."""
    ref, cfg = one_rank, os.path.join(shared, "small.ini")
    run = os.path.join(shared, "run")
    out = on_nodes("node1:2,node2:2", shared, MFRES, "train", cfg, "--set",
                   "output.checkpoint_every=20", "--set", f"train.share_work={share}",
                   "--out", run)
    assert "ranks 4" in out
    assert ("work sharing:" in out) == (share == "node")
    manifest = open(os.path.join(run, "manifest.txt")).read()
    assert "\nranks: 4\nnodes: 2\nhosts: node1 node2\n" in manifest, manifest
    for step in (20, 40):
        assert_same_datasets(ckpt(ref, step), ckpt(run, step))
    assert_same_metrics(ref, run)


def test_checkpoint_from_two_nodes_continues_on_another_layout(shared, one_rank):
    """A run stopped on 2 nodes x 2 ranks (its checkpoint written from both)
    continues on 3 ranks of a third node and ends as the one-rank run."""
    ref, cfg = one_rank, os.path.join(shared, "small.ini")
    run = os.path.join(shared, "run")
    on_nodes("node1:2,node2:2", shared, MFRES, "train", cfg, "--set", "train.steps=20",
             "--out", run)
    out = on_nodes("node3:3", shared, MFRES, "train", cfg, "--out", run, "--restart", "auto")
    assert "restarting from" in out and "written by 4 ranks" in out
    assert_same_datasets(ckpt(ref, 40), ckpt(run, 40))
    assert_same_metrics(ref, run)


def test_data_file_is_read_by_one_rank_of_two_nodes(shared):
    """Under strace (following mpirun's launch agent, the daemons and their
    ranks), one process of the 4 on 2 nodes opens the data file, and every
    rank trains on it (the run equals one rank's)."""
    data = os.path.join(shared, "d.h5")
    rng = np.random.default_rng(0)
    with h5py.File(data, "w") as f:
        f["x"], f["y"] = rng.standard_normal((50, 3)), rng.standard_normal((50, 2))
    cfg = write_config(os.path.join(shared, "d.ini"),
                       f"[data]\nkind = file\nfile = {data}\nsamples = 40\ntest_samples = 10\n"
                       "[train]\nsteps = 2\n[output]\nlog_every = 1\n")
    trace = os.path.join(shared, "trace")
    on_nodes("node1:2,node2:2", shared, MFRES, "train", cfg, "--out",
             os.path.join(shared, "four"), wrap=("strace", "-f", "-e", "trace=openat", "-o",
                                                 trace))
    opened = {line.split()[0] for line in open(trace) if data in line}
    assert len(opened) == 1, opened
    mfres("train", cfg, "--out", os.path.join(shared, "one"), check=True)
    assert (read_metrics(os.path.join(shared, "four"))["loss"] ==
            read_metrics(os.path.join(shared, "one"))["loss"]).all()


# ---- Faults that only clusters have: paths some nodes cannot see, inputs
# that differ between nodes, long paths, restart sequences. Each ends in
# its documented exit within a timeout, with Open MPI's two MPI-IO
# components (OMPIO, the default, and ROMIO), never in a hang.

IO = ["ompio", "romio321"]
FOUR = "node1:2,node2:2"


def node_tmp(shared, host, *parts):
    """A path in the /tmp of one fake node, as this machine sees it."""
    path = os.path.join(shared, "node-tmp", host, *parts)
    os.makedirs(os.path.dirname(path), exist_ok=True)
    return path


@pytest.mark.parametrize("io", IO)
def test_run_directory_one_node_cannot_see_stops_before_training(shared, io):
    """--out on node-local /tmp: rank 0 creates the run directory on node1;
    node2 sees none, or a folder of its own of that name. Exit 1 within
    seconds, naming the directory, rank 2 and node2, before training."""
    cfg = os.path.join(shared, "small.ini")
    proc = launch_on_nodes(FOUR, shared, MFRES, "train", cfg, "--out", "/tmp/run", io=io,
                           timeout=60)
    assert proc.returncode == 1, proc.stderr
    assert ("mfres: error: directory '/tmp/run': cannot see it: No such file or directory "
            "(rank 2 on node2)") in proc.stderr, proc.stderr
    assert "step" not in proc.stdout and not os.path.exists(node_tmp(shared, "node1", "run",
                                                                          "metrics.tsv"))
    os.makedirs(node_tmp(shared, "node2", "run"))
    proc = launch_on_nodes(FOUR, shared, MFRES, "train", cfg, "--out", "/tmp/run", io=io,
                           timeout=60)
    assert proc.returncode == 1, proc.stderr
    assert ("directory '/tmp/run': not the directory rank 0 sees (its probe file cannot be "
            "opened here: No such file or directory) (rank 2 on node2)") in proc.stderr
    assert os.listdir(node_tmp(shared, "node1", "run")) == ["config.ini"]


@pytest.mark.parametrize("io", IO)
def test_restart_file_one_node_cannot_see_is_refused(shared, one_rank, io):
    """--restart /tmp/ck.h5 with the file on node1 only, then with another
    checkpoint of that name on node2: exit 2 naming the file, the rank and
    its host; the run directory is not created."""
    cfg, run = os.path.join(shared, "small.ini"), os.path.join(shared, "run")
    shutil.copy(ckpt(one_rank, 20), node_tmp(shared, "node1", "ck.h5"))
    args = (MFRES, "train", cfg, "--restart", "/tmp/ck.h5", "--out", run)
    proc = launch_on_nodes(FOUR, shared, *args, io=io, timeout=60)
    assert proc.returncode == 2, proc.stderr
    assert ("mfres: error: checkpoint '/tmp/ck.h5': cannot open: No such file or directory "
            "(rank 2 on node2)") in proc.stderr, proc.stderr
    shutil.copy(ckpt(one_rank, 40), node_tmp(shared, "node2", "ck.h5"))
    proc = launch_on_nodes(FOUR, shared, *args, io=io, timeout=60)
    assert proc.returncode == 2, proc.stderr
    assert "checkpoint '/tmp/ck.h5': another file than rank 0's (" in proc.stderr, proc.stderr
    assert "(rank 2 on node2)" in proc.stderr and not os.path.exists(run)


def test_configuration_that_differs_between_nodes_is_rank_0s(shared, one_rank):
    """The configuration file is read by rank 0 and its text broadcast: a
    file of the same name that says another width on node2 changes nothing
    (the run equals one rank's run of node1's file)."""
    write_config(node_tmp(shared, "node1", "c.ini"), SMALL_CONFIG)
    write_config(node_tmp(shared, "node2", "c.ini"), SMALL_CONFIG.replace("width = 300",
                                                                          "width = 301"))
    run = os.path.join(shared, "run")
    on_nodes(FOUR, shared, MFRES, "train", "/tmp/c.ini", "--set", "output.checkpoint_every=20",
             "--out", run)
    assert_same_datasets(ckpt(one_rank, 40), ckpt(run, 40))
    assert_same_metrics(one_rank, run)


def padded(base, length):
    """A path of exactly `length` characters below base."""
    path = base
    while len(path) < length - 40:
        path = os.path.join(path, "d" * 30)
    return os.path.join(path, "r" * (length - len(path) - 1))


@pytest.mark.parametrize("io", IO)
def test_paths_at_their_limits_work(shared, one_rank, io):
    """A run directory of 191 characters (the most [output] dir takes)
    trains, checkpoints and continues with --restart auto on both nodes; a
    checkpoint of 244 characters (the most a file given MPI-IO may have)
    restarts. (One character more is refused: test_cli.)"""
    cfg = os.path.join(shared, "small.ini")
    run = padded(shared, 191)
    on_nodes(FOUR, shared, MFRES, "train", cfg, "--set", "train.steps=20", "--out", run, io=io)
    out = on_nodes(FOUR, shared, MFRES, "train", cfg, "--restart", "auto", "--out", run, io=io)
    assert "restarting from" in out
    assert_same_datasets(ckpt(one_rank, 40), ckpt(run, 40))
    start = padded(shared, 244)
    os.makedirs(os.path.dirname(start), exist_ok=True)
    shutil.copy(ckpt(one_rank, 20), start)
    on_nodes(FOUR, shared, MFRES, "train", cfg, "--restart", start, "--out",
             os.path.join(shared, "from-long"), io=io)
    assert_same_datasets(ckpt(one_rank, 40), ckpt(os.path.join(shared, "from-long"), 40))


def test_restart_sequences_on_two_nodes_end_as_one_run(shared, one_rank):
    """On 2 nodes: a run to step 40 (checkpoints every 10, 3 kept), a
    restart from step 20 to step 26 (every 5), then --restart auto to step
    40: the older start supersedes 30 and 40, pruning never removes the
    start or this run's own checkpoints, and step 40 ends with the bits of
    one rank's uninterrupted run."""
    cfg, run = os.path.join(shared, "small.ini"), os.path.join(shared, "run")
    keep = ("--set", "output.checkpoint_keep=2")
    on_nodes(FOUR, shared, MFRES, "train", cfg, "--set", "output.checkpoint_every=10", "--set",
             "output.checkpoint_keep=3", "--out", run)
    on_nodes(FOUR, shared, MFRES, "train", cfg, "--restart", ckpt(run, 20), "--set",
             "train.steps=26", "--set", "output.checkpoint_every=5", *keep, "--out", run)
    steps = sorted(int(f[5:13]) for f in os.listdir(os.path.join(run, "checkpoints"))
                   if f.startswith("ckpt-"))
    assert steps == [20, 25, 26]
    out = on_nodes(FOUR, shared, MFRES, "train", cfg, "--restart", "auto", *keep, "--out", run)
    assert f"restarting from {ckpt(run, 26)}" in out
    assert_same_datasets(ckpt(one_rank, 40), ckpt(run, 40))
    assert_same_metrics(one_rank, run)


def test_run_directory_that_cannot_be_listed_or_seen_by_all_is_an_error(shared, one_rank):
    """--restart auto on 2 nodes: a run directory whose checkpoints/ cannot
    be listed (a file in its place) is exit 2, never "no checkpoints" (which
    would start again from step 0 over metrics.tsv); one whose checkpoints
    rank 0 lists on node1's /tmp but node2 cannot see is exit 2 naming
    node2. Neither run directory changes."""
    cfg = os.path.join(shared, "small.ini")
    run = os.path.join(shared, "run")
    os.makedirs(run)
    write_config(os.path.join(run, "checkpoints"), "not a folder\n")
    write_config(os.path.join(run, "metrics.tsv"), "precious\n")
    proc = launch_on_nodes(FOUR, shared, MFRES, "train", cfg, "--restart", "auto", "--out", run,
                           timeout=60)
    assert proc.returncode == 2, proc.stderr
    assert (f"cannot list '{run}/checkpoints' (rank 0 on node1): Not a directory"
            in proc.stderr), proc.stderr
    assert open(os.path.join(run, "metrics.tsv")).read() == "precious\n"
    local = node_tmp(shared, "node1", "run")
    shutil.copytree(one_rank, local)
    before = sorted(os.listdir(os.path.join(local, "checkpoints")))
    proc = launch_on_nodes(FOUR, shared, MFRES, "train", cfg, "--restart", "auto", "--set",
                           "train.steps=60", "--out", "/tmp/run", timeout=60)
    assert proc.returncode == 2, proc.stderr
    assert ("skipping checkpoint '/tmp/run/checkpoints/ckpt-00000040.h5': cannot open: No such "
            "file or directory (rank 2 on node2)") in proc.stderr, proc.stderr
    assert "none of the 2 checkpoints in '/tmp/run/checkpoints' is usable" in proc.stderr
    assert sorted(os.listdir(os.path.join(local, "checkpoints"))) == before
