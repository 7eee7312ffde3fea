#!/usr/bin/env python3
"""Width and depth scaling of an ensemble of mfres runs: how the network's
function and loss fluctuate over independent seeds, and what they tend to.

    analysis/scaling.py width STUDY... [--out DIR] [--json FILE] [--format png|svg]
                                       [--bootstrap 1000] [--min-particles N]
    analysis/scaling.py depth STUDY... (the same options)
    analysis/scaling.py key KEY STUDY... (the same options; e.g. KEY = model.alpha)

STUDY: run directories, or folders holding them at any depth (as
jobs/study.sh makes them). The runs must differ only in model.width,
model.layers, init.seed, train.seed and [output]; they are grouped into grid
points (L, M), each with at least 2 finished runs (seeds). Unfinished runs
are skipped with a warning that names them.

What is computed, from each run's outputs.h5, at every logged time t:
  - per grid point, the mean and the standard deviation over seeds of the
    training loss, the test loss, and the outputs z(x) on the probe inputs
    (for the outputs: the RMS over probes of the per-probe std);
  - the fluctuation exponent p in std ~ (L M)^p: a weighted least-squares fit
    of log std against log(L M) (weights 2(n - 1), the inverse variance of
    the log of a std over n seeds), its 95% confidence interval a
    t-interval (K - 2 degrees of freedom for K points) with the noise scale
    estimated from the fit's residuals, which does not assume how the
    probes' deviations are correlated (their RMS is far less noisy than one
    std when they are many independent ones); in the coupled protocol,
    where points share seeds, a bootstrap over seeds instead (draws of a
    single seed excluded, stds rescaled by sqrt(n (1 - n^(1-n)) / (n - 1)),
    the bias of such resampling). Both cover the truth in 93-97% of
    synthetic ensembles shaped like the README's (tested). Each point's std
    has a 95% interval (std_ci) from the delete-one jackknife variance of
    its log over seeds, with n - 1 degrees of freedom (96% coverage, tested;
    the seed bootstrap it replaced covered 77-91%). chi2_dof: the residuals
    against those variances, about 1 where the power law holds. Mean-field theory predicts p = -1/2;
  - the limit (at the final time, and at every logged time: limit_t): the
    mean fitted as m_inf + b / (L M) (width), or
    m_inf + b / (L M) + c / L (depth, when L M varies too), weighted by the
    squared standard errors of the means (their stds taken from the fitted
    power law), m_inf with a 95% t-interval (Welch-Satterthwaite
    degrees of freedom; per seed in the coupled protocol); in width studies
    also m_inf + b (L M)^-q with q free (CI from the fit's covariance scaled
    by its residuals, t quantile of K - 3 degrees of freedom; 93-95%
    coverage, tested);
  - the distance to the limit: per run the RMS over probes of
    z(x) - z_inf(x), z_inf the extrapolated limit of the mean outputs, then
    its RMS over the seeds of a point, and its exponent (interval as for p).
    This is the measure
    for the coupled protocol (seeds shared across the grid, detected when
    grid points share init seeds; only seeds present at every point are used,
    the others left out with a warning, and the bootstrap resamples seeds
    jointly across points); in the uncoupled one it adds the squared bias to
    the variance.

key KEY: the runs may also differ in KEY (numeric values; jobs/study.sh
with MFRES_STUDY_GRID makes such a study). Per grid point (L, M) with runs
at 2 or more values: the std over seeds against the value and its exponent
q in std ~ value^q, fitted as above, its interval the residual-scaled
t-interval also when the values share seeds (a grid study's; 94-97%
coverage on synthetic key studies with independent and with strongly
correlated values, tested); per value
with 2 or more L·M: the width (or depth) analysis above. summary.json holds
"fluctuation_exponent" (in the key, at the grid point with the most
particles, [q, lo, hi] per observable), "by_point", "per_value" (each
value's exponent in L·M and limit); fluctuations.png and table.tsv.

Writes into DIR (default ./scaling-width, ./scaling-depth or ./scaling-KEY): summary.json,
table.tsv (one row per grid point at the final time) and figures:
fluctuations, limit, limit_t (the limit of the training and test loss at
every logged time, with its 95% band, and each point's mean: log-log;
summary.json's details.observables.loss.limit_t), bands (loss over time
per point), exponent_t (exponent over time), and depth (depth studies). Prints the table and
one-line results such as "fluctuation exponent (output): -0.49 [-0.53, -0.45]".
Bad input (runs that differ in other keys, mixed probe sets or logged steps,
a point without 2 finished runs) is an error, exit 2, nothing written.
"""
import argparse
import configparser
import json
import os
import sys
import warnings

import matplotlib

matplotlib.use("Agg")
matplotlib.rcParams.update({"svg.fonttype": "none", "svg.hashsalt": "mfres"})  # small, stable SVG
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
from scipy import optimize, stats  # noqa: E402

from mfresfile import find_run_dirs, read_outputs  # noqa: E402

VARYING = {"model.width", "model.layers", "init.seed", "train.seed"}
OBSERVABLES = ("output", "loss", "test_loss")


class StudyError(ValueError):
    """Input that cannot make a study."""


WARNINGS = []  # every warning of this analysis, also kept in summary.json


def warn(message):
    WARNINGS.append(message)
    print(f"scaling.py: warning: {message}", file=sys.stderr)


def flat_config(path):
    parser = configparser.ConfigParser(inline_comment_prefixes=(";",))
    parser.read(path)
    return {f"{s}.{k}": v for s in parser.sections() for k, v in parser[s].items()}


