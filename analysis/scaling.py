"""Width- and depth-scaling studies: how far each run is from the largest one.

For runs that differ only in one key (model.width or model.layers):
  - the loss curve distance: sup over the common logged times of
    |loss(t) - loss_ref(t)|, the reference being the largest run;
  - the final measure distance: the Wasserstein-2 distance between each
    layer's particles (u, w, b) and the reference's layer at the same
    relative depth, averaged over layers; exact (POT's network simplex) when
    the cost matrix is small enough, else sliced;
  - a least-squares fit of log(distance) against log(key): the exponent and
    its standard error. Mean-field theory predicts fluctuations of order
    M^(-1/2) in width; the fit reports what the runs show.
"""
import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import ot  # noqa: E402
from scipy import stats  # noqa: E402

EXACT_LIMIT = 2.5e7  # largest cost matrix (entries) solved exactly


def w2(a, b, projections=256, seed=0):
    """Wasserstein-2 distance between the uniform empirical measures on the
    rows of a and b: exact when len(a) * len(b) <= EXACT_LIMIT, else sliced."""
    a, b = np.asarray(a, float), np.asarray(b, float)
    if len(a) * len(b) <= EXACT_LIMIT:
        cost = ot.dist(a, b, metric="sqeuclidean")
        return float(np.sqrt(max(ot.emd2(ot.unif(len(a)), ot.unif(len(b)), cost,
                                         numItermax=10 ** 7), 0.0)))
    return float(ot.sliced_wasserstein_distance(a, b, n_projections=projections, seed=seed))


def sup_distance(t_ref, y_ref, t, y):
    """sup over the times logged in both curves of |y - y_ref|."""
    common, i_ref, i = np.intersect1d(np.round(t_ref, 12), np.round(t, 12),
                                      return_indices=True)
    if len(common) == 0:
        raise ValueError("the loss curves share no logged time")
    return float(np.max(np.abs(np.asarray(y)[i] - np.asarray(y_ref)[i_ref])))


def fit_power(x, d):
    """d = C x^p: returns (p, standard error of p, C)."""
    fit = stats.linregress(np.log(x), np.log(d))
    return fit.slope, fit.stderr, float(np.exp(fit.intercept))


def matching_layer(l, L, L_ref):
    """The reference layer at the same relative depth (l + 1/2) / L."""
    return int(min(L_ref - 1, max(0, round((l + 0.5) * L_ref / L - 0.5))))


def study(runs, key):
    """Distances of every run from the largest; returns (rows, fits)."""
    runs = sorted(runs, key=lambda r: r.value(key))
    values = [r.value(key) for r in runs]
    if len(set(values)) != len(values) or len(runs) < 3:
        raise ValueError(f"need at least 3 runs with different {key}, got {values}")
    ref = runs[-1]
    ref_final = ref.final_measure()
    rows = []
    for run in runs[:-1]:
        final = run.final_measure()
        dists = [w2(final.theta(l), ref_final.theta(matching_layer(l, final.layers,
                                                                   ref_final.layers)))
                 for l in range(final.layers)]
        rows.append({key: run.value(key), "run": run.path,
                     "loss_distance": sup_distance(ref.metrics["time"], ref.metrics["loss"],
                                                   run.metrics["time"], run.metrics["loss"]),
                     "w2": float(np.mean(dists))})
    x = np.array([r[key] for r in rows], float)
    fits = {name: fit_power(x, np.array([r[name] for r in rows]))
            for name in ("loss_distance", "w2")}
    return rows, fits, ref


def plot(rows, fits, key, ref, path):
    x = np.array([r[key] for r in rows], float)
    fig, ax = plt.subplots(1, 2, figsize=(11, 4))
    titles = {"loss_distance": "sup_t |loss(t) - loss_ref(t)|",
              "w2": "W2 of the final measure to the reference (mean over layers)"}
    for a, name in zip(ax, ("loss_distance", "w2")):
        d = np.array([r[name] for r in rows])
        p, se, c = fit_power(x, d)
        a.loglog(x, d, "o", label="runs")
        grid = np.geomspace(x.min(), x.max(), 50)
        a.loglog(grid, c * grid ** p, "-", label=f"fit: exponent {p:.3f} ± {se:.3f}")
        a.loglog(grid, d[0] * (grid / x[0]) ** -0.5, ":", color="gray", label="slope -1/2")
        a.set_xlabel(key)
        a.set_title(titles[name], fontsize=10)
        a.legend()
        a.grid(True, which="both", alpha=0.3)
    fig.suptitle(f"distance from the {key} = {ref.value(key)} run ({ref.path})", fontsize=10)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


def main(key, description, default_out):
    import argparse

    from mfresfile import load_runs

    parser = argparse.ArgumentParser(description=description)
    parser.add_argument("runs", nargs="+", help="run directories, or folders holding them")
    parser.add_argument("--out", default=default_out, help="figure (.png or .svg)")
    parser.add_argument("--tsv", help="also write the distances here")
    args = parser.parse_args()
    rows, fits, ref = study(load_runs(args.runs), key)
    print(f"reference: {ref.path} ({key} = {ref.value(key)})")
    print(f"{key:>14} {'sup loss distance':>18} {'W2 final measure':>18}")
    for r in rows:
        print(f"{r[key]:>14} {r['loss_distance']:>18.6g} {r['w2']:>18.6g}")
    for name, (p, se, _) in fits.items():
        print(f"exponent of {name}: {p:.4f} ± {se:.4f}")
    plot(rows, fits, key, ref, args.out)
    print(f"figure: {args.out}")
    if args.tsv:
        with open(args.tsv, "w") as f:
            f.write(f"{key}\tloss_distance\tw2\trun\n")
            for r in rows:
                f.write(f"{r[key]}\t{r['loss_distance']!r}\t{r['w2']!r}\t{r['run']}\n")
