"""Time per estimate of rfp's DML (PLR, partialling out) and AIPW (IRM, ATE)
with linear / logistic nuisances against DoubleML with scikit-learn's
LinearRegression / LogisticRegression (no penalty), on the same data and the
same cluster folds, in one process (issue 11, point 6).

rfp's nuisances are ``model="linear", alpha=1, inner_steps=0`` with
``nuisance="method"``: a plain linear model, which rfp solves directly
(``rfp.effects.nuisance.linear_fit``: least squares, Newton for the logit), as
DoubleML's learners do. The ladder (``nuisance="select"``, the default: a
constant and the linear rung, both direct here) is timed as a third column.
For scale, DML at the smallest size is also timed with the direct solution
switched off (gradient descent, default fit settings; first call compiles),
and as ``rfp.effect(..., model="linear")`` with every other setting at its
default (alpha 0.5, one inner step: the bi-level linear model inside the
ladder, 5 repeated splits; its squared-loss nuisance is solved directly,
``rfp.quadratic``, its logistic propensity by gradient descent).

Data: n rows in G clusters of equal size (so the five folds hold equal rows
and DoubleML's fold-averaged cluster estimate equals rfp's pooled one);
controls x1, x2 (per row) and z (per cluster), a binary treatment that varies
within clusters with a logistic propensity in the controls, a cluster effect
in the outcome; true effect 1. Folds: ``rfp.effects.folds.cluster_folds`` (rfp's
own, split 0 of seed 0), handed to DoubleML with ``set_sample_splitting``.

Each timed call starts from the pandas DataFrame and ends with the estimate
and its cluster-robust SE: rfp's ``rfp.effect(...)``; DoubleML's
``DoubleMLData`` + model + ``set_sample_splitting`` + ``fit()``. The calls
alternate (rfp, DoubleML, rfp, ...); the table gives the median seconds per
estimate and the ratio rfp / DoubleML of the medians. The first call of each
side (in the same process, after the imports, whose times are printed too)
is timed apart and not in the medians: it is what a user meets first. The
SE ratio is divided by sqrt(G / (G - 1)) (rfp's CR1 factor; DoubleML's
cluster variance has none), so 1 means the same SE.
The estimates of the two sides are checked to agree (max |difference|).

    .venv/bin/python bench/bench_dml.py [--sizes 1000:40,10000:200,100000:500] [--repeats 5]

About 1-2 minutes on an idle 2-core CPU with the defaults.
"""
from __future__ import annotations

import argparse
import os
import platform
import time
import warnings

T0 = time.perf_counter()
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
from scipy.special import expit  # noqa: E402

X = ["x1", "x2", "z"]
FOLDS = 5
RFP_LINEAR = dict(model="linear", alpha=1.0, inner_steps=0)