class Point:
    """One grid point (L, M), and in key studies the key's value: its seeds'
    values, each [n][T] or [n][T][P][d]."""

    def __init__(self, layers, width, value=None):
        self.layers, self.width, self.value = layers, width, value
        self.particles = layers * width
        self.seeds, self.paths, self.values = [], [], {name: [] for name in OBSERVABLES}

    def add(self, seed, path, outputs):
        self.seeds.append(seed)
        self.paths.append(path)
        for name in OBSERVABLES:
            self.values[name].append(outputs[name])

    def label(self):
        return f"L = {self.layers}, M = {self.width}" + (
            "" if self.value is None else f", value {self.value:g}")

    def subset(self, seeds):
        """A frozen copy holding only the given seeds."""
        q = Point(self.layers, self.width, self.value)
        for seed, path, *values in zip(self.seeds, self.paths,
                                       *(self.values[n] for n in OBSERVABLES)):
            if seed in seeds:
                q.add(seed, path, dict(zip(OBSERVABLES, values)))
        q.freeze()
        return q

    def freeze(self):
        order = np.argsort(self.seeds)
        self.seeds = [self.seeds[i] for i in order]
        self.paths = [self.paths[i] for i in order]
        self.values = {k: np.asarray(v)[order] for k, v in self.values.items()}


class Study:
    def __init__(self, points, times, protocol, skipped):
        self.points, self.times, self.protocol, self.skipped = points, times, protocol, skipped
        self.particles = np.array([p.particles for p in points], float)
        self.layers = np.array([p.layers for p in points], float)
        self.n = np.array([len(p.seeds) for p in points])


def collect(paths, key=None):
    """Read and check a study; raises StudyError naming the runs at fault.
    With key, runs may differ in it too: its value is part of a point
    (Study.points of every value and (L, M), ordered by value), and the
    protocol is left to the sub-studies (key_studies)."""
    dirs = find_run_dirs(paths)
    if not dirs:
        raise StudyError(f"no run directories (with config.ini) in {' '.join(paths)}")
    varying = VARYING | ({key} if key else set())
    reference, points, skipped = None, {}, []
    for d in dirs:
        cfg = flat_config(os.path.join(d, "config.ini"))
        steps = int(cfg.get("train.steps", -1))
        try:
            out = read_outputs(os.path.join(d, "outputs.h5"))
            done = int(out["step"][-1]) if len(out["step"]) else -1
        except ValueError as e:
            skipped.append(d)
            warn(f"skipped {d}: {e}")
            continue
        if done != steps:
            skipped.append(d)
            warn(f"skipped unfinished run {d} (step {max(done, 0)} of {steps})")
            continue
        fixed = {k: v for k, v in cfg.items() if k not in varying and not k.startswith("output.")}
        if reference is None:
            reference = (d, fixed, out)
        else:
            ref_dir, ref_fixed, ref_out = reference
            for k in sorted(set(fixed) | set(ref_fixed)):
                if fixed.get(k) != ref_fixed.get(k):
                    raise StudyError(f"runs differ in {k}, not only in width, depth"
                                     f"{', ' + key if key else ''} and seed: {ref_dir} has "
                                     f"{ref_fixed.get(k)}, {d} has {fixed.get(k)}")
            if not np.array_equal(out["probes_x"], ref_out["probes_x"]):
                raise StudyError(f"different probe sets: {ref_dir} and {d}")
            if not np.array_equal(out["step"], ref_out["step"]):
                raise StudyError(f"different logged steps: {ref_dir} and {d}")
        value = None
        if key:
            try:
                value = float(cfg[key])
            except KeyError:
                raise StudyError(f"{d}: no key {key} in its config.ini") from None
            except ValueError:
                raise StudyError(f"{key} = {cfg[key]} in {d} is not a number") from None
        pkey = (int(cfg["model.layers"]), int(cfg["model.width"]), value)
        point = points.setdefault(pkey, Point(*pkey))
        seed = int(cfg["init.seed"])
        if seed in point.seeds:
            other = point.paths[point.seeds.index(seed)]
            raise StudyError(f"{d} and {other} are the same run ({point.label()}, "
                             f"init.seed = {seed})")
        point.add(seed, d, out)
    # Grid points whose runs were all skipped.
    for d in skipped:
        try:
            cfg = flat_config(os.path.join(d, "config.ini"))
            pkey = (int(cfg["model.layers"]), int(cfg["model.width"]),
                    float(cfg[key]) if key else None)
        except (KeyError, ValueError):
            continue
        if pkey not in points:
            raise StudyError(f"grid point {Point(*pkey).label()} has no finished run "
                             f"(skipped: {d})")
    if reference is None:
        raise StudyError(f"no finished run in {' '.join(paths)}")
    few = [f"{p.label()} ({len(p.seeds)}: {', '.join(p.paths)})"
           for _, p in sorted(points.items(), key=lambda kv: str(kv[0])) if len(p.seeds) < 2]
    if few:
        raise StudyError("an ensemble needs at least 2 finished seeds per grid point: "
                         + "; ".join(few))
    if key:
        if len({p.value for p in points.values()}) < 2:
            raise StudyError(f"a key study needs runs at 2 or more values of {key}")
        ordered = sorted(points.values(), key=lambda p: (p.value, p.particles, p.layers))
        for p in ordered:
            p.freeze()
        return Study(ordered, reference[2]["time"], "per sub-study", skipped)
    if len(points) < 2:
        raise StudyError("a study needs at least 2 grid points (widths or depths)")
    ordered = [points[k] for k in sorted(points, key=lambda k: (k[0] * k[1], k[0]))]
    return make_study(ordered, reference[2]["time"], skipped)


