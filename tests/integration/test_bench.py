"""`mfres bench` reports what it promises (its speed targets are checked by
the benchmarks of tests/bench/, never by timed tests)."""
import re

from conftest import mfres


def test_bench_table_and_tsv(tmp_path):
    tsv = tmp_path / "b.tsv"
    for _ in range(2):
        out = mfres("bench", "--layers", "2", "--width", "500", "--dim", "8", "--batch", "16",
                    "--steps", "3", "--tsv", tsv, "--label", "t", ranks=2, check=True).stdout
    for line in ("DGEMM peak per rank", "step, nominal", "step / DGEMM peak",
                 "seconds per step", "peak RSS per rank", "time in MPI",
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
    # The wait is part of the MPI time on every rank, so also of its maximum.
    assert 0 <= float(row["mpi_wait_fraction_max"]) <= float(row["mpi_fraction_max"])
    assert 0 <= float(row["mpi_reduce_fraction_max"]) <= float(row["mpi_fraction_max"])


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