def simulate(n, g, seed=0):
    """n rows in g equal clusters; binary d with a logistic propensity in
    (x1, x2, z); y = d + x1 + 0.5 x2 - 0.5 z + u_c + e; ATE = PLM effect = 1."""
    if n % g:
        raise ValueError(f"rows ({n}) must be a multiple of clusters ({g})")
    rng = np.random.default_rng(seed)
    cluster = np.repeat(np.arange(g), n // g)
    z = rng.normal(size=g)[cluster]
    u = rng.normal(size=g)[cluster]
    x1, x2 = rng.normal(size=(2, n))
    d = (rng.random(n) < expit(0.6 * x1 - 0.4 * x2 + 0.3 * z)).astype(float)
    y = d + x1 + 0.5 * x2 - 0.5 * z + u + rng.normal(size=n)
    return pd.DataFrame({"y": y, "d": d, "x1": x1, "x2": x2, "z": z, "cluster": cluster})


def rfp_estimate(df, method, fold, nuisance="method"):
    import rfp
    if method == "dml":
        out = rfp.effect(df, "y", "d", X, "cluster", method="dml", nuisance=nuisance,
                         fold=fold, **RFP_LINEAR)
    else:
        out = rfp.effect(df, "y", "d", X, "cluster", method="aipw", estimand="ATE",
                         nuisance=nuisance, folds=FOLDS, seed=0, repeats=1,
                         propensity="individual", clip=0.01, **RFP_LINEAR)
        if not np.array_equal(out.nuisance["fold"], fold):
            raise RuntimeError("rfp's AIPW used other folds than the ones given to DoubleML")
    return out.estimate, out.std_error


def doubleml_estimate(df, method, fold):
    import doubleml as dml
    from sklearn.linear_model import LinearRegression, LogisticRegression
    data = dml.DoubleMLData(df, y_col="y", d_cols="d", x_cols=X, cluster_cols="cluster")
    logit = LogisticRegression(penalty=None, solver="newton-cholesky", tol=1e-10, max_iter=100)
    if method == "dml":
        model = dml.DoubleMLPLR(data, LinearRegression(), logit, n_folds=FOLDS,
                                draw_sample_splitting=False)
    else:
        model = dml.DoubleMLIRM(data, LinearRegression(), logit, n_folds=FOLDS, score="ATE",
                                draw_sample_splitting=False)
    idx = np.arange(len(df))
    cl = df["cluster"].to_numpy()
    model.set_sample_splitting(
        [[(idx[fold != k], idx[fold == k]) for k in range(FOLDS)]],
        [[([np.unique(cl[fold != k])], [np.unique(cl[fold == k])]) for k in range(FOLDS)]])
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        model.fit()
    return float(model.coef[0]), float(model.se[0])


def gradient_descent_estimate(df, method, fold):
    """rfp's estimate with the direct solution switched off: every linear
    nuisance fitted by gradient descent with the default fit settings (what
    ``model="linear", alpha=1`` cost before issue 11's direct solution)."""
    import rfp.core.closed_form as nz
    import rfp.core.quadratic as quadratic
    keep = nz.is_closed_form, quadratic.is_quadratic
    nz.is_closed_form = quadratic.is_quadratic = lambda settings: False
    try:
        return rfp_estimate(df, method, fold)
    finally:
        nz.is_closed_form, quadratic.is_quadratic = keep


def timed(fn, *args, **kwargs):
    t = time.perf_counter()
    out = fn(*args, **kwargs)
    return time.perf_counter() - t, out


def main(argv=None):
    p = argparse.ArgumentParser()
    p.add_argument("--sizes", default="1000:40,10000:200,100000:500",
                   help="rows:clusters, comma-separated")
    p.add_argument("--repeats", type=int, default=5)
    p.add_argument("--gd-rows", type=int, default=1000,
                   help="also time DML by gradient descent (twice) and with model=\"linear\" and "
                        "default settings at this size of --sizes; 0: no")
    a = p.parse_args(argv)
    sizes = [tuple(int(v) for v in s.split(":")) for s in a.sizes.split(",")]

    t_np = time.perf_counter() - T0
    t_rfp, _ = timed(__import__, "rfp")
    t_dml, _ = timed(__import__, "doubleml")
    import sklearn
    import doubleml
    from rfp.effects.folds import cluster_folds
    print(f"python {platform.python_version()}, numpy {np.__version__}, doubleml "
          f"{doubleml.__version__}, scikit-learn {sklearn.__version__}, cpus {os.cpu_count()}, "
          f"load average {' '.join(f'{v:.2f}' for v in os.getloadavg())}")
    print(f"import: numpy+pandas+scipy {t_np:.2f} s, rfp {t_rfp:.2f} s, "
          f"doubleml (+sklearn) {t_dml:.2f} s")

    rows = []
    first = {}
    for n, g in sizes:
        df = simulate(n, g)
        fold = cluster_folds(df["cluster"].to_numpy(), FOLDS, 0, df["d"].to_numpy())
        assert len(set(np.bincount(fold))) == 1, "folds of unequal rows"
        for method in ("dml", "aipw"):
            sides = {"rfp": lambda: rfp_estimate(df, method, fold),
                     "doubleml": lambda: doubleml_estimate(df, method, fold),
                     "rfp ladder": lambda: rfp_estimate(df, method, fold, "select")}
            times = {k: [] for k in sides}
            est = {k: [] for k in sides}
            for side, fn in sides.items():
                if (side, method) not in first:      # the process's first call of this side
                    with warnings.catch_warnings():
                        warnings.simplefilter("ignore")
                        first[side, method] = (timed(fn)[0], n)
            for r in range(a.repeats):
                for side, fn in sides.items():
                    with warnings.catch_warnings():
                        warnings.simplefilter("ignore")
                        t, (e, se) = timed(fn)
                    times[side].append(t)
                    est[side].append((e, se))
            med = {k: float(np.median(v)) for k, v in times.items()}
            diff = max(abs(e[0] - f[0]) for e, f in zip(est["rfp"], est["doubleml"]))
            # rfp's CR1 has the factor sqrt(G / (G - 1)), DoubleML's cluster variance none
            se_ratio = est["rfp"][0][1] / est["doubleml"][0][1] / np.sqrt(g / (g - 1))
            ladder_diff = max(abs(e[0] - f[0]) for e, f in zip(est["rfp"], est["rfp ladder"]))
            rows.append((method, n, g, len(times["rfp"]), med["rfp"], med["doubleml"],
                         med["rfp"] / med["doubleml"], med["rfp ladder"],
                         med["rfp ladder"] / med["doubleml"], est["rfp"][0][0], diff,
                         se_ratio, ladder_diff))
            print(f"{method} n={n} G={g}: rfp {med['rfp']:.4f} s, DoubleML {med['doubleml']:.4f} s,"
                  f" ratio {med['rfp'] / med['doubleml']:.2f}; ladder {med['rfp ladder']:.4f} s;"
                  f" |rfp - DoubleML| {diff:.1e}", flush=True)

    gd = []
    for n, g in sizes:
        if n != a.gd_rows:
            continue
        df = simulate(n, g)
        fold = cluster_folds(df["cluster"].to_numpy(), FOLDS, 0, df["d"].to_numpy())
        direct = rfp_estimate(df, "dml", fold)[0]
        for call in ("first (compiles)", "second"):
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                t, (e, _) = timed(gradient_descent_estimate, df, "dml", fold)
            gd.append((n, g, f"by gradient descent (direct solution off), {call} call", t,
                       f"|estimate - direct| {abs(e - direct):.1e}"))
            print(f"dml by gradient descent n={n} G={g}, {call} call: {t:.2f} s, "
                  f"|estimate - direct| {abs(e - direct):.1e}", flush=True)
        import rfp
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            t, out = timed(rfp.effect, df, "y", "d", X, "cluster", method="dml", model="linear")
        gd.append((n, g, 'rfp.effect(..., model="linear"), every other setting default '
                   '(alpha 0.5, 1 inner step: the bi-level linear model, E[Y|X] solved directly, '
                   'E[D|X] by gradient descent; the ladder; 5 repeated splits)', t,
                   f"rungs chosen {out.diagnostics['nuisance_models']}"))
        print(f"dml model='linear' defaults n={n} G={g}: {t:.2f} s", flush=True)

    print(f"\nload average after: {' '.join(f'{v:.2f}' for v in os.getloadavg())}")
    print("\nfirst call in the process (not in the medians):")
    for (side, method), (t, n) in first.items():
        print(f"  {side:10s} {method:4s} (n = {n:,}): {t:.3f} s")
    print("\n| estimator | rows / clusters | calls | rfp s | DoubleML s | rfp / DoubleML | "
          "rfp ladder s | ladder / DoubleML | estimate | max abs diff rfp - DoubleML | "
          "SE ratio rfp / DoubleML / sqrt(G/(G-1)) |")
    print("|---|---|---|---|---|---|---|---|---|---|---|")
    for (method, n, g, k, tr, td, ratio, tl, lratio, e, diff, ser, ldiff) in rows:
        name = "DML (PLR)" if method == "dml" else "AIPW (IRM, ATE)"
        print(f"| {name} | {n:,} / {g} | {k} | {tr:.4f} | {td:.4f} | {ratio:.2f}x | {tl:.4f} | "
              f"{lratio:.2f}x | {e:.4f} | {diff:.1e} | {ser:.4f} |")
    for n, g, what, t, note in gd:
        print(f"DML (PLR), {n:,} / {g}, {what}: {t:.2f} s; {note}")
    print(f"\nladder estimate = rfp's in every row: "
          f"{all(r[-1] < 1e-12 for r in rows)} (max diff {max(r[-1] for r in rows):.1e})")
    print(f"total {time.perf_counter() - T0:.1f} s")


if __name__ == "__main__":
    main()
