#!/usr/bin/env python3
"""Figures of one mfres run.

    analysis/plot_run.py RUN_DIR [--out DIR]      (default DIR: RUN_DIR/figures)

Writes PNG files:
  loss.png          training and test loss, grad_norm and shallow_gap against
                    mean-field time (log scales)
  measure.png       per layer (up to four), the marginal densities of |u|, |w|
                    and b as heat maps over time (from the snapshots, or the
                    checkpoints when there are none)
  trajectories.png  u.e1 and w.e1 of a few particles over time, per layer
  final_scatter.png (w.e1, u.e1) of every particle of the final state, per layer
"""
import argparse
import os
import sys

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

from mfresfile import load_run  # noqa: E402


def shown_layers(L, most=4):
    return sorted(set(np.linspace(0, L - 1, min(L, most)).round().astype(int)))


def plot_loss(run, path):
    m = run.metrics
    t = m["time"]
    positive = t > 0
    fig, ax = plt.subplots(1, 3, figsize=(13, 3.8))
    ax[0].loglog(t[positive], m["loss"][positive], label="train loss")
    if np.any(np.isfinite(m["test_loss"])):
        ax[0].loglog(t[positive], m["test_loss"][positive], label="test loss")
    ax[0].set_ylabel("loss")
    ax[0].legend()
    ax[1].loglog(t[positive], m["grad_norm"][positive])
    ax[1].set_ylabel("grad_norm (RMS particle velocity)")
    ax[2].semilogx(t[positive], m["shallow_gap"][positive])
    ax[2].set_ylabel("shallow_gap")
    for a in ax:
        a.set_xlabel("mean-field time t")
        a.grid(True, which="both", alpha=0.3)
    fig.suptitle(f"{run.path}: L = {run.value('model.layers')}, M = {run.value('model.width')}")
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


def plot_measure(measures, path):
    L = measures[0].layers
    layers = shown_layers(L)
    quantities = [("|u|", lambda m, l: np.linalg.norm(m.u[m.layer == l], axis=1)),
                  ("|w|", lambda m, l: np.linalg.norm(m.w[m.layer == l], axis=1)),
                  ("b", lambda m, l: m.b[m.layer == l])]
    times = [m.time for m in measures]
    fig, ax = plt.subplots(len(layers), 3, figsize=(13, 2.6 * len(layers)), squeeze=False)
    for i, l in enumerate(layers):
        for j, (name, get) in enumerate(quantities):
            values = [get(m, l) for m in measures]
            lo = min(v.min() for v in values)
            hi = max(v.max() for v in values)
            bins = np.linspace(lo, hi if hi > lo else lo + 1, 50)
            density = np.array([np.histogram(v, bins=bins, density=True)[0] for v in values]).T
            ax[i][j].imshow(density, origin="lower", aspect="auto", cmap="viridis",
                            extent=[-0.5, len(times) - 0.5, bins[0], bins[-1]])
            ticks = np.arange(len(times))[:: max(1, len(times) // 6)]
            ax[i][j].set_xticks(ticks, [f"{times[k]:.3g}" for k in ticks])
            ax[i][j].set_title(f"layer {l}: density of {name}")
            ax[i][j].set_xlabel("mean-field time t")
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


def plot_trajectories(measures, path, count=8):
    L = measures[0].layers
    layers = shown_layers(L)
    common = set(measures[0].id)
    for m in measures[1:]:
        common &= set(m.id)
    times = [m.time for m in measures]
    fig, ax = plt.subplots(1, len(layers), figsize=(4 * len(layers), 3.6), squeeze=False)
    for i, l in enumerate(layers):
        ids = sorted(g for g in common if g // measures[0].width == l)[:count]
        for k, g in enumerate(ids):
            rows = [np.flatnonzero(m.id == g)[0] for m in measures]
            color = f"C{k % 10}"
            ax[0][i].plot(times, [m.u[r, 0] for m, r in zip(measures, rows)], color=color)
            ax[0][i].plot(times, [m.w[r, 0] for m, r in zip(measures, rows)], color=color,
                          linestyle="--")
        ax[0][i].set_title(f"layer {l}: u.e1 (solid), w.e1 (dashed)")
        ax[0][i].set_xlabel("mean-field time t")
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


def plot_final_scatter(final, path):
    L = final.layers
    cols = min(L, 4)
    rows = (L + cols - 1) // cols
    fig, ax = plt.subplots(rows, cols, figsize=(3.4 * cols, 3.2 * rows), squeeze=False)
    for l in range(rows * cols):
        a = ax[l // cols][l % cols]
        if l >= L:
            a.axis("off")
            continue
        sel = final.layer == l
        a.scatter(final.w[sel, 0], final.u[sel, 0], s=4, alpha=0.5)
        a.set_title(f"layer {l}, t = {final.time:.3g}")
        a.set_xlabel("w.e1")
        a.set_ylabel("u.e1")
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


def plot_run(run_dir, out=None):
    """All figures of a run; returns their paths."""
    run = load_run(run_dir)
    out = out or os.path.join(run_dir, "figures")
    os.makedirs(out, exist_ok=True)
    measures = run.measures()
    if len(measures) < 2:
        print(f"plot_run.py: {run_dir} holds one state only: measure.png and trajectories.png "
              "show a single time (write snapshots with output.snapshot_every, or keep "
              "several checkpoints, to see the measure evolve)", file=sys.stderr)
    paths = {name: os.path.join(out, name + ".png")
             for name in ("loss", "measure", "trajectories", "final_scatter")}
    plot_loss(run, paths["loss"])
    plot_measure(measures, paths["measure"])
    plot_trajectories(measures, paths["trajectories"])
    plot_final_scatter(run.final_measure(), paths["final_scatter"])
    return paths


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("run_dir")
    parser.add_argument("--out")
    args = parser.parse_args()
    for path in plot_run(args.run_dir, args.out).values():
        print(path)
