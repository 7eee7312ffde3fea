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
Runs made with several seeds (init.seed, train.seed, data.seed) are compared
within their seed (the nested coupling shares particles only there), and
the distances are averaged over seeds, with their standard errors.
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


def seeds(run):
    return tuple(run.value(k) for k in ("init.seed", "train.seed", "data.seed"))


def distances(runs, key):
    """Distances of each run from the largest run of the same seeds."""
    runs = sorted(runs, key=lambda r: r.value(key))
    values = [r.value(key) for r in runs]
    if len(set(values)) != len(values) or len(runs) < 3:
        raise ValueError(f"need at least 3 runs with different {key} per seed, got {values}")
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
    return rows, ref


def study(runs, key):
    """Distances from the largest run, averaged over seeds; returns (rows,
    fits, reference run). rows hold the mean, its standard error and the
    number of seeds for every value of key but the largest."""
    groups = {}
    for run in runs:
        groups.setdefault(seeds(run), []).append(run)
    per_seed, refs = [], []
    for group in groups.values():
        rows, ref = distances(group, key)
        per_seed.append({r[key]: r for r in rows})
        refs.append(ref)
    if len({ref.value(key) for ref in refs}) != 1 or len({tuple(sorted(p)) for p in per_seed}) != 1:
        raise ValueError(f"every seed needs runs at the same values of {key}")
    rows = []
    for x in sorted(per_seed[0]):
        row = {key: x, "seeds": len(per_seed), "runs": [p[x]["run"] for p in per_seed]}
        for name in ("loss_distance", "w2"):
            d = np.array([p[x][name] for p in per_seed])
            row[name] = float(d.mean())
            row[name + "_se"] = float(d.std(ddof=1) / np.sqrt(len(d))) if len(d) > 1 else 0.0
        rows.append(row)
    x = np.array([r[key] for r in rows], float)
    fits = {name: fit_power(x, np.array([r[name] for r in rows]))
            for name in ("loss_distance", "w2")}
    return rows, fits, refs[0]


def plot(rows, fits, key, ref, path):
    x = np.array([r[key] for r in rows], float)
    fig, ax = plt.subplots(1, 2, figsize=(11, 4))
    titles = {"loss_distance": "sup_t |loss(t) - loss_ref(t)|",
              "w2": "W2 of the final measure to the reference (mean over layers)"}
    for a, name in zip(ax, ("loss_distance", "w2")):
        d = np.array([r[name] for r in rows])
        p, se, c = fit_power(x, d)
        n = rows[0]["seeds"]
        a.errorbar(x, d, yerr=[r[name + "_se"] for r in rows], fmt="o", capsize=3,
                   label=f"runs (mean over {n} seed{'s' if n > 1 else ''} ± s.e.)")
        a.set_xscale("log")
        a.set_yscale("log")
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
    print(f"reference: {ref.path} ({key} = {ref.value(key)}); {rows[0]['seeds']} seed(s)")
    print(f"{key:>14} {'sup loss distance':>28} {'W2 final measure':>28}")
    for r in rows:
        print(f"{r[key]:>14} {r['loss_distance']:>15.6g} ± {r['loss_distance_se']:<10.3g}"
              f" {r['w2']:>15.6g} ± {r['w2_se']:<10.3g}")
    for name, (p, se, _) in fits.items():
        print(f"exponent of {name}: {p:.4f} ± {se:.4f}")
    plot(rows, fits, key, ref, args.out)
    print(f"figure: {args.out}")
    if args.tsv:
        with open(args.tsv, "w") as f:
            f.write(f"{key}\tseeds\tloss_distance\tloss_distance_se\tw2\tw2_se\n")
            for r in rows:
                f.write(f"{r[key]}\t{r['seeds']}\t{r['loss_distance']!r}\t"
                        f"{r['loss_distance_se']!r}\t{r['w2']!r}\t{r['w2_se']!r}\n")
