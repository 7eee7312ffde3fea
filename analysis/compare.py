#!/usr/bin/env python3
"""Two ensembles of one study run two ways (e.g. model.precision = double
and mixed, model.architecture = resnet and shallow, or two builds): how far
apart the paired runs are, against the seed-to-seed spread.

    analysis/compare.py A B [--by KEY] [--json FILE] [--plot FILE]
    analysis/compare.py STUDY --split KEY=VA,VB [--by KEY] [--json FILE] [--plot FILE]

A, B: run directories, or folders holding them at any depth (as
jobs/study.sh makes them); with --split, the runs of STUDY whose KEY is VA
and those where it is VB (e.g. --split model.architecture=resnet,shallow). Runs are paired by (model.layers, model.width,
init.seed), and with --by KEY also by KEY's value (e.g. --by model.alpha
for a study over MFRES_STUDY_GRID="model.alpha=... model.architecture=...");
finished runs only. Per grid point (KEY's value, L, M) with at least one
pair, from each run's outputs.h5:
  - spread: A's std over its seeds of the outputs z(x) on the probes at the
    final time (the RMS over probes of the per-probe std; needs 2 seeds);
  - diff: the largest |z_A(x) - z_B(x)| over the pairs and probes at the
    final time, and ratio = diff / spread;
  - rms_first, rms_last: the mean over pairs of the RMS over probes of
    z_A - z_B at the first and the last logged time, each with its 95%
    t-interval over the pairs (n - 1 degrees of freedom);
  - gap_first, gap_last: A's mean shallow_gap (metrics.tsv) at those times;
  - the largest loss difference of a pair.
With --by, per (L, M) with 2 or more values: the exponent of rms_first and
of rms_last in KEY's value (least squares of the logs; 95% interval from a
bootstrap over seeds, resampled jointly across the values, which share
seeds in a grid study), and --plot FILE draws the differences and the
gaps against the value (log-log, a line per (L, M), the first and the last
logged time). Prints one row per point and the exponents. Exit 2, naming
the problem, when no run pairs up.
"""
import argparse
import json
import os
import sys

import numpy as np
from scipy import stats

from mfresfile import Run, find_run_dirs, read_outputs
from scaling import flat_config


def finished_runs(paths, by=None, only=None):
    """{(value, L, M, init.seed): run data} of the finished runs below paths
    (value: KEY's, or None without --by), with only = (key, value) those
    where key has that value."""
    runs = {}
    for d in find_run_dirs(paths):
        cfg = flat_config(os.path.join(d, "config.ini"))
        if only and cfg.get(only[0]) != only[1]:
            continue
        try:
            out = read_outputs(os.path.join(d, "outputs.h5"))
        except ValueError:
            continue
        if not len(out["step"]) or int(out["step"][-1]) != int(cfg["train.steps"]):
            continue
        if by and by not in cfg:
            raise ValueError(f"{d}: no key {by} in its config.ini")
        value = float(cfg[by]) if by else None
        key = (value, int(cfg["model.layers"]), int(cfg["model.width"]), int(cfg["init.seed"]))
        gap = Run(d).metrics.get("shallow_gap", np.full(2, np.nan))
        runs[key] = {"output": out["output"], "loss": float(out["loss"][-1]),
                     "gap": (float(gap[0]), float(gap[-1])), "path": d}
    return runs


def rms(a, b, t):
    """The RMS over probes of the outputs' difference at logged time t."""
    return float(np.sqrt(np.mean((a["output"][t] - b["output"][t]) ** 2)))


def mean_interval(values):
    """The mean with its 95% t-interval (NaN with one value)."""
    v = np.asarray(values, float)
    half = stats.t.ppf(0.975, len(v) - 1) * v.std(ddof=1) / np.sqrt(len(v)) if len(v) > 1 \
        else np.nan
    return [float(v.mean()), float(v.mean() - half), float(v.mean() + half)]


def compare(a, b):
    """One row per grid point (value, L, M) with pairs."""
    rows = []
    points = {k[:3] for k in a if k in b}
    for v, L, M in sorted(points, key=lambda p: (p[0] or 0, p[1] * p[2], p[1])):
        seeds = sorted(k[3] for k in a if k[:3] == (v, L, M))
        pairs = [s for s in seeds if (v, L, M, s) in b]
        z = np.array([a[v, L, M, s]["output"][-1] for s in seeds])
        spread = float(np.sqrt(np.mean(z.var(axis=0, ddof=1)))) if len(seeds) > 1 else None
        ra, rb = [a[v, L, M, s] for s in pairs], [b[v, L, M, s] for s in pairs]
        diff = max(float(np.abs(x["output"][-1] - y["output"][-1]).max()) for x, y in zip(ra, rb))
        rows.append({"value": v, "layers": L, "width": M, "seeds_a": len(seeds),
                     "pairs": len(pairs), "seeds": pairs, "spread": spread, "diff": diff,
                     "ratio": diff / spread if spread else None,
                     "rms_first": mean_interval([rms(x, y, 0) for x, y in zip(ra, rb)]),
                     "rms_last": mean_interval([rms(x, y, -1) for x, y in zip(ra, rb)]),
                     "per_pair": [[rms(x, y, 0), rms(x, y, -1)] for x, y in zip(ra, rb)],
                     "gap_first": float(np.mean([x["gap"][0] for x in ra])),
                     "gap_last": float(np.mean([x["gap"][1] for x in ra])),
                     "loss_diff": max(abs(x["loss"] - y["loss"]) for x, y in zip(ra, rb))})
    return rows