def make_study(points, times, skipped):
    """A Study of points (unfrozen, or frozen and shared with another study:
    they are not changed) with its protocol: coupled when points share seeds,
    then only the seeds present at every point are kept (the others left out
    with a warning)."""
    protocol = "uncoupled"
    if len({seed for p in points for seed in p.seeds}) < sum(len(p.seeds) for p in points):
        # Seeds shared across points: the coupled protocol, which compares
        # points seed by seed, so only seeds present at every point count.
        protocol = "coupled"
        common = set.intersection(*(set(p.seeds) for p in points))
        for p in points:
            for seed, path in zip(p.seeds, p.paths):
                if seed not in common:
                    warn(f"coupled study: {path} left out (init.seed = {seed} is missing at "
                         "another grid point)")
        if len(common) < 2:
            raise StudyError("a coupled study needs at least 2 seeds present at every grid point")
        points = [p.subset(common) for p in points]
    else:
        for p in points:
            if isinstance(p.values["loss"], list):
                p.freeze()
    return Study(points, times, protocol, skipped)


# ---- statistics ----

def seed_std(v, axis):
    """Std over seeds along axis (ddof = 1), then the RMS over every axis
    after the time axis (axis + 1): the outputs' probes and components."""
    var = v.var(axis=axis, ddof=1)
    extra = tuple(range(axis + 1, var.ndim))
    return np.sqrt(var.mean(axis=extra)) if extra else np.sqrt(var)


def fit_line(x, y, w):
    """Weighted least squares y = a + p x along the last axis of y (any
    leading axes); returns (p, a)."""
    w = w / w.sum()
    xm = (w * x).sum()
    ym = (y * w).sum(axis=-1)
    p = ((y - ym[..., None]) * (w * (x - xm))).sum(axis=-1) / (w * (x - xm) ** 2).sum()
    return p, ym - p * xm


def slope_interval(x, y, w):
    """The weighted least-squares slope of y on x (along y's last axis, any
    leading axes) with its 95% t-interval, the noise scale estimated from
    the residuals (K - 2 degrees of freedom; w only weighs the points
    relative to each other). Calibrated whatever the correlation of the
    probes whose RMS makes an output's std, and for key studies whose
    values share seeds: a seed's part common to every value moves their
    log stds alike, which the intercept takes and the slope and the
    residuals do not see (tested); (p, lo, hi)."""
    w = w / w.sum()
    p, a = fit_line(x, y, w)
    resid = y - a[..., None] - p[..., None] * x
    K = len(x)
    s2 = (w * resid ** 2).sum(axis=-1) / max(K - 2, 1)
    sxx = (w * (x - (w * x).sum()) ** 2).sum()
    half = (stats.t.ppf(0.975, K - 2) if K > 2 else np.nan) * np.sqrt(s2 / sxx)
    return p, p - half, p + half


def jackknife_var(v):
    """The delete-one jackknife variance over seeds (axis 0) of the log of
    seed_std at the final time: the noise of one point's log std, whatever
    the correlation of the probes. With 2 seeds (nothing to leave out) that
    of one normal variable's, 1 / (2 (n - 1))."""
    n = len(v)
    if n < 3:
        return 1.0 / (2 * (n - 1))
    loo = np.log([seed_std(np.delete(v, i, axis=0), 0)[-1] for i in range(n)])
    return (n - 1) / n * ((loo - loo.mean()) ** 2).sum()


def limit_design(study):
    """Columns of the bias model: 1, 1/(L M), and 1/L when L varies (a column
    that is constant over the grid is left out, as the intercept holds it)."""
    cols, names = [np.ones(len(study.points))], ["limit"]
    for values, name in ((1.0 / study.particles, "per_particle"), (1.0 / study.layers, "per_layer")):
        if np.ptp(values) > 0:
            cols.append(values)
            names.append(name)
    return np.array(cols).T, names


def limit_weights(design, se):
    """Rows of the weighted least-squares solution: coef = A @ y."""
    w = 1.0 / np.maximum(se, 1e-300) ** 2
    xtw = design.T * w
    return np.linalg.solve(xtw @ design, xtw)


def resample_index(study, draws, rng):
    """Bootstrap seed indices per point: [draws][n] arrays; the same for
    every point in the coupled protocol (seeds shared across the grid). A
    draw of one seed n times has no spread (probability n^(1-n): 1/64 with
    4 seeds) and would put log std at -inf; such draws are drawn again, so
    the bootstrap is conditioned on at least two distinct seeds."""
    def draw(n):
        idx = rng.integers(0, n, size=(draws, n))
        while True:
            same = idx.min(axis=1) == idx.max(axis=1)
            if not same.any():
                return idx
            idx[same] = rng.integers(0, n, size=(int(same.sum()), n))

    if study.protocol == "coupled":
        return [draw(study.n[0])] * len(study.points)
    return [draw(n) for n in study.n]


def interval(samples, axis=0):
    s = np.where(np.isfinite(samples), samples, np.nan)
    return np.nanpercentile(s, 2.5, axis=axis), np.nanpercentile(s, 97.5, axis=axis)


