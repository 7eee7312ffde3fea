"""`mfres bench` reports what it promises (its speed targets are checked by
the benchmarks of tests/bench/, never by timed tests)."""
import os
import re
import subprocess
import sys

import pytest

from conftest import ENV, MFRES, TOOLS, mfres, pin_to_two_cpus


def test_bench_table_and_tsv(tmp_path):
    tsv = tmp_path / "b.tsv"
    for _ in range(2):
        out = mfres("bench", "--layers", "2", "--width", "500", "--dim", "8", "--batch", "16",
                    "--steps", "3", "--tsv", tsv, "--label", "t", ranks=2, check=True).stdout
    for line in ("DGEMM peak per rank", "step, nominal", "step / DGEMM peak",
                 "seconds per step", "peak RSS per rank", "PSS per rank", "time in MPI",
                 "waiting for other ranks", "reductions"):
        assert line in out
    assert "medians of 4 between the steps" in out  # before the first step and after each
    assert re.search(r"seconds per step\s+[0-9.]+ median \(min [0-9.]+, max [0-9.]+\)", out)
    assert re.search(r"max [0-9.]+ % on rank [01]\)", out)
    lines = open(tsv).read().splitlines()
    assert len(lines) == 3 and lines[0].startswith("label\tranks\tlayers\twidth")
    row = dict(zip(lines[0].split("\t"), lines[1].split("\t")))
    assert row["label"] == "t" and row["ranks"] == "2" and row["width"] == "500"
    assert float(row["state_bytes"]) == 2 * 256 * 17 * 8  # the largest share: 2 chunks of 128 per layer
    assert 0 < float(row["peak_fraction"]) < 1.5
    assert 0 < float(row["pss_bytes"]) <= float(row["rss_bytes"])
    # The wait is part of the MPI time on every rank, so also of its maximum.
    assert 0 <= float(row["mpi_wait_fraction_max"]) <= float(row["mpi_fraction_max"])
    assert 0 <= float(row["mpi_reduce_fraction_max"]) <= float(row["mpi_fraction_max"])
    # Core time per sample x particle x layer: 2 ranks x the median step over
    # B M L = 16 x 500 x 2, printed and in the TSV.
    ns = float(row["seconds_median"]) * 2 / (16 * 500 * 2) * 1e9
    assert float(row["ns_per_unit"]) == pytest.approx(ns, rel=1e-5)
    shown = re.search(r"core time per sample x particle x layer ([0-9.]+) ns \(12 D = 96 "
                      r"nominal flops", out)
    assert shown and float(shown[1]) > 0
    # The bound: two activations at the probed speed and (7 - 1/L) D = 52
    # multiply-adds (2 flops each) at the DGEMM peak, in ns.
    act, peak = float(row["activation_ns"]), float(row["dgemm_gflops"])
    assert 0 < act < 1000
    assert float(row["bound_ns"]) == pytest.approx(2 * act + 2 * 52 / peak, rel=1e-5)
    bound = re.search(r"bound \(activations recomputed in the backward\): two activations at "
                      r"([0-9.]+) ns and 52 multiply-adds at the "
                      r"DGEMM peak, ([0-9.]+) ns; the step takes ([0-9.]+) times that", out)
    assert bound, out
    last = dict(zip(lines[0].split("\t"), lines[2].split("\t")))  # the run `out` printed
    assert float(bound[2]) == pytest.approx(float(last["bound_ns"]), abs=1e-3)
    assert float(bound[3]) == pytest.approx(
        float(last["ns_per_unit"]) / float(last["bound_ns"]), abs=0.01)


def test_bench_both_precisions(tmp_path):
    """--precision both: each precision's fastest of 3 alternating runs, its
    own peak (SGEMM for mixed) and bound, half the state, and their ratio
    recomputed from the TSV rows."""
    tsv = tmp_path / "p.tsv"
    out = mfres("bench", "--layers", "2", "--width", "500", "--dim", "4", "--batch", "16",
                "--steps", "3", "--precision", "both", "--tsv", tsv, ranks=2, check=True).stdout
    assert "tanh, double precision; 3 steps" in out and "tanh, mixed precision; 3 steps" in out
    assert "DGEMM peak per rank" in out and "SGEMM peak per rank" in out
    assert re.search(r"26 multiply-adds at the SGEMM peak, [0-9.]+ ns; the step takes", out)
    lines = open(tsv).read().splitlines()
    rows = [dict(zip(lines[0].split("\t"), line.split("\t"))) for line in lines[1:]]
    assert [r["precision"] for r in rows] == ["double", "mixed"]
    assert float(rows[0]["state_bytes"]) == 2 * float(rows[1]["state_bytes"])
    ratio = float(rows[0]["seconds_median"]) / float(rows[1]["seconds_median"])
    m = re.search(r"mixed precision: ([0-9.]+) times as fast per step as double", out)
    assert m and float(m[1]) == pytest.approx(ratio, abs=0.006)
    proc = mfres("bench", "--precision", "single")
    assert proc.returncode == 2 and "precision" in proc.stderr and "single" in proc.stderr


