"""Shared helpers for the integration tests: where the binaries are, how to
launch them under MPI, and how to read a run directory."""
import os
import shlex
import subprocess
import sys

import numpy as np
import pytest

MFRES = os.environ.get("MFRES", os.path.abspath("build/mfres"))
TOOLS = os.environ.get("MFRES_TOOLS", os.path.abspath("build/tests"))
MPIRUN = shlex.split(os.environ.get("MPIRUN", "mpirun --oversubscribe"))
# odls_base_sigkill_timeout: when a rank exits non-zero, mpirun waits this
# many seconds (default 1) before it kills the others; the error tests'
# ranks all exit by themselves, so no wait (it saves a second a test).
ENV = dict(os.environ, OMPI_ALLOW_RUN_AS_ROOT="1", OMPI_ALLOW_RUN_AS_ROOT_CONFIRM="1",
           OPENBLAS_NUM_THREADS="1", OMPI_MCA_btl_vader_single_copy_mechanism="none",
           OMPI_MCA_odls_base_sigkill_timeout="0")


def mfres(*args, ranks=1, timeout=120, check=False):
    """Run mfres on `ranks` MPI ranks; returns the CompletedProcess. One rank
    starts without mpirun (MPI's singleton start, as a user runs `mfres
    config` or `mfres info`), about a second sooner than under mpirun."""
    launch = MPIRUN + ["-n", str(ranks)] if ranks > 1 else []
    cmd = launch + [MFRES] + [str(a) for a in args]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, env=ENV)
    if check and proc.returncode != 0:
        raise AssertionError(f"{cmd} exited {proc.returncode}\n{proc.stdout}\n{proc.stderr}")
    return proc


def pin_to_two_cpus(monkeypatch):
    """Bind the ranks of later mfres calls to CPUs 0 and 1, whatever the
    machine has: with 3 ranks, two share a core and run at half speed."""
    monkeypatch.setattr(sys.modules[__name__], "MPIRUN", ["taskset", "-c", "0,1"] + MPIRUN)
    monkeypatch.setitem(ENV, "OMPI_MCA_hwloc_base_binding_policy", "core:overload-allowed")


def read_metrics(run_dir):
    """metrics.tsv as a dict of column name -> numpy array."""
    path = os.path.join(run_dir, "metrics.tsv")
    with open(path) as f:
        header = f.readline().rstrip("\n").split("\t")
        rows = [line.rstrip("\n").split("\t") for line in f]
    data = np.array([[float(v) for v in row] for row in rows])
    return {name: data[:, i] for i, name in enumerate(header)}


def write_config(path, text):
    with open(path, "w") as f:
        f.write(text)
    return str(path)


@pytest.fixture
def small_config(tmp_path):
    """A small teacher run that takes well under a second."""
    return write_config(tmp_path / "small.ini", SMALL_CONFIG)


SMALL_CONFIG = """
[model]
layers = 3
width = 300
[data]
samples = 64
test_samples = 32
[train]
steps = 40
lr = 0.2
batch = 16
order = shuffle
temperature = 1e-6
weight_decay = 1e-3
[output]
log_every = 10
"""