def analyse(study, draws=1000, min_particles=0, seed=0, against=None):
    """Every number of the study, as a dict (see the module's docstring).
    With against (one positive number per point: a key's values), the
    fluctuations' exponent is against it instead of L·M, and no limit is
    fitted."""
    rng = np.random.default_rng(seed)
    use = study.particles >= min_particles
    if use.sum() < 2:
        raise StudyError(f"fewer than 2 grid points have at least {min_particles:g} particles")
    x = np.log(study.particles if against is None else np.asarray(against, float))
    # Exponents need x to vary (a depth grid at fixed L·M has none).
    varies = len(set(x[use])) > 1
    undefined = [float("nan")] * 3
    weights = 2.0 * (study.n - 1)
    # Intervals of exponents: the fit's residual-scaled t-interval
    # (slope_interval), or for coupled width studies a bootstrap over seeds
    # drawn jointly across the grid.
    boot = study.protocol == "coupled" and against is None
    index = resample_index(study, draws, rng) if boot else None
    T = len(study.times)
    res = {"protocol": study.protocol, "times": study.times.tolist(), "observables": {}}
    design, names = limit_design(study)
    for name in OBSERVABLES:
        vals = [p.values[name] for p in study.points]
        if vals[0].size == 0:
            continue
        std = np.array([seed_std(v, 0) for v in vals])            # [K][T]
        mean = np.array([v.mean(axis=0) for v in vals])          # [K][T](...)
        if boot:
            boot_std = np.empty((draws, len(vals), T))
            boot_mean = np.empty((draws,) + mean.shape)
            for k, (v, idx) in enumerate(zip(vals, index)):
                n = len(v)
                r = v[idx]                                        # [B][n][T]...
                boot_std[:, k] = seed_std(r, 1) * np.sqrt(n / (n - 1) * (1 - n ** (1.0 - n)))
                boot_mean[:, k] = r.mean(axis=1)
        with np.errstate(divide="ignore", invalid="ignore"):
            p_t, a_t = fit_line(x[use], np.log(std[use].T), weights[use])        # [T]
            if boot:
                bp_t, _ = fit_line(x[use], np.log(boot_std[:, use].transpose(0, 2, 1)),
                                   weights[use])
                lo_t, hi_t = interval(bp_t)
            else:
                _, lo_t, hi_t = slope_interval(x[use], np.log(std[use].T), weights[use])
        if not varies:
            p_t[:], lo_t[:], hi_t[:] = np.nan, np.nan, np.nan
        # Each point's std at the final time: a t-interval on its log with
        # the jackknife variance over seeds (n - 1 degrees of freedom).
        var = np.array([jackknife_var(v) for v in vals])
        half = stats.t.ppf(0.975, study.n - 1) * np.sqrt(var)
        obs = {"std": std[:, -1].tolist(),
               "std_ci": [(std[:, -1] * np.exp(-half)).tolist(),
                          (std[:, -1] * np.exp(half)).tolist()],
               "exponent": [float(p_t[-1]), float(lo_t[-1]), float(hi_t[-1])],
               "exponent_t": [p_t.tolist(), lo_t.tolist(), hi_t.tolist()]}
        # Residual check of the log-linear law at the final time.
        p, a = fit_line(x[use], np.log(std[use, -1]), weights[use])
        resid = np.log(std[use, -1]) - (a + p * x[use])
        obs["chi2_dof"] = (float((resid ** 2 / var[use]).sum() / max(use.sum() - 2, 1))
                           if varies else float("nan"))
        final_mean = mean[:, -1].reshape(len(vals), -1)          # [K][P d] or [K][1]
        obs["mean"] = final_mean.mean(axis=1).tolist() if name == "output" else final_mean[:, 0].tolist()
        obs["mean_se"] = (std[:, -1] / np.sqrt(study.n)).tolist()
        res["observables"][name] = obs
        if against is not None:
            continue
        # Limit of the mean: linear in the means, with their standard errors.
        # Weights from the fitted power law rather than each point's own std
        # (noisy with few seeds); so is the free bias exponent's fit.
        se_fit = np.exp(a + p * x[use]) / np.sqrt(study.n[use])
        A = limit_weights(design[use], se_fit)
        coef = A @ final_mean[use]                                # [C][P d]
        fitted = design @ coef                                    # [K][P d]
        if name != "output":
            finals = [v[:, -1] for v, u in zip(vals, use) if u]
            obs["limit"] = {c: t_interval(A[i], finals, study.protocol)
                            for i, c in enumerate(names)}
            obs["free_bias_exponent"] = (free_bias(study.particles[use], final_mean[use, 0],
                                                   se_fit) if varies else undefined)
            # The limit at every logged time, each with its own power law's weights.
            obs["limit_t"] = []
            for tau in range(T):
                fit = np.exp(a_t[tau] + p_t[tau] * x[use]) if varies else std[use, tau]
                A_t = limit_weights(design[use], fit / np.sqrt(study.n[use]))
                obs["limit_t"].append(t_interval(A_t[0], [v[:, tau] for v, u in zip(vals, use)
                                                          if u], study.protocol))
        # Distance of every run to the extrapolated limit z_inf, at the final time.
        lasts = [v[:, -1].reshape(len(v), -1) for v in vals]     # [n][P d] each
        dist = np.array([np.sqrt(((last - coef[0]) ** 2).mean()) for last in lasts])
        with np.errstate(divide="ignore", invalid="ignore"):
            pd, _ = fit_line(x[use], np.log(dist[use]), weights[use])
            if boot:  # z_inf and the distances again from each draw of seeds
                boot_inf = np.einsum("k,bkj->bj", A[0], boot_mean[:, use, -1].reshape(
                    draws, use.sum(), -1))                        # [B][P d]
                boot_dist = np.array([np.sqrt(((last[idx] - boot_inf[:, None, :]) ** 2)
                                              .mean(axis=(1, 2)))
                                      for last, idx in zip(lasts, index)]).T
                bpd, _ = fit_line(x[use], np.log(boot_dist[:, use]), weights[use])
                lo, hi = interval(bpd)
            else:
                _, lo, hi = slope_interval(x[use], np.log(dist[use]), weights[use])
        obs["distance_to_limit"] = dist.tolist()
        obs["distance_exponent"] = [float(pd), float(lo), float(hi)] if varies else undefined
        obs["fitted_mean"] = fitted.mean(axis=1).tolist()
    return res


