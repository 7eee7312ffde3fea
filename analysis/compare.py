#!/usr/bin/env python3
"""Two ensembles of one study run two ways (e.g. model.precision = double
and mixed, or two builds): how far apart the paired runs end, against the
seed-to-seed spread.

    analysis/compare.py A B [--json FILE]

A, B: run directories, or folders holding them at any depth (as
jobs/study.sh makes them). Runs are paired by (model.layers, model.width,
init.seed); finished runs only. Per grid point with at least one pair,
from each run's outputs.h5 at the final logged step:
  - spread: A's std over its seeds of the outputs z(x) on the probes (the
    RMS over probes of the per-probe std; needs 2 finished seeds in A);
  - diff: the largest |z_A(x) - z_B(x)| over the pairs and probes;
  - ratio = diff / spread, and the largest loss difference of a pair.
Prints one row per point. Exit 2, naming the problem, when no run pairs up.
"""
import argparse
import json
import os
import sys

import numpy as np

from mfresfile import find_run_dirs, read_outputs
from scaling import flat_config


def finished_runs(paths):
    """{(L, M, init.seed): final outputs} of the finished runs below paths."""
    runs = {}
    for d in find_run_dirs(paths):
        cfg = flat_config(os.path.join(d, "config.ini"))
        try:
            out = read_outputs(os.path.join(d, "outputs.h5"))
        except ValueError:
            continue
        if len(out["step"]) and int(out["step"][-1]) == int(cfg["train.steps"]):
            key = (int(cfg["model.layers"]), int(cfg["model.width"]), int(cfg["init.seed"]))
            runs[key] = {"output": out["output"][-1], "loss": float(out["loss"][-1]),
                         "path": d}
    return runs


def compare(a, b):
    """One row per grid point (L, M) with pairs, widest last."""
    rows = []
    for L, M in sorted({k[:2] for k in a if k in b}, key=lambda p: (p[0] * p[1], p[0])):
        seeds = sorted(s for (l, m, s) in a if (l, m) == (L, M))
        pairs = [s for s in seeds if (L, M, s) in b]
        z = np.array([a[L, M, s]["output"] for s in seeds])
        spread = float(np.sqrt(np.mean(z.var(axis=0, ddof=1)))) if len(seeds) > 1 else None
        diff = max(float(np.abs(a[L, M, s]["output"] - b[L, M, s]["output"]).max())
                   for s in pairs)
        loss = max(abs(a[L, M, s]["loss"] - b[L, M, s]["loss"]) for s in pairs)
        rows.append({"layers": L, "width": M, "seeds_a": len(seeds), "pairs": len(pairs),
                     "spread": spread, "diff": diff, "loss_diff": loss,
                     "ratio": diff / spread if spread else None})
    return rows


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("a", help="the reference ensemble")
    parser.add_argument("b", help="the ensemble compared with it")
    parser.add_argument("--json", help="write the rows here")
    args = parser.parse_args(argv)
    try:
        a, b = finished_runs([args.a]), finished_runs([args.b])
    except ValueError as e:
        print(f"compare: {e}", file=sys.stderr)
        return 2
    rows = compare(a, b)
    if not rows:
        print(f"compare: no finished run of {args.b} has the layers, width and init.seed of "
              f"a finished run of {args.a}", file=sys.stderr)
        return 2
    print("L\tM\tseeds_A\tpairs\tspread_A\tmax_output_diff\tdiff/spread\tmax_loss_diff")
    for r in rows:
        spread = f"{r['spread']:.3e}" if r["spread"] else "-"
        ratio = f"{r['ratio']:.2e}" if r["ratio"] is not None else "-"
        print(f"{r['layers']}\t{r['width']}\t{r['seeds_a']}\t{r['pairs']}\t{spread}\t"
              f"{r['diff']:.3e}\t{ratio}\t{r['loss_diff']:.3e}")
    if args.json:
        with open(args.json, "w") as f:
            json.dump(rows, f, indent=1)
    return 0


if __name__ == "__main__":
    sys.exit(main())