def test_bench_weak_scaling_width(tmp_path):
    out = mfres("bench", "--layers", "1", "--width", "300", "--dim", "4", "--batch", "8",
                "--steps", "2", "--per-rank", ranks=3, check=True).stdout
    assert "M = 900 (300 per rank)" in out


def test_bench_load_balance():
    out = mfres("bench", "--layers", "1", "--width", "3000", "--dim", "4", "--batch", "8",
                "--steps", "3", "--balance", "1", ranks=3, check=True).stdout
    m = re.search(r"load balance +every 1 steps: (\d+) moves, (\d+) particles per layer moved; "
                  r"shares (\d+) to (\d+) per layer", out)
    assert m, out
    moves, moved, low, high = map(int, m.groups())
    assert moves <= 3 and (moved > 0) == (moves > 0)
    assert low <= 1000 <= high and low % 128 in (0, 3000 % 128)


def test_bench_bad_option():
    proc = mfres("bench", "--widht", "10", ranks=2)
    assert proc.returncode == 2 and "bench: unknown option '--widht'" in proc.stderr
    proc = mfres("bench", "--steps", "0")
    assert proc.returncode == 2 and "--steps needs a positive integer" in proc.stderr
    proc = mfres("bench", "--width", "99999999999999999999")  # beyond int64: not saturated
    assert proc.returncode == 2 and "--width needs a positive integer" in proc.stderr
    proc = mfres("bench", "--layers", "2000000", "--width", "2000000", ranks=2)
    assert proc.returncode == 2 and "bench: model.layers x model.width" in proc.stderr