def key_analysis(study, draws=1000, min_particles=0):
    """A key study: per grid point (L, M) with runs at 2 or more values, the
    fluctuations against the value (exponent with its slope_interval, also
    where the values share seeds, as jobs/study.sh runs them); per value
    with 2 or more L·M, its width (or depth) analysis."""
    by_point, per_value = [], []
    for L, M in sorted({(p.layers, p.width) for p in study.points},
                       key=lambda lm: (lm[0] * lm[1], lm[0])):
        pts = [p for p in study.points if (p.layers, p.width) == (L, M)]
        if len(pts) > 1:
            sub = make_study(pts, study.times, [])
            res = analyse(sub, draws, against=[p.value for p in sub.points])
            by_point.append({"L": L, "M": M, "values": [p.value for p in sub.points],
                             "seeds": sub.n.tolist(), "protocol": sub.protocol,
                             "observables": res["observables"]})
    if not by_point:
        raise StudyError("no grid point (L, M) has runs at 2 or more values of the key")
    for v in sorted({p.value for p in study.points}):
        pts = [p for p in study.points if p.value == v]
        entry = {"value": v, "points": [{"L": p.layers, "M": p.width, "seeds": len(p.seeds)}
                                        for p in pts]}
        if len({p.particles for p in pts}) > 1:
            sub = make_study(sorted(pts, key=lambda p: (p.particles, p.layers)), study.times, [])
            entry["protocol"] = sub.protocol
            entry["observables"] = analyse(sub, draws, min_particles)["observables"]
        per_value.append(entry)
    return {"times": study.times.tolist(), "by_point": by_point, "per_value": per_value}


def t_interval(a, values, protocol):
    """a . means (a coefficient of the limit fit) with its 95% CI. The points
    are independent (uncoupled): variance sum a_k^2 s_k^2 / n_k with
    Welch-Satterthwaite degrees of freedom; coupled: the same seeds at every
    point, so the combination is formed per seed and its spread over seeds
    used (n - 1 degrees of freedom)."""
    estimate = float(sum(ak * v.mean() for ak, v in zip(a, values)))
    if protocol == "coupled":
        per_seed = sum(ak * v for ak, v in zip(a, values))
        var, dof = per_seed.var(ddof=1) / len(per_seed), len(per_seed) - 1
    else:
        parts = np.array([ak ** 2 * v.var(ddof=1) / len(v) for ak, v in zip(a, values)])
        var = parts.sum()
        dof = var ** 2 / np.sum(parts ** 2 / np.array([len(v) - 1 for v in values]))
    half = float(stats.t.ppf(0.975, dof) * np.sqrt(var))
    return [estimate, estimate - half, estimate + half]


def free_bias(particles, mean, se):
    """mean = m_inf + b (L M)^-q with q free: [q, lo, hi] from the fit's
    covariance with a t quantile of K - 3 degrees of freedom (NaN when the
    fit fails or is unconstrained)."""
    if len(particles) < 4:
        return [float("nan")] * 3
    s = particles / particles.min()

    def model(n, m, b, q):
        return m + b * n ** -q

    try:
        with warnings.catch_warnings(), np.errstate(all="ignore"):
            warnings.simplefilter("ignore")
            popt, pcov = optimize.curve_fit(model, s, mean, p0=(mean[-1], mean[0] - mean[-1], 1.0),
                                            sigma=se, absolute_sigma=False, maxfev=20000)
        q, dq = popt[2], float(np.sqrt(pcov[2, 2]))
    except (RuntimeError, ValueError):
        return [float("nan")] * 3
    half = stats.t.ppf(0.975, len(particles) - 3) * dq  # 3 parameters fitted
    return [float(q), float(q - half), float(q + half)]


# ---- output ----

def finish(fig, path, axes):
    """Legends and grids on axes, then write the figure and close it."""
    for ax in axes:
        ax.legend(fontsize=8)
        ax.grid(True, alpha=0.3)
    fig.tight_layout()
    fig.savefig(path, metadata={"Date": None} if path.endswith(".svg") else None)
    plt.close(fig)


LABELS = {"output": "outputs z(x) on the probes", "loss": "training loss", "test_loss": "test loss"}


def write_table(study, res, path):
    cols = ["L", "M", "LM", "seeds"]
    for name in res["observables"]:
        cols += [f"{name}_mean", f"{name}_std", f"{name}_distance_to_limit"]
    rows = []
    for k, p in enumerate(study.points):
        row = [p.layers, p.width, p.particles, len(p.seeds)]
        for obs in res["observables"].values():
            row += [obs["mean"][k], obs["std"][k], obs["distance_to_limit"][k]]
        rows.append(row)
    with open(path, "w") as f:
        f.write("\t".join(cols) + "\n")
        for row in rows:
            f.write("\t".join(repr(v) if isinstance(v, float) else str(v) for v in row) + "\n")
    return cols, rows


