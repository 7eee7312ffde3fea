"""Hostile input on a fixed seed and budget: mutated configurations through
`mfres config` and `train`, and damaged checkpoints through `info` and
`train --restart`. Every case must end within its timeout with exit 0 or 2
(or 1 saying "out of memory", 3 stopped by max_time, 4 diverged, for runs a
mutated configuration makes huge or wild), print at most one error line,
and a refused restart must leave its run directory as it was; a restart
that is accepted must end exactly where the undamaged run ends, so a damage
that slips through unnoticed fails the test. A failing case names its
number and input, to be replayed by hand.

FUZZ_SEED and FUZZ_CASES (environment) change the seed and multiply the
budget, for longer hunts than make check affords."""
import hashlib
import os
import random
import resource
import shutil
import subprocess
from concurrent.futures import ThreadPoolExecutor

import h5py
import numpy as np
import pytest

from conftest import ENV, MFRES, MPIRUN, mfres, read_metrics, write_config

SEED = int(os.environ.get("FUZZ_SEED", "20261203"))
SCALE = float(os.environ.get("FUZZ_CASES", "1"))
CONFIG_CASES, TRAIN_CASES = int(80 * SCALE), int(6 * SCALE)
FILE_CASES, RESTART_CASES = int(60 * SCALE), int(8 * SCALE)

HOSTILE = ["", "-1", "0", "1", "1e999", "-1e999", "nan", "inf", "-inf", "1e-320", "0x10", "1.5",
           "1,5", "abc", "9223372036854775807", "9223372036854775808",
           "-9223372036854775809", "2147483647", "2147483648", "4294967296", "1099511627777",
           "2305843009213693953", "\x01", "a\tb", "\x7f", "é", "x" * 3000, "; comment", "[model]",
           "=", "==1", "tanh", "relu", "file", "shuffle", "cross_entropy", "node", "/dev/zero",
           "/nonexistent/d.h5", "."]


def limited():
    """Children get 4 GiB of address space: a mutated size fails as out of
    memory instead of swapping the machine. (Not under AddressSanitizer,
    whose shadow memory needs terabytes of address space; it caps
    allocations itself.)"""
    if "/asan/" not in MFRES:
        resource.setrlimit(resource.RLIMIT_AS, (4 << 30, 4 << 30))


def run(args, ranks=0, timeout=30):
    cmd = ([*MPIRUN, "-n", str(ranks)] if ranks else []) + [MFRES, *map(str, args)]
    try:
        return subprocess.run(cmd, env=ENV, capture_output=True, text=True, errors="replace",
                              timeout=timeout, preexec_fn=limited)
    except subprocess.TimeoutExpired:
        return None


def check_outcome(case, proc, allowed=(0, 2)):
    assert proc is not None, f"case {case}: no answer within the timeout (a hang)"
    code = proc.returncode
    ok = code in allowed or (code == 1 and "out of memory" in proc.stderr)
    assert ok, f"case {case}: exit {code}\n{proc.stderr[-3000:]}"
    errors = proc.stderr.count("mfres: error:")
    assert errors <= 1, f"case {case}: {errors} error lines\n{proc.stderr[-3000:]}"
    if code == 2:
        assert errors == 1, f"case {case}: exit 2 without a message\n{proc.stderr[-3000:]}"


def mutate_config(rng, lines):
    """One to three edits of a resolved configuration's lines."""
    lines = list(lines)
    for _ in range(rng.randint(1, 3)):
        i = rng.randrange(len(lines))
        what = rng.random()
        if what < 0.55 and "=" in lines[i]:
            value = rng.choice(HOSTILE) if rng.random() < 0.7 else str(10 ** rng.randint(0, 19))
            lines[i] = lines[i].split("=")[0] + "= " + value
        elif what < 0.65:
            del lines[i]
        elif what < 0.75:
            lines.insert(rng.randrange(len(lines) + 1), lines[i])
        elif what < 0.85:
            junk = bytes(rng.randrange(1, 256) for _ in range(rng.randint(1, 6)))
            j = rng.randrange(len(lines[i]) + 1)
            lines[i] = lines[i][:j] + junk.decode("latin-1") + lines[i][j:]
        else:
            lines = lines[:i] + [lines[i][: rng.randrange(len(lines[i]) + 1)]]
        if not lines:
            lines = ["["]
    return "\n".join(lines) + "\n"


@pytest.fixture(scope="module")
def resolved(tmp_path_factory):
    """The resolved form of a small configuration: every key, in its section."""
    base = tmp_path_factory.mktemp("fuzz") / "base.ini"
    base.write_text("[model]\nlayers = 3\nwidth = 64\n[data]\nsamples = 32\ntest_samples = 16\n"
                    "[train]\nsteps = 3\n[output]\nlog_every = 1\n")
    text = run(["config", base]).stdout
    return [line for line in text.splitlines() if line and not line.startswith(";")]


