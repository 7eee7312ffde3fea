#!/usr/bin/env python3
"""One HTML page about mfres runs and studies.

    analysis/report.py RUN_DIR_OR_STUDY... [--out report.html]

A study (a folder with analysis/summary.json, as jobs/study.sh leaves it, or
an analysis folder of analysis/scaling.py itself) is shown as its results:
the fluctuation exponents and limits with their 95% intervals, the table of
grid points and the figures. Any other path is taken as runs: for every run a
summary row (width, depth, steps, final train and test loss, test accuracy,
velocity, shallow gap, wall time), its resolved configuration, and the
figures of analysis/plot_run.py. The page uses no external resources; run
figures are PNG files in REPORT_files/ next to it.
"""
import argparse
import html
import json
import os

import numpy as np

from mfresfile import load_runs
from plot_run import plot_run


def summary(run):
    m = run.metrics
    steps = m["step"]
    wall = float(np.sum(m["seconds_per_step"][1:] * np.diff(steps))) if len(steps) > 1 else 0.0
    return [run.name, run.value("model.width"), run.value("model.layers"),
            run.value("model.dim"), int(steps[-1]), f"{m['time'][-1]:.4g}",
            f"{m['loss'][-1]:.4e}", f"{m['test_loss'][-1]:.4e}", f"{m['test_accuracy'][-1]:.4f}",
            f"{m['grad_norm'][-1]:.3e}", f"{m['shallow_gap'][-1]:.4f}", f"{wall:.1f}"]


HEADER = ["run", "M", "L", "D", "steps", "time t", "loss", "test loss", "test accuracy",
          "|v|", "shallow gap", "wall s"]


def study_folder(path):
    """The analysis folder of a study at path, or None."""
    for folder in (path, os.path.join(path, "analysis")):
        if os.path.exists(os.path.join(folder, "summary.json")):
            return folder
    return None


def study_section(folder, out):
    summary = json.load(open(os.path.join(folder, "summary.json")))
    kind = summary["kind"] if summary["kind"] != "key" else f"{summary['key']}"
    protocol = summary.get("protocol") or summary["at"]["protocol"]
    parts = [f"<h1>{html.escape(kind)} study: {html.escape(folder)}</h1>",
             f"<p>protocol {protocol}, {len(summary['points'])} grid points, "
             f"at least {summary['seeds']} seeds each; 95% intervals in brackets</p>"]
    if summary.get("warnings"):
        parts.append("<p>Warnings of the analysis:</p><ul>" + "".join(
            f"<li>{html.escape(w)}</li>" for w in summary["warnings"]) + "</ul>")
    parts.append("<ul>")
    exponent = "fluctuation exponent" + (f" in {summary['key']}" if "key" in summary else "")
    for label, key in ((exponent, "fluctuation_exponent"),
                       ("distance-to-limit exponent", "distance_exponent"), ("limit", "limit")):
        for name, (v, lo, hi) in summary.get(key, {}).items():
            value = "not defined" if v is None else f"{v:.4g} [{lo:.4g}, {hi:.4g}]"
            parts.append(f"<li>{label} ({name}): {value}</li>")
    parts.append("</ul><table>")
    with open(os.path.join(folder, "table.tsv")) as f:
        for i, line in enumerate(f):
            cell = "th" if i == 0 else "td"
            parts.append("<tr>" + "".join(
                f"<{cell}>{html.escape(v if i == 0 or v.isdigit() else f'{float(v):.4g}')}</{cell}>"
                for v in line.rstrip("\n").split("\t")) + "</tr>")
    parts.append("</table>")
    for name in summary["figures"]:
        rel = os.path.relpath(os.path.join(folder, name), os.path.dirname(os.path.abspath(out)))
        parts.append(f"<h3>{html.escape(name)}</h3><img src='{html.escape(rel)}' alt='{name}'>")
    return parts


def report(paths, out):
    studies = [study_folder(p) for p in paths]
    run_dirs = [p for p, s in zip(paths, studies) if s is None]
    runs = load_runs(run_dirs) if run_dirs else []
    files = os.path.splitext(out)[0] + "_files"
    os.makedirs(files, exist_ok=True)
    parts = ["<!DOCTYPE html><html><head><meta charset='utf-8'><title>mfres report</title>",
             "<style>body{font-family:sans-serif;margin:2em}table{border-collapse:collapse}"
             "td,th{border:1px solid #bbb;padding:3px 8px;text-align:right}"
             "img{max-width:100%}pre{background:#f4f4f4;padding:1em}</style></head><body>"]
    for folder in filter(None, studies):
        parts += study_section(folder, out)
    if not runs:
        parts.append("</body></html>")
        with open(out, "w") as f:
            f.write("\n".join(parts))
        return out
    parts += ["<h1>mfres runs</h1><table><tr>"]
    parts += [f"<th>{h}</th>" for h in HEADER] + ["</tr>"]
    for run in runs:
        parts.append("<tr>" + "".join(f"<td>{html.escape(str(v))}</td>"
                                      for v in summary(run)) + "</tr>")
    parts.append("</table>")
    for i, run in enumerate(runs):
        figures = plot_run(run.path, os.path.join(files, f"{i:03d}-{run.name}"))
        parts.append(f"<h2>{html.escape(run.path)}</h2>")
        for name, path in figures.items():
            rel = os.path.relpath(path, os.path.dirname(os.path.abspath(out)))
            parts.append(f"<h3>{name}</h3><img src='{html.escape(rel)}' alt='{name}'>")
        with open(os.path.join(run.path, "config.ini")) as f:
            parts.append(f"<h3>configuration</h3><pre>{html.escape(f.read())}</pre>")
    parts.append("</body></html>")
    with open(out, "w") as f:
        f.write("\n".join(parts))
    return out


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("runs", nargs="+")
    parser.add_argument("--out", default="report.html")
    args = parser.parse_args()
    print(report(args.runs, args.out))