def plot_fluctuations(study, res, path):
    names = list(res["observables"])
    fig, axes = plt.subplots(1, len(names), figsize=(4.6 * len(names), 3.9))
    x = study.particles
    for ax, name in zip(np.atleast_1d(axes), names):
        obs = res["observables"][name]
        std, (lo, hi) = np.array(obs["std"]), map(np.array, obs["std_ci"])
        p, plo, phi = obs["exponent"]
        for L in sorted(set(study.layers)):
            sel = study.layers == L
            err = np.maximum([std[sel] - lo[sel], hi[sel] - std[sel]], 0)
            ax.errorbar(x[sel], std[sel], yerr=err, fmt="o",
                        capsize=3, label=f"L = {int(L)}" if len(set(study.layers)) > 1 else "std over seeds")
        w = 2.0 * (study.n - 1)
        slope, a = fit_line(np.log(x), np.log(std), w)
        grid = np.geomspace(x.min(), x.max(), 50)
        ax.loglog(grid, np.exp(a) * grid ** p, "-", label=f"fit {p:.3f} [{plo:.3f}, {phi:.3f}]")
        mid = np.exp(np.average(np.log(x), weights=w))
        ax.loglog(grid, np.exp(a) * mid ** p * (grid / mid) ** -0.5, ":", color="gray",
                  label="slope -1/2")
        ax.set_xlabel("particles L·M")
        ax.set_title(f"std over seeds: {LABELS[name]}", fontsize=9)
    finish(fig, path, np.atleast_1d(axes))


def plot_limit(study, res, path):
    obs = res["observables"]["loss"]
    mean, se = np.array(obs["mean"]), np.array(obs["mean_se"])
    m, lo, hi = obs["limit"]["limit"]
    x = 1.0 / study.particles
    fig, ax = plt.subplots(1, 2, figsize=(10, 3.9))
    half = stats.t.ppf(0.975, study.n - 1) * se
    ax[0].errorbar(x, mean, yerr=half, fmt="o", capsize=3, label="mean over seeds ± 95%")
    order = np.argsort(x)
    ax[0].plot(np.r_[0, x[order]], np.r_[m, np.array(obs["fitted_mean"])[order]], "-",
               label="fit m∞ + b/(LM)" + (" + c/L" if "per_layer" in obs["limit"] else ""))
    ax[0].errorbar([0], [m], yerr=[[m - lo], [hi - m]], fmt="s", color="k", capsize=4,
                   label=f"m∞ = {m:.4g} [{lo:.4g}, {hi:.4g}]")
    ax[0].set_xlabel("1 / (L·M)")
    ax[0].ticklabel_format(axis="x", style="sci", scilimits=(0, 0))
    ax[0].set_ylabel("final training loss")
    gap = np.abs(mean - m)
    ax[1].loglog(study.particles, gap, "o", label="|mean − m∞|")
    ax[1].loglog(study.particles, half, "x", color="gray", label="95% half-width of the mean")
    b = obs["limit"].get("per_particle", [np.nan])[0]
    if np.isfinite(b):
        grid = np.geomspace(study.particles.min(), study.particles.max(), 50)
        ax[1].loglog(grid, np.abs(b) / grid, "-", label="|b| / (LM)")
    ax[1].set_xlabel("particles L·M")
    finish(fig, path, ax)


def plot_limit_t(study, res, path):
    """The extrapolated limit of the loss over time with its 95% band, and
    each grid point's mean, on log-log axes (the test loss on the right)."""
    names = [n for n in ("loss", "test_loss") if "limit_t" in res["observables"].get(n, {})]
    fig, axes = plt.subplots(1, len(names), figsize=(5.2 * len(names), 3.9))
    t = np.array(study.times)
    later = t > 0
    colors = plt.cm.viridis(np.linspace(0, 0.9, len(study.points)))
    for ax, name in zip(np.atleast_1d(axes), names):
        m, lo, hi = np.array(res["observables"][name]["limit_t"]).T
        for p, c in zip(study.points, colors):
            ax.plot(t[later], p.values[name].mean(axis=0)[later], color=c, lw=1,
                    label=f"M = {p.width}" if len(set(study.layers)) == 1 else
                    f"L = {p.layers}, M = {p.width}")
        ax.fill_between(t[later], np.maximum(lo, m * 1e-3)[later], hi[later], color="k",
                        alpha=0.2)
        ax.plot(t[later], m[later], "k--", label="m∞(t), 95% band")
        ax.set_xscale("log")
        ax.set_yscale("log")
        ax.set_xlabel("mean-field time t")
        ax.set_ylabel(f"{LABELS[name]} (mean over seeds)")
    finish(fig, path, np.atleast_1d(axes))


def plot_bands(study, path):
    fig, ax = plt.subplots(figsize=(6.5, 4))
    t = study.times
    colors = plt.cm.viridis(np.linspace(0, 0.9, len(study.points)))
    for p, c in zip(study.points, colors):
        v = p.values["loss"]
        m, s = v.mean(axis=0), v.std(axis=0, ddof=1)
        ax.plot(t, m, color=c, label=f"L = {p.layers}, M = {p.width} ({len(p.seeds)} seeds)")
        ax.fill_between(t, np.maximum(m - s, 1e-300), m + s, color=c, alpha=0.25)
    ax.set_yscale("log")
    ax.set_xlabel("mean-field time t")
    ax.set_ylabel("training loss (mean ± std over seeds)")
    finish(fig, path, [ax])


def plot_exponent_t(study, res, path):
    fig, ax = plt.subplots(figsize=(6.5, 4))
    t = np.array(study.times)
    for name, obs in res["observables"].items():
        p, lo, hi = map(np.array, obs["exponent_t"])
        ax.plot(t, p, "o-", label=LABELS[name])
        ax.fill_between(t, lo, hi, alpha=0.2)
    ax.axhline(-0.5, color="gray", ls=":", label="-1/2")
    ax.set_xlabel("mean-field time t")
    ax.set_ylabel("fluctuation exponent (95% CI)")
    finish(fig, path, [ax])


def depth_series(study):
    """The depth lines of a grid: (selection, label, style) for each L·M and
    each M held by more than one point."""
    widths = np.array([p.width for p in study.points])
    for values, name, style in ((study.particles, "L·M", "o-"), (widths, "M", "s--")):
        for v in sorted(set(values)):
            sel = values == v
            if sel.sum() > 1:
                yield sel, f"{name} = {int(v)}", style


