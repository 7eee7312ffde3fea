#!/usr/bin/env python3
"""mfres's training step against the straightforward NumPy step, side by side.

    tests/bench/numpy_vs_mfres.py [--cores 1] [--layers 8] [--width 100000] [--dim 16]
                                  [--batch 256] [--steps 3]

The NumPy step is tests/integration/reference.py (B x M activations
materialised, BLAS products through NumPy, hand-written backward), the same
code that checks mfres's gradient to 1e-10. Both run on the same shape and
the same cores, in this one script: NumPy with --cores BLAS threads, mfres
with --cores ranks of one BLAS thread each, both with the environment's
OpenBLAS settings (OPENBLAS_CORETYPE among them). It prints seconds per
step, the OpenBLAS core each side ran (NumPy's through threadpoolctl, where
installed), NumPy's share of time in the kernel (mostly page faults of its
B x M arrays) and the ratio.
"""
import argparse
import os
import resource
import subprocess
import sys
import time

parser = argparse.ArgumentParser()
parser.add_argument("--cores", type=int, default=1)
parser.add_argument("--layers", type=int, default=8)
parser.add_argument("--width", type=int, default=100000)
parser.add_argument("--dim", type=int, default=16)
parser.add_argument("--batch", type=int, default=256)
parser.add_argument("--steps", type=int, default=3)
parser.add_argument("--mfres", default=None)
a = parser.parse_args()
os.environ["OPENBLAS_NUM_THREADS"] = str(a.cores)  # before NumPy loads OpenBLAS

import numpy as np  # noqa: E402

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "integration"))
from reference import step  # noqa: E402

mfres_bin = a.mfres or os.path.join(HERE, "..", "..", "build", "mfres")
rng = np.random.default_rng(1)
L, M, D, B = a.layers, a.width, a.dim, a.batch
x = rng.standard_normal((B, D))
y = rng.standard_normal((B, 1))
u = rng.standard_normal((L, M, D))
w = rng.standard_normal((L, M, D)) / np.sqrt(D)
b = 0.5 * rng.standard_normal((L, M))
order = np.arange(L)
times = []
for k in range(a.steps + 1):  # the first is warm-up
    if k == 1:
        usage0 = resource.getrusage(resource.RUSAGE_SELF)
    t0 = time.perf_counter()
    _, _, (u, w, b) = step(x, y, u, w, b, order, "tanh", "mse", "resnet", 1.0, 1, 1e-3, 0.0)
    times.append(time.perf_counter() - t0)
usage1 = resource.getrusage(resource.RUSAGE_SELF)
numpy_s = float(np.median(times[1:]))
kernel_share = (usage1.ru_stime - usage0.ru_stime) / (
    usage1.ru_utime - usage0.ru_utime + usage1.ru_stime - usage0.ru_stime)

env = dict(os.environ, OPENBLAS_NUM_THREADS="1", OMPI_ALLOW_RUN_AS_ROOT="1",
           OMPI_ALLOW_RUN_AS_ROOT_CONFIRM="1")
out = subprocess.run(["mpirun", "--oversubscribe", "-n", str(a.cores), mfres_bin, "bench",
                      "--layers", str(L), "--width", str(M), "--dim", str(D), "--batch", str(B),
                      "--steps", str(max(a.steps, 3))], capture_output=True, text=True, env=env,
                     check=True).stdout
mfres_s = float(next(line for line in out.splitlines() if "seconds per step" in line).split()[3])
mfres_core = out.split("OpenBLAS core ", 1)[1].split(",", 1)[0]
try:
    from threadpoolctl import threadpool_info
    numpy_core = next((i.get("architecture") for i in threadpool_info()
                       if i.get("internal_api") == "openblas"), "not OpenBLAS")
except ImportError:
    numpy_core = "unknown (no threadpoolctl)"
cores = "one core" if a.cores == 1 else f"{a.cores} cores"
print(f"step at L = {L}, M = {M}, D = {D}, B = {B}, {cores}, tanh, mse")
print(f"  NumPy (reference.py)  {numpy_s:10.6f} s/step  (numpy {np.__version__}, "
      f"OpenBLAS core {numpy_core}, {a.cores} BLAS thread(s), {100 * kernel_share:.0f}% of its "
      "CPU time in the kernel)")
print(f"  mfres bench           {mfres_s:10.6f} s/step  (OpenBLAS core {mfres_core}, {a.cores} "
      "rank(s))")
print(f"  ratio                 {numpy_s / mfres_s:9.1f} x faster")
