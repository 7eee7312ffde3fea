"""The C gradient and update against the independent NumPy reference."""
import os
import subprocess

import h5py
import numpy as np
import pytest

from conftest import ENV, TOOLS, mfres, write_config
from reference import ACTIVATIONS, forward, step

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


def model_config(tmp_path, act, loss, arch, data, train):
    """L = 3, M = 150, D = 5, 37 training samples (teacher, or spirals for
    cross_entropy), with extra [data] and [train] lines."""
    kind = "spirals" if loss == "cross_entropy" else "teacher"
    return write_config(tmp_path / "c.ini", f"""
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
{data}[train]
loss = {loss}
{train}""")


def rel_err(a, b):
    return np.linalg.norm(a - b) / np.linalg.norm(b)


@pytest.mark.parametrize("act", ACTIVATIONS)
@pytest.mark.parametrize("loss", LOSSES)
@pytest.mark.parametrize("arch", ARCHS)
def test_step_matches_numpy(tmp_path, act, loss, arch):
    cfg = model_config(tmp_path, act, loss, arch, "", "order = shuffle\nlr = 0.3\n"
                       "weight_decay = 0.01\n")
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


@pytest.mark.parametrize("loss, arch", [("mse", "resnet"), ("cross_entropy", "resnet"),
                                        ("mse", "shallow")])
def test_probe_outputs_equal_a_numpy_forward_pass(tmp_path, loss, arch):
    """outputs.h5 holds, at every logged step, z(x) on the first data.probes
    test samples: equal to a NumPy forward pass of the checkpoint's particles
    of that step (2 ranks), and the same rows as the checkpoint's own."""
    kind = "spirals" if loss == "cross_entropy" else "teacher"
    cfg = model_config(tmp_path, "tanh", loss, arch, "test_samples = 40\nprobes = 24\n",
                       "steps = 6\n[output]\nlog_every = 3\ncheckpoint_every = 3\n"
                       "checkpoint_keep = 5\n")
    run = tmp_path / "run"
    mfres("train", cfg, "--out", run, ranks=2, check=True)
    with h5py.File(run / "outputs.h5", "r") as f:
        steps, outputs, probes = f["step"][()], f["output"][()], f["probes/x"][()]
    assert list(steps) == [0, 3, 6] and outputs.shape == (3, 24, 2 if kind == "spirals" else 1)
    for row, step_k in enumerate(steps[1:], 1):
        with h5py.File(run / "checkpoints" / f"ckpt-{step_k:08d}.h5", "r") as f:
            order = np.argsort(f["particles/blocks/id"][()])
            u, w = (f[f"particles/blocks/{k}/value"][0][order].reshape(3, 150, 5) for k in "uw")
            b = f["particles/blocks/b/value"][0][order].reshape(3, 150)
            x_test = f["parameters/data/x_test"][()]
            stored = f["observables/output/value"][()]
        np.testing.assert_array_equal(probes, x_test[:24])
        x = np.zeros((24, 5))
        x[:, :x_test.shape[1]] = x_test[:24]
        z = forward(x, u, w, b, range(3), "tanh", arch, 1.7)[-1][:, :outputs.shape[2]]
        assert np.abs(outputs[row] - z).max() <= 1e-12 * np.abs(z).max()
        # Rows before step k; the final checkpoint, written after the last row, all.
        assert len(stored) == (row + 1 if step_k == steps[-1] else row)
        np.testing.assert_array_equal(stored, outputs[:len(stored)])