def plot_depth(study, res, path):
    """Mean final loss against 1/L, and the output std times sqrt(L·M)
    against L (flat where the (L·M)^(-1/2) law holds)."""
    obs = res["observables"]
    fig, ax = plt.subplots(1, 2, figsize=(10, 3.9))
    mean, se = np.array(obs["loss"]["mean"]), np.array(obs["loss"]["mean_se"])
    half = stats.t.ppf(0.975, study.n - 1) * se
    root = np.sqrt(study.particles)
    scaled = np.array(obs["output"]["std"]) * root
    lo, hi = (np.array(q) * root for q in obs["output"]["std_ci"])
    for sel, label, style in depth_series(study):
        ax[0].errorbar(1 / study.layers[sel], mean[sel], yerr=half[sel], fmt=style,
                       capsize=3, label=label)
        ax[1].errorbar(study.layers[sel], scaled[sel], fmt=style, capsize=3, label=label,
                       yerr=np.maximum([scaled[sel] - lo[sel], hi[sel] - scaled[sel]], 0))
    ax[1].set_xscale("log")
    ax[1].set_ylim(bottom=0)
    ax[0].set_xlabel("1 / L")
    ax[0].set_ylabel("final training loss (mean ± 95%)")
    ax[1].set_xlabel("depth L")
    ax[1].set_ylabel("output std × sqrt(L·M)")
    finish(fig, path, ax)


def summary(study, res, kind):
    obs = res["observables"]
    s = {"kind": kind, "protocol": study.protocol,
         "fluctuation_exponent": {k: v["exponent"] for k, v in obs.items()},
         "distance_exponent": {k: v["distance_exponent"] for k, v in obs.items()},
         "limit": {k: v["limit"]["limit"] for k, v in obs.items() if "limit" in v},
         "bias": {k: {c: v["limit"][c] for c in v["limit"] if c != "limit"}
                  for k, v in obs.items() if "limit" in v},
         "free_bias_exponent": {k: v["free_bias_exponent"] for k, v in obs.items()
                                if "free_bias_exponent" in v},
         "widths": sorted({p.width for p in study.points}),
         "depths": sorted({p.layers for p in study.points}),
         "points": [{"L": p.layers, "M": p.width, "seeds": len(p.seeds)} for p in study.points],
         "seeds": int(study.n.min()), "skipped": study.skipped, "warnings": WARNINGS,
         "details": res}
    return s


def key_summary(study, key, kres):
    """summary.json of a key study: the exponent against the key at the grid
    point with the most particles (the same shape as a width study's), every
    grid point's, and each value's width analysis where it has one."""
    main = max(kres["by_point"], key=lambda b: (b["L"] * b["M"], b["L"]))
    per_value = []
    for e in kres["per_value"]:
        row = {"value": e["value"], "points": e["points"]}
        if "observables" in e:
            obs = e["observables"]
            row["fluctuation_exponent"] = {k: v["exponent"] for k, v in obs.items()}
            row["limit"] = {k: v["limit"]["limit"] for k, v in obs.items() if "limit" in v}
        per_value.append(row)
    return {"kind": "key", "key": key, "values": sorted({p.value for p in study.points}),
            "at": {"L": main["L"], "M": main["M"], "protocol": main["protocol"]},
            "fluctuation_exponent": {k: v["exponent"] for k, v in main["observables"].items()},
            "by_point": [{"L": b["L"], "M": b["M"], "values": b["values"], "seeds": b["seeds"],
                          "protocol": b["protocol"],
                          "fluctuation_exponent": {k: v["exponent"]
                                                   for k, v in b["observables"].items()},
                          "std": {k: v["std"] for k, v in b["observables"].items()},
                          "mean": {k: v["mean"] for k, v in b["observables"].items()}}
                         for b in kres["by_point"]],
            "per_value": per_value,
            "widths": sorted({p.width for p in study.points}),
            "depths": sorted({p.layers for p in study.points}),
            "points": [{"L": p.layers, "M": p.width, "value": p.value, "seeds": len(p.seeds)}
                       for p in study.points],
            "seeds": int(study.n.min()), "skipped": study.skipped, "warnings": WARNINGS,
            "details": kres}


def plot_key(key, kres, path):
    """The std over seeds against the key's value, one series per grid
    point, with the fitted power law."""
    names = list(kres["by_point"][0]["observables"])
    fig, axes = plt.subplots(1, len(names), figsize=(4.6 * len(names), 3.9))
    for ax, name in zip(np.atleast_1d(axes), names):
        for b in kres["by_point"]:
            obs = b["observables"][name]
            x, std = np.array(b["values"]), np.array(obs["std"])
            lo, hi = map(np.array, obs["std_ci"])
            p, plo, phi = obs["exponent"]
            line = ax.errorbar(x, std, yerr=np.maximum([std - lo, hi - std], 0), fmt="o",
                               capsize=3, label=f"L = {b['L']}, M = {b['M']}")
            slope, a = fit_line(np.log(x), np.log(std), 2.0 * (np.array(b["seeds"]) - 1))
            grid = np.geomspace(x.min(), x.max(), 50)
            ax.loglog(grid, np.exp(a) * grid ** slope, "-", color=line[0].get_color(),
                      label=f"fit {p:.3f} [{plo:.3f}, {phi:.3f}]")
        ax.set_xlabel(key)
        ax.set_title(f"std over seeds: {LABELS[name]}", fontsize=9)
    finish(fig, path, np.atleast_1d(axes))


