"""The C gradient and update against the independent NumPy reference."""
import os
import subprocess

import numpy as np
import pytest

from conftest import ENV, TOOLS, write_config
from reference import ACTIVATIONS, step

LOSSES = ["mse", "cross_entropy"]
ARCHS = ["resnet", "shallow"]


def dump(config, *sets):
    out = subprocess.run([os.path.join(TOOLS, "dump_step"), config, *sets], capture_output=True,
                         text=True, env=ENV, timeout=60, check=True).stdout
    arrays = {}
    for line in out.splitlines():
        parts = line.split()
        ndim = int(parts[1])
        shape = [int(v) for v in parts[2:2 + ndim]]
        arrays[parts[0]] = np.array([float(v) for v in parts[2 + ndim:]]).reshape(shape)
    return arrays


def rel_err(a, b):
    return np.linalg.norm(a - b) / np.linalg.norm(b)


@pytest.mark.parametrize("act", ACTIVATIONS)
@pytest.mark.parametrize("loss", LOSSES)
@pytest.mark.parametrize("arch", ARCHS)
def test_step_matches_numpy(tmp_path, act, loss, arch):
    kind = "spirals" if loss == "cross_entropy" else "teacher"
    cfg = write_config(tmp_path / "c.ini", f"""
[model]
layers = 3
width = 150
dim = 5
activation = {act}
architecture = {arch}
alpha = 1.7
[data]
kind = {kind}
samples = 37
[train]
loss = {loss}
order = shuffle
lr = 0.3
weight_decay = 0.01
""")
    d = dump(cfg)
    alpha, _, _, _, lr, wd, d_out = d["scalars"]
    E, grads, new = step(d["x"], d["y"], d["u"], d["w"], d["b"], d["order"].astype(int), act,
                         loss, arch, alpha, int(d_out), lr, wd)
    assert abs(d["loss"][0] - E) <= 1e-12 * abs(E)
    for name, ref in zip(("grad_u", "grad_w", "grad_b"), grads):
        assert np.linalg.norm(ref) > 0
        assert rel_err(d[name], ref) < 1e-10, name
    for name, ref in zip(("u1", "w1", "b1"), new):
        assert rel_err(d[name], ref) < 1e-12, name


def test_shuffled_order_is_a_nontrivial_permutation(tmp_path):
    """The reference really exercises the shuffled order: step 0's order of
    6 layers is a permutation other than the identity."""
    cfg = write_config(tmp_path / "c.ini", "[model]\nlayers = 6\nwidth = 4\n"
                       "[train]\norder = shuffle\n")
    order = dump(cfg)["order"].astype(int)
    assert sorted(order) == list(range(6)) and list(order) != list(range(6))
