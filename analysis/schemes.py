#!/usr/bin/env python3
"""Compare training schemes on one dataset: fixed block order, shuffled
block order, shallow ensemble, with confidence intervals over seeds.

    analysis/schemes.py STUDY [--out DIR] [--data FILE] [--baseline-seeds N]

STUDY is the output folder of `jobs/study.sh` run with MFRES_STUDY_SCHEMES:
STUDY/SCHEME/L%04d-M%08d/s%03d. Run s of every scheme has the same initial
particles and minibatches, so schemes are compared in pairs: for each width
M, the difference (scheme - fixed) is formed seed by seed, and its mean is
given with a 95% Student t interval over the seeds. Means of one scheme are
given the same way. Only finished runs count, and only seeds finished by
every scheme at a width enter the paired comparison.

Baselines, trained on the same rows of the same data file (the first
data.samples rows for training, the last data.test_samples for testing):
multinomial logistic regression, and an MLP with one hidden layer of 128
ReLU units (Adam, 200 epochs, one fit per seed), both from scikit-learn.

DIR (default STUDY/analysis) gets summary.json (the table's numbers, and
per scheme and width the curves over the logged steps: mean, lower and
upper 95% bound), table.md (the table printed here) and schemes.png (or
.svg): per width, test accuracy and test loss over training
with 95% bands, and the paired difference in test accuracy against fixed.
"""
import argparse
import json
import os
import re
import sys

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
from scipy import stats  # noqa: E402

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from mfresfile import Run, find_run_dirs  # noqa: E402
from scaling import finite_or_null  # noqa: E402

SCHEMES = ("fixed", "shuffle", "shallow")
RUN_DIR = re.compile(r"(fixed|shuffle|shallow)/L(\d{4})-M(\d{8})/s(\d{3})$")
SERIES = ("test_accuracy", "test_loss", "loss")


class StudyError(ValueError):
    """Input that cannot make a comparison."""


def t_interval(values):
    """Mean of values along axis 0 with its 95% Student t interval."""
    values = np.asarray(values, dtype=float)
    n = len(values)
    mean = values.mean(axis=0)
    if n < 2:
        return mean, mean * np.nan, mean * np.nan
    half = stats.t.ppf(0.975, n - 1) * values.std(axis=0, ddof=1) / np.sqrt(n)
    return mean, mean - half, mean + half


def run_seconds(path):
    """Wall seconds and ranks of a run, from the timer tables of its job.log
    (one per start)."""
    seconds, ranks = 0.0, 1
    try:
        for line in open(os.path.join(path, "job.log")):
            if line.startswith("total "):
                seconds += float(line.split()[2])
            elif line.startswith("ranks "):
                ranks = int(line.split()[1].rstrip(","))
    except (OSError, ValueError, IndexError):
        pass
    return seconds, ranks


def collect(study):
    """{(scheme, layers, width): {seed: Run}} of the finished runs, and the
    runs skipped."""
    runs, skipped = {}, []
    for path in find_run_dirs([study]):
        m = RUN_DIR.search(os.path.relpath(path, study))
        if m is None:
            continue
        try:
            run = Run(path)
        except ValueError:
            skipped.append(path)
            continue
        if not run.finished:
            skipped.append(path)
            continue
        scheme, layers, width, seed = m.group(1), *map(int, m.groups()[1:])
        runs.setdefault((scheme, layers, width), {})[seed] = run
    if not runs:
        raise StudyError(f"{study}: no finished runs in SCHEME/L....-M......../s... folders "
                         "(a study made by jobs/study.sh with MFRES_STUDY_SCHEMES)")
    if "fixed" not in {k[0] for k in runs}:
        raise StudyError(f"{study}: no finished runs of the fixed scheme to compare with")
    steps = {len(r.metrics["step"]) for point in runs.values() for r in point.values()}
    if len(steps) != 1:
        raise StudyError(f"{study}: the runs logged different steps; they are not one study")
    return runs, skipped


def final(curve):
    """[mean, low, high] at the last logged step of a t_interval curve."""
    return [float(v[-1]) for v in curve]