def main_key(args):
    """scaling.py key KEY RUNS...: see the module's docstring."""
    key, runs = args.runs[0], args.runs[1:]
    if not runs:
        raise StudyError("key needs KEY and then the runs")
    study = collect(runs, key)
    kres = key_analysis(study, args.bootstrap, args.min_particles)
    out = args.out or f"scaling-{key}"
    os.makedirs(out, exist_ok=True)
    s = key_summary(study, key, kres)
    plot_key(key, kres, os.path.join(out, f"fluctuations.{args.format}"))
    s["figures"] = [f"fluctuations.{args.format}"]
    cols = [key, "L", "M", "seeds"] + [f"{n}_{q}" for n in OBSERVABLES for q in ("mean", "std")]
    with open(os.path.join(out, "table.tsv"), "w") as f:
        f.write("\t".join(cols) + "\n")
        for b in kres["by_point"]:
            for k, v in enumerate(b["values"]):
                row = [v, b["L"], b["M"], b["seeds"][k]]
                for n in OBSERVABLES:
                    if n in b["observables"]:
                        row += [b["observables"][n]["mean"][k], b["observables"][n]["std"][k]]
                f.write("\t".join(repr(x) if isinstance(x, float) else str(x) for x in row) + "\n")
    for path in [os.path.join(out, "summary.json")] + ([args.json] if args.json else []):
        with open(path, "w") as f:
            json.dump(finite_or_null(s), f, indent=1)
    print(f"{len(study.points)} points over {len(s['values'])} values of {key}, "
          f"{int(study.n.sum())} runs ({len(study.skipped)} unfinished skipped)")
    for b in s["by_point"]:
        for name, (v, lo, hi) in b["fluctuation_exponent"].items():
            print(f"L = {b['L']}, M = {b['M']} ({b['protocol']}): fluctuation exponent in {key} "
                  f"({name}): {v:.3f} [{lo:.3f}, {hi:.3f}]")
    for e in s["per_value"]:
        for name, (v, lo, hi) in e.get("fluctuation_exponent", {}).items():
            print(f"{key} = {e['value']:g}: fluctuation exponent in L·M ({name}): "
                  f"{v:.3f} [{lo:.3f}, {hi:.3f}]")
        for name, (v, lo, hi) in e.get("limit", {}).items():
            print(f"{key} = {e['value']:g}: limit ({name}): {v:.6g} [{lo:.6g}, {hi:.6g}]")
    print(f"output: {out}")
    return 0


def finite_or_null(value):
    """value with every NaN replaced by None (null in JSON)."""
    if isinstance(value, dict):
        return {k: finite_or_null(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [finite_or_null(v) for v in value]
    if isinstance(value, float) and not np.isfinite(value):
        return None
    return value


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("kind", choices=("width", "depth", "key"))
    parser.add_argument("runs", nargs="+", help="run directories, or folders holding them "
                        "(key: KEY first, e.g. model.alpha)")
    parser.add_argument("--out", help="output folder (default ./scaling-KIND)")
    parser.add_argument("--json", help="also write the summary here")
    parser.add_argument("--format", choices=("png", "svg"), default="png")
    parser.add_argument("--bootstrap", type=int, default=1000,
                        help="bootstrap draws (coupled width and depth studies)")
    parser.add_argument("--min-particles", type=float, default=0,
                        help="fit only grid points with at least this many particles L·M")
    args = parser.parse_args(argv)
    if args.kind == "key":
        try:
            return main_key(args)
        except StudyError as e:
            print(f"scaling.py: error: {e}", file=sys.stderr)
            return 2
    try:
        study = collect(args.runs)
        if args.kind == "depth" and len(set(study.layers)) < 2:
            raise StudyError("a depth study needs runs at 2 or more depths (model.layers)")
        res = analyse(study, args.bootstrap, args.min_particles)
    except StudyError as e:
        print(f"scaling.py: error: {e}", file=sys.stderr)
        return 2
    out = args.out or f"scaling-{args.kind}"
    os.makedirs(out, exist_ok=True)
    cols, rows = write_table(study, res, os.path.join(out, "table.tsv"))
    figures = {"fluctuations": plot_fluctuations, "limit": plot_limit, "limit_t": plot_limit_t,
               "bands": lambda s, r, p: plot_bands(s, p), "exponent_t": plot_exponent_t}
    if args.kind == "depth":
        figures["depth"] = plot_depth
    for name, plot in figures.items():
        plot(study, res, os.path.join(out, f"{name}.{args.format}"))
    s = summary(study, res, args.kind)
    s["figures"] = [f"{name}.{args.format}" for name in figures]
    for path in [os.path.join(out, "summary.json")] + ([args.json] if args.json else []):
        with open(path, "w") as f:
            json.dump(finite_or_null(s), f, indent=1)
    print(f"{len(study.points)} grid points, {int(study.n.sum())} runs, protocol {study.protocol}"
          f" ({len(study.skipped)} unfinished skipped)")
    print("\t".join(cols[:4] + ["loss mean", "loss std", "output std"]))
    obs = res["observables"]
    for k, row in enumerate(rows):
        print("\t".join(map(str, row[:4])) + f"\t{obs['loss']['mean'][k]:.6g}"
              f"\t{obs['loss']['std'][k]:.3g}\t{obs['output']['std'][k]:.3g}")
    for label, key, form in (("fluctuation exponent", "fluctuation_exponent", ".3f"),
                             ("distance-to-limit exponent", "distance_exponent", ".3f"),
                             ("limit", "limit", ".6g")):
        for name, (v, lo, hi) in s[key].items():
            print(f"{label} ({name}): " + (f"{v:{form}} [{lo:{form}}, {hi:{form}}]"
                                           if np.isfinite(v) else
                                           "not defined (L·M is the same at every grid point)"))
    print(f"output: {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