def test_mutated_configurations(tmp_path, resolved):
    rng = random.Random(SEED)
    cases = [mutate_config(rng, resolved) for _ in range(CONFIG_CASES)]
    paths = []
    for k, text in enumerate(cases):
        path = tmp_path / f"case{k:04d}.ini"
        path.write_bytes(text.encode("latin-1", errors="replace"))
        paths.append(path)
    with ThreadPoolExecutor(2) as pool:
        procs = list(pool.map(lambda p: run(["config", p]), paths))
    accepted = []
    for k, proc in enumerate(procs):
        check_outcome(f"{k} ({paths[k]})", proc)
        if proc.returncode == 0:
            accepted.append(k)
    print(f"mutated configurations: {len(accepted)} of {len(cases)} accepted")
    assert 0.05 < len(accepted) / len(cases) < 0.95  # the mutations reach both outcomes
    # Training on a sample of what was accepted, with the steps bounded.
    for k in rng.sample(accepted, min(TRAIN_CASES, len(accepted))):
        out = tmp_path / f"run{k:04d}"
        proc = run(["train", paths[k], "--out", out, "--set", "train.steps=3", "--set",
                    "output.max_time=20"], ranks=2, timeout=60)
        check_outcome(f"{k} ({paths[k]}) trained", proc, allowed=(0, 2, 3, 4))


def damage(rng, good, path):
    """Copy good to path with one random damage; returns its description."""
    data = bytearray(open(good, "rb").read())
    what = rng.random()
    if what < 0.35:
        spots = [rng.randrange(len(data)) for _ in range(rng.randint(1, 8))]
        for at in spots:
            data[at] ^= 1 << rng.randrange(8)
        desc = f"bits flipped at {spots}"
    elif what < 0.5:
        at, n = rng.randrange(len(data)), rng.randint(1, 4096)
        data[at:at + n] = bytes(len(data[at:at + n]))
        desc = f"{n} bytes zeroed at {at}"
    elif what < 0.6:
        at, n = rng.randrange(len(data)), rng.randint(1, 512)
        data[at:at + n] = bytes(rng.randrange(256) for _ in data[at:at + n])
        desc = f"{n} random bytes at {at}"
    elif what < 0.7:
        n = rng.randrange(len(data))
        del data[n:]
        desc = f"truncated to {n} bytes"
    else:
        desc = None
    open(path, "wb").write(bytes(data))
    if desc:
        return desc
    with h5py.File(path, "r+") as f:  # a structural edit, as a script might make
        names = []
        f.visititems(lambda n, o: names.append(n))
        name = rng.choice(names)
        obj = f[name]
        edit = rng.random()
        if edit < 0.3 and len(obj.attrs):
            key = rng.choice(list(obj.attrs))
            value = rng.choice([np.int64(-1), np.int64(2**62), np.float64(np.nan), "x",
                                np.float32(1.5), np.zeros(3), b""])
            obj.attrs[key] = value
            return f"attribute {name}@{key} = {value!r}"
        if edit < 0.5:
            del f[name]
            return f"{name} deleted"
        if isinstance(obj, h5py.Dataset) and edit < 0.8 and obj.size:
            values = obj[()]
            flat = np.asarray(values).reshape(-1).copy()
            if flat.dtype.kind in "fiu":
                choices = [0, -1, 2**31, np.nan, 1e300] if flat.dtype.kind == "f" else [0, -1, 7]
                flat[rng.randrange(flat.size)] = rng.choice(choices)
                obj[()] = flat.reshape(np.shape(values))
                return f"one value of {name} changed"
        shape = tuple(rng.randint(0, 4) for _ in range(rng.randint(0, 3)))
        del f[name]
        f[name] = np.ones(shape, dtype=rng.choice(["f8", "f4", "i8", "i4", "u1"]))
        return f"{name} replaced by {shape}"


def digest(path):
    return {os.path.relpath(os.path.join(r, n), path):
            hashlib.sha256(open(os.path.join(r, n), "rb").read()).hexdigest()
            for r, _, files in os.walk(path) for n in files}


def test_damaged_checkpoints(tmp_path):
    cfg = write_config(tmp_path / "c.ini", "[model]\nlayers = 3\nwidth = 200\n[data]\n"
                       "samples = 32\ntest_samples = 16\n[train]\nsteps = 12\n[output]\n"
                       "log_every = 4\ncheckpoint_every = 6\n")
    ref = tmp_path / "ref"
    mfres("train", cfg, "--out", ref, ranks=2, check=True)
    good = ref / "checkpoints" / "ckpt-00000006.h5"
    final = read_metrics(ref)
    rng = random.Random(SEED + 1)
    paths, descs = [], []
    for k in range(FILE_CASES):
        path = tmp_path / f"case{k:04d}.h5"
        descs.append(damage(rng, good, path))
        paths.append(path)
    with ThreadPoolExecutor(2) as pool:
        procs = list(pool.map(lambda p: run(["info", p]), paths))
    for k, proc in enumerate(procs):
        check_outcome(f"{k} ({descs[k]})", proc)
    refused = sum(proc.returncode == 2 for proc in procs)
    print(f"damaged checkpoints: {refused} of {len(procs)} refused by info")
    assert refused > 0.5 * len(procs)
    # Restarts into a copy of the run: refused with the run untouched, or
    # accepted and ending exactly as the undamaged run.
    for k in rng.sample(range(FILE_CASES), RESTART_CASES):
        run_dir = tmp_path / f"run{k:04d}"
        shutil.copytree(ref, run_dir)
        before = digest(run_dir)
        proc = run(["train", cfg, "--out", run_dir, "--restart", paths[k]], ranks=2, timeout=60)
        check_outcome(f"{k} ({descs[k]}) restarted", proc)
        if proc.returncode == 2:
            assert digest(run_dir) == before, f"case {k} ({descs[k]}): run directory changed"
        else:
            for col in ("loss", "test_loss", "grad_norm"):
                np.testing.assert_array_equal(read_metrics(run_dir)[col], final[col],
                                              err_msg=f"case {k} ({descs[k]}): {col}")
        shutil.rmtree(run_dir)
