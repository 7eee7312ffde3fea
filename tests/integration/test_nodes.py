"""mfres across nodes, on one machine: Open MPI launches each fake node's
daemon through tests/tools/fake_node.sh (its own host name and its own
/tmp, in new UTS and mount namespaces), TCP over the loopback interface
between nodes, shared memory within one. The node-level code (shared
windows and work sharing per node, parallel HDF5 from several nodes, a
restart on another layout) runs as on a cluster of 2 nodes x 2 ranks."""
import os
import shutil
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


def on_nodes(hosts, shared, *args, timeout=180, wrap=()):
    """mpirun over fake nodes, e.g. hosts = "node1:2,node2:2"; wrap: a
    command that runs mpirun (e.g. strace)."""
    env = dict(ENV, MFRES_FAKE_NODES=os.path.join(shared, "node-tmp"))
    cmd = [*wrap, "mpirun", "--host", hosts, *LAUNCH, *map(str, args)]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, env=env)
    assert proc.returncode == 0, f"{cmd}\n{proc.stdout}\n{proc.stderr}"
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
    checkpoint and metrics row the same bits as on one rank."""
    ref, cfg = one_rank, os.path.join(shared, "small.ini")
    run = os.path.join(shared, "run")
    out = on_nodes("node1:2,node2:2", shared, MFRES, "train", cfg, "--set",
                   "output.checkpoint_every=20", "--set", f"train.share_work={share}",
                   "--out", run)
    assert "ranks 4" in out
    assert ("work sharing:" in out) == (share == "node")
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