def analyse(runs):
    """Per scheme and width: the curves over the logged steps (mean and 95%
    interval over seeds) and their final values; against the fixed order,
    the per-seed differences likewise, and in how many pairs the scheme
    did better."""
    points, paired, curves = [], [], {}
    for (scheme, layers, width), by_seed in sorted(runs.items()):
        seeds = sorted(by_seed)
        curve = {k: t_interval([by_seed[s].metrics[k] for s in seeds]) for k in SERIES}
        curve["step"] = by_seed[seeds[0]].metrics["step"]
        curves[scheme, width] = curve
        points.append({"scheme": scheme, "layers": layers, "width": width, "seeds": len(seeds),
                       **{k: final(curve[k]) for k in SERIES}})
        base = runs.get(("fixed", layers, width), {})
        common = [s for s in seeds if s in base]
        if scheme == "fixed" or len(common) < 2:
            continue
        pair = {"scheme": scheme, "versus": "fixed", "layers": layers, "width": width,
                "seeds": len(common)}
        for k in SERIES:
            d = np.array([by_seed[s].metrics[k] - base[s].metrics[k] for s in common])
            pair[k] = final(t_interval(d))
            pair[k + "_better"] = int(np.sum(d[:, -1] > 0 if k == "test_accuracy"
                                             else d[:, -1] < 0))
        curve["paired"] = t_interval([by_seed[s].metrics["test_accuracy"] -
                                      base[s].metrics["test_accuracy"] for s in common])
        paired.append(pair)
    return points, paired, curves


def baselines(data, n_train, n_test, seeds):
    """Test accuracy and loss of scikit-learn baselines on the same split."""
    import h5py
    from sklearn.exceptions import ConvergenceWarning
    from sklearn.linear_model import LogisticRegression
    from sklearn.metrics import log_loss
    from sklearn.neural_network import MLPClassifier
    import warnings

    try:
        with h5py.File(data, "r") as f:
            x, y = f["x"][()], f["y"][()]
    except (OSError, KeyError) as e:
        raise StudyError(f"baselines: cannot read the data file {data} ({e}); pass --data")
    xt, yt, xs, ys = x[:n_train], y[:n_train], x[len(x) - n_test:], y[len(y) - n_test:]
    models = [("logistic regression", [LogisticRegression(max_iter=5000)])]
    if seeds > 0:
        models.append(("MLP, 128 ReLU units", [
            MLPClassifier(hidden_layer_sizes=(128,), max_iter=200, random_state=s)
            for s in range(1, seeds + 1)]))
    out = []
    for name, fits in models:
        acc, loss = [], []
        for model in fits:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", ConvergenceWarning)
                model.fit(xt, yt)
            acc.append(model.score(xs, ys))
            loss.append(log_loss(ys, model.predict_proba(xs), labels=model.classes_))
        out.append({"name": name, "seeds": len(fits),
                    "test_accuracy": [float(v) for v in t_interval(acc)],
                    "test_loss": [float(v) for v in t_interval(loss)]})
    return out


def ci(v, form, scale=1):
    """mean [low, high], or the mean alone without an interval; minus signs
    as U+2212."""
    m, lo, hi = (scale * x for x in v)
    text = f"{m:{form}} [{lo:{form}}, {hi:{form}}]" if np.isfinite(lo) else f"{m:{form}}"
    return text.replace("-", "\u2212")


SCHEME_ORDER = {s: i for i, s in enumerate(SCHEMES)}


def table(points, paired, base, compute):
    """One markdown table: per width and scheme the final values, and the
    paired differences to the fixed order with the pairs where the scheme
    did better; then the baselines and the compute."""
    pair = {(p["scheme"], p["width"]): p for p in paired}
    lines = ["| M | scheme | test accuracy, % | test loss | training loss | "
             "Δ test accuracy vs fixed, points (better in) | Δ test loss vs fixed (better in) |",
             "| ---: | --- | ---: | ---: | ---: | ---: | ---: |"]
    for p in sorted(points, key=lambda p: (p["width"], SCHEME_ORDER[p["scheme"]])):
        q, diffs = pair.get((p["scheme"], p["width"])), ["", ""]
        if q:
            diffs = [f"{ci(q['test_accuracy'], '+.2f', 100)} "
                     f"({q['test_accuracy_better']}/{q['seeds']})",
                     f"{ci(q['test_loss'], '+.3f')} ({q['test_loss_better']}/{q['seeds']})"]
        lines.append(f"| {p['width']} | {p['scheme']} | {ci(p['test_accuracy'], '.2f', 100)} | "
                     f"{ci(p['test_loss'], '.3f')} | {ci(p['loss'], '.3f')} | "
                     f"{diffs[0]} | {diffs[1]} |")
    for b in base:
        fits = f"{b['seeds']} fit{'s' if b['seeds'] > 1 else ''}"
        lines.append(f"| | {b['name']} ({fits}) | {ci(b['test_accuracy'], '.2f', 100)} | "
                     f"{ci(b['test_loss'], '.3f')} | | | |")
    lines += ["", f"{compute['runs']} runs, {compute['wall_seconds'] / 60:.0f} min of wall "
              f"time, {compute['core_seconds'] / 3600:.2f} core-hours"]
    return "\n".join(lines) + "\n"