def test_bench_waits_log(tmp_path):
    """--waits: one row per reduction of the timed steps with every rank's wait,
    and the printed run length recomputed from the file."""
    path = tmp_path / "waits.tsv"
    out = mfres("bench", "--layers", "3", "--width", "2000", "--dim", "4", "--batch", "16",
                "--steps", "4", "--waits", path, ranks=3, check=True).stdout
    rows = [line.split("\t") for line in open(path).read().splitlines()]
    assert rows[0] == ["step", "reduction", "wait_0", "wait_1", "wait_2"]
    steps = [int(r[0]) for r in rows[1:]]
    per_step = len(steps) // 4
    assert len(steps) == 4 * per_step and per_step >= 2 * 3 - 1  # L forward, L - 1 adjoint
    assert steps == [1 + i // per_step for i in range(len(steps))]
    assert [int(r[1]) for r in rows[1:]] == [i % per_step for i in range(len(steps))]
    waits = [[float(x) for x in r[2:]] for r in rows[1:]]
    assert all(w >= 0 for row in waits for w in row)
    last = [row.index(min(row)) for row in waits]
    runs = 1 + sum(a != b for a, b in zip(last, last[1:]))
    m = re.search(r"last rank to arrive +the same for ([0-9.]+) reductions in a row on "
                  r"average \(1\.5 if random\)", out)
    assert m, out
    assert abs(float(m.group(1)) - len(last) / runs) < 0.051
    assert f"{len(steps)} reductions per rank in {path}" in out


def test_bench_unwritable_output_fails_before_the_run(tmp_path):
    for option in ("--tsv", "--waits"):
        proc = mfres("bench", option, tmp_path / "missing" / "out.tsv", ranks=2)
        assert proc.returncode == 2
        assert f"bench: cannot write {tmp_path}/missing/out.tsv: No such file" in proc.stderr
        assert "DGEMM peak" not in proc.stdout


def test_bench_share(monkeypatch):
    """Work sharing is on by default with several ranks, and off with
    --no-share, with --balance, or on one rank. Where it is on, 3 ranks
    bound to 2 CPUs must share. Each pass must outlast the scheduler's time
    slices, so that one of the two ranks of a CPU falls behind (10 to 13% of
    the chunks shared at this size, against 2 to 5% at a tenth of it)."""
    small = ("--layers", "2", "--width", "100000", "--dim", "16", "--batch", "64", "--steps",
             "3")
    sharing = r"work sharing +([0-9.]+) % of the chunk evaluations by another rank"
    with monkeypatch.context() as pinned:
        pin_to_two_cpus(pinned)
        for option in ("--share", None):
            out = mfres("bench", *small, *([option] if option else []), ranks=3,
                        check=True).stdout
            m = re.search(sharing, out)
            assert m and 1 < float(m[1]) < 100, out
    for option, ranks in (("--no-share", 3), ("--balance=2", 2), (None, 1)):
        extra = option.split("=") if option else []
        out = mfres("bench", *small, *extra, ranks=ranks, check=True).stdout
        assert "seconds per step" in out and not re.search(sharing, out), out
    proc = mfres("bench", "--share", "--balance", "2", ranks=2)
    assert proc.returncode != 0
    assert "train.share_work = node and train.balance_every = 2 exclude each other" in proc.stderr
    proc = mfres("bench", "--share", "--no-share", ranks=2)
    assert proc.returncode == 2
    assert "bench: --share and --no-share exclude each other" in proc.stderr


def test_bench_pss_counts_shared_particles_once():
    """With work sharing the node's particles live in one shared window, and
    each rank's RSS counts the pages of it that the rank touched; the ranks'
    PSS must add up to the whole state once, plus each process's own
    libraries and buffers (about 50 MiB)."""
    L, M, D = 2, 400000, 16
    out = mfres("bench", "--layers", L, "--width", M, "--dim", D, "--batch", "8", "--steps",
                "2", "--share", ranks=2, check=True).stdout
    m = re.search(r"PSS per rank at the end +([0-9.]+) MiB max \(([0-9.]+) bytes per particle; "
                  r"([0-9.]+) MiB over all ranks\)", out)
    assert m, out
    state = L * M * (2 * D + 1) * 8 / 2**20
    assert state < float(m[3]) < state + 2 * 100, out
    assert float(m[2]) > 8 * (2 * D + 1), out


def kernel_bench(*args):
    """Run tests/tools/kernel_bench with the given arguments."""
    return subprocess.run([os.path.join(TOOLS, "kernel_bench"), *args], capture_output=True,
                          text=True, env=ENV, timeout=120)


def test_kernel_bench_tool():
    """tests/tools/kernel_bench (for profiling) runs and reports a sane ratio."""
    out = kernel_bench("4", "2")
    assert out.returncode == 0, out.stderr
    m = re.fullmatch(r"D = 4: forward ([0-9.]+) ns, backward ([0-9.]+) ns per \(sample, "
                     r"particle\); [0-9.]+ GFLOP/s nominal, ([0-9.]+)% of the DGEMM peak "
                     r"\([0-9.]+ GFLOP/s\)\n", out.stdout)
    assert m and float(m[1]) < float(m[2]) and 0 < float(m[3]) < 150, out.stdout
    bad = kernel_bench("0")
    assert bad.returncode == 2 and "usage: kernel_bench" in bad.stderr
    # Streamed mode: cached and streamed chunks in turn; the ratio is that of the sums.
    out = kernel_bench("4", "1", "120")
    assert out.returncode == 0, out.stderr
    m = re.fullmatch(r"D = 4, mean ns per \(sample, particle\): 64 cached chunks forward "
                     r"([0-9.]+), backward ([0-9.]+); 120 streamed chunks forward ([0-9.]+), "
                     r"backward ([0-9.]+); streamed / cached ([0-9.]+)\n", out.stdout)
    assert m, out.stdout
    cf, cb, sf, sb, ratio = (float(g) for g in m.groups())
    assert min(cf, cb, sf, sb) > 0 and ratio == pytest.approx((sf + sb) / (cf + cb), rel=0.02)
    bad = kernel_bench("4", "1", "64")
    assert bad.returncode == 2 and "streamed chunks > 64" in bad.stderr


def test_fp_probe_tool():
    """tests/tools/fp_probe reports every probe in FMA slots, or says why it
    cannot run here."""
    probe = os.path.join(TOOLS, "fp_probe")
    out = subprocess.run([probe, "100000"], capture_output=True, text=True, timeout=120)
    if out.returncode == 2 and "no AVX-512" in out.stderr:
        pytest.skip("this CPU has no AVX-512")
    assert out.returncode == 0, out.stderr
    lines = out.stdout.splitlines()
    assert re.fullmatch(r"12 FMAs: [0-9.]+ ns per loop \([0-9.]+ GFLOP/s\)", lines[0]), lines
    names = [re.fullmatch(r"  \+ +(\d+) (\S+).* (-?[0-9.]+) FMA slots each", line)[2]
             for line in lines[1:]]
    assert names == ["vaddpd", "vmaxpd", "vpsllq", "vmulpd", "vpermt2pd", "vbroadcastsd",
                     "vdivpd"]
    bad = subprocess.run([probe, "0"], capture_output=True, text=True, timeout=60)
    assert bad.returncode == 2 and "usage: fp_probe" in bad.stderr


def test_numpy_vs_mfres_script():
    """tests/bench/numpy_vs_mfres.py runs both steps on one shape with the
    same OpenBLAS core, and its ratio is that of the two times."""
    script = os.path.join(os.path.dirname(__file__), "..", "bench", "numpy_vs_mfres.py")
    proc = subprocess.run([sys.executable, script, "--layers", "2", "--width", "2000",
                           "--steps", "1", "--mfres", MFRES], capture_output=True, text=True,
                          env=ENV, timeout=120)
    assert proc.returncode == 0, proc.stderr
    numpy = re.search(r"NumPy \(reference.py\) +([0-9.]+) s/step  \(numpy [0-9.]+, OpenBLAS core "
                      r"(\w+), 1 BLAS thread", proc.stdout)
    ours = re.search(r"mfres bench +([0-9.]+) s/step  \(OpenBLAS core (\w+), 1 rank", proc.stdout)
    ratio = re.search(r"ratio +([0-9.]+) x faster", proc.stdout)
    assert numpy and ours and ratio, proc.stdout
    assert numpy[2] == ours[2]
    assert float(ratio[1]) == pytest.approx(float(numpy[1]) / float(ours[1]), rel=0.05, abs=0.1)