def exponents(rows, draws=2000, seed=0):
    """Per (L, M) with 2 or more values: the exponents of the mean RMS
    difference in the value, at the first and last logged times, with
    bootstrap intervals over the seeds common to every value."""
    rng = np.random.default_rng(seed)
    out = []
    for L, M in sorted({(r["layers"], r["width"]) for r in rows}, key=lambda p: p[0] * p[1]):
        group = [r for r in rows if (r["layers"], r["width"]) == (L, M)]
        common = sorted(set.intersection(*(set(r["seeds"]) for r in group)))
        if len(group) < 2 or len(common) < 2:
            continue
        x = np.log([r["value"] for r in group])
        entry = {"layers": L, "width": M, "values": [r["value"] for r in group],
                 "seeds": len(common)}
        for which, col in (("first", 0), ("last", 1)):
            d = np.array([[r["per_pair"][r["seeds"].index(s)][col] for s in common]
                          for r in group])                        # [values][seeds]
            slope = np.polyfit(x, np.log(d.mean(axis=1)), 1)[0]
            idx = rng.integers(0, len(common), size=(draws, len(common)))
            boot = np.array([np.polyfit(x, np.log(d[:, i].mean(axis=1)), 1)[0] for i in idx])
            lo, hi = np.percentile(boot, [2.5, 97.5])
            entry[f"exponent_{which}"] = [float(slope), float(lo), float(hi)]
        out.append(entry)
    return out


def plot(rows, by, path):
    """The mean RMS output difference (with its interval) and A's shallow
    gap against the --by value, at the first and the last logged time."""
    import matplotlib
    matplotlib.use("Agg")
    matplotlib.rcParams.update({"svg.fonttype": "none", "svg.hashsalt": "mfres"})
    import matplotlib.pyplot as plt
    fig, ax = plt.subplots(1, 2, figsize=(10, 3.9))
    for k, (L, M) in enumerate(sorted({(r["layers"], r["width"]) for r in rows})):
        mine = [r for r in rows if (r["layers"], r["width"]) == (L, M)]
        x = [r["value"] for r in mine]
        for which, style in (("first", "--"), ("last", "-")):
            m, lo, hi = np.array([r[f"rms_{which}"] for r in mine]).T
            ax[0].errorbar(x, m, yerr=[m - lo, hi - m], fmt="o" + style, color=f"C{k}",
                           capsize=3, label=f"L = {L}, M = {M}, {which}")
            ax[1].plot(x, [r[f"gap_{which}"] for r in mine], "o" + style, color=f"C{k}",
                       label=f"L = {L}, M = {M}, {which}")
    for a, label in zip(ax, ("RMS output difference, mean over pairs ± 95%",
                             "shallow_gap of A, mean over seeds")):
        a.set_xscale("log")
        a.set_yscale("log")
        a.set_xlabel(by)
        a.set_ylabel(label)
        a.grid(True, alpha=0.3)
        a.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("paths", nargs="+", help="A B, or with --split one STUDY")
    parser.add_argument("--split", help="KEY=VA,VB: A and B are STUDY's runs with KEY = VA, VB")
    parser.add_argument("--by", help="also pair and group by this key (e.g. model.alpha)")
    parser.add_argument("--json", help="write the rows (and exponents) here")
    parser.add_argument("--plot", help="with --by: the figure (PNG or SVG by its name)")
    args = parser.parse_args(argv)
    try:
        if args.split:
            key, _, values = args.split.partition("=")
            va, vb = values.split(",") if values.count(",") == 1 else (None, None)
            if len(args.paths) != 1 or va is None:
                raise ValueError("--split KEY=VA,VB takes one STUDY")
            names = (f"{args.paths[0]} ({key} = {va})", f"{args.paths[0]} ({key} = {vb})")
            a, b = (finished_runs(args.paths, args.by, (key, v)) for v in (va, vb))
        else:
            if len(args.paths) != 2:
                raise ValueError("give A and B, or one STUDY with --split")
            names = args.paths
            a, b = (finished_runs([p], args.by) for p in args.paths)
    except ValueError as e:
        print(f"compare: {e}", file=sys.stderr)
        return 2
    rows = compare(a, b)
    if not rows:
        print(f"compare: no finished run of {names[1]} has the layers, width, init.seed"
              f"{' and ' + args.by if args.by else ''} of a finished run of {names[0]}",
              file=sys.stderr)
        return 2
    print(("value\t" if args.by else "") + "L\tM\tpairs\tspread_A\tmax_output_diff\t"
          "diff/spread\trms_diff_first\trms_diff_last\tgap_first\tgap_last\tmax_loss_diff")
    for r in rows:
        spread = f"{r['spread']:.3e}" if r["spread"] else "-"
        ratio = f"{r['ratio']:.2e}" if r["ratio"] is not None else "-"
        print((f"{r['value']:g}\t" if args.by else "") +
              f"{r['layers']}\t{r['width']}\t{r['pairs']}\t{spread}\t{r['diff']:.3e}\t{ratio}\t"
              f"{r['rms_first'][0]:.3e}\t{r['rms_last'][0]:.3e}\t{r['gap_first']:.3e}\t"
              f"{r['gap_last']:.3e}\t{r['loss_diff']:.3e}")
    result = {"rows": rows}
    if args.by:
        result["exponents"] = exponents(rows)
        for e in result["exponents"]:
            for which in ("first", "last"):
                p, lo, hi = e[f"exponent_{which}"]
                print(f"L = {e['layers']}, M = {e['width']}: RMS output difference ~ "
                      f"{args.by}^p at the {which} logged time: p = {p:.3f} [{lo:.3f}, {hi:.3f}]")
    if args.json:
        with open(args.json, "w") as f:
            json.dump(result, f, indent=1)
    if args.plot and args.by:
        plot(rows, args.by, args.plot)
    return 0


if __name__ == "__main__":
    sys.exit(main())