def plot(curves, widths, path, title):
    schemes = [s for s in SCHEMES if any((s, w) in curves for w in widths)]
    colors = dict(zip(SCHEMES, ("C0", "C1", "C2")))
    fig, axes = plt.subplots(3, len(widths), figsize=(4 * len(widths), 9), squeeze=False,
                             sharex=True)
    for j, w in enumerate(widths):
        for s in schemes:
            if (s, w) not in curves:
                continue
            c = curves[s, w]
            rows = [("test_accuracy", c["test_accuracy"]), ("test_loss", c["test_loss"])]
            if "paired" in c:
                rows.append(("paired", c["paired"]))
            for i, (_, (m, lo, hi)) in enumerate(rows):
                ax = axes[i, j]
                ax.plot(c["step"], m, color=colors[s], label=s if i < 2 else f"{s} − fixed")
                ax.fill_between(c["step"], lo, hi, color=colors[s], alpha=0.2)
        # The accuracy axis from the first logged step on, where the schemes differ.
        later = [c["test_accuracy"][k][1:] for s in schemes if (s, w) in curves
                 for c in [curves[s, w]] for k in (1, 2)]
        low, high = np.nanmin(np.concatenate(later)), np.nanmax(np.concatenate(later))
        if np.isfinite(low) and high > low:
            axes[0, j].set_ylim(low - 0.05 * (high - low), high + 0.05 * (high - low))
        axes[0, j].set_title(f"{title}, M = {w}")
        axes[2, j].axhline(0, color="k", lw=0.8)
        axes[2, j].set_xlabel("step")
        for i, label in enumerate(("test accuracy", "test loss", "test accuracy − fixed")):
            axes[i, j].set_ylabel(label)
            axes[i, j].grid(True, alpha=0.3)
            if axes[i, j].get_legend_handles_labels()[0]:
                axes[i, j].legend(fontsize=8)
        axes[1, j].set_yscale("log")
    fig.suptitle("mean over seeds, bands 95% t intervals (paired by seed in the last row)")
    fig.tight_layout()
    fig.savefig(path, metadata={"Date": None} if path.endswith(".svg") else None)
    plt.close(fig)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("study")
    parser.add_argument("--out", help="output folder (default STUDY/analysis)")
    parser.add_argument("--data", help="the data file (default: the runs' data.file)")
    parser.add_argument("--format", choices=("png", "svg"), default="png")
    parser.add_argument("--baseline-seeds", type=int, default=5,
                        help="MLP baseline fits (seeds); 0: logistic regression only")
    args = parser.parse_args(argv)
    try:
        if not os.path.isdir(args.study):
            raise StudyError(f"{args.study}: no such directory")
        runs, skipped = collect(args.study)
        points, paired, curves = analyse(runs)
        some = next(iter(next(iter(runs.values())).values()))
        if some.value("data.kind") != "file":
            raise StudyError("the runs do not train on a data file (data.kind is not file)")
        base = baselines(args.data or some.value("data.file"), some.value("data.samples"),
                         some.value("data.test_samples"), args.baseline_seeds)
    except StudyError as e:
        print(f"schemes.py: error: {e}", file=sys.stderr)
        return 2
    for path in skipped:
        print(f"schemes.py: warning: {path}: not finished; left out", file=sys.stderr)
    all_runs = [r for point in runs.values() for r in point.values()]
    times = [run_seconds(r.path) for r in all_runs]
    compute = {"runs": len(all_runs), "wall_seconds": sum(t for t, _ in times),
               "core_seconds": sum(t * n for t, n in times)}
    out = args.out or os.path.join(args.study, "analysis")
    os.makedirs(out, exist_ok=True)
    widths = sorted({k[2] for k in runs})
    title = os.path.basename(os.path.normpath(args.study))
    figure = f"schemes.{args.format}"
    plot(curves, widths, os.path.join(out, figure), title)
    text = table(points, paired, base, compute)
    with open(os.path.join(out, "table.md"), "w") as f:
        f.write(text)
    series = [{"scheme": scheme, "width": width, "step": c["step"].astype(int).tolist(),
               **{k: [v.tolist() for v in c[k]] for k in (*SERIES, "paired") if k in c}}
              for (scheme, width), c in sorted(curves.items())]
    summary = {"study": os.path.abspath(args.study), "schemes": sorted({k[0] for k in runs}),
               "widths": widths, "steps": int(some.value("train.steps")),
               "points": points, "paired": paired, "baselines": base, "compute": compute,
               "curves": series, "skipped": skipped, "figures": [figure]}
    with open(os.path.join(out, "summary.json"), "w") as f:
        json.dump(finite_or_null(summary), f, indent=1)
    print(text, end="")
    print(f"output: {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
