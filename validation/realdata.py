"""Held-out-cluster prediction on three real clustered datasets: the default
``rfp.tune`` against linear rfp, OLS, a random-intercept model (lme4::lmer),
tuned gradient boosting and the training mean.

What
----
Each dataset comes from the Debian package r-cran-mlmrev (R package mlmRev)
and is exported from R once per run (one ``Rscript`` call writing CSV files to
a temporary folder).  Factors become 0/1 dummy columns (first level left
out); rfp standardises the controls itself, the other methods use them as they
are.

    Hsb82     mAch ~ minrty + sx + ses + meanses + sector | school
              (High School and Beyond: 7,185 students in 160 schools)
    Exam      normexam ~ standLRT + sex + schgend + schavg + vr + intake | school
              (inner London exams: 4,059 students in 65 schools; ``type`` is
              left out because it is a function of ``schgend``)
    ScotsSec  attain ~ verbal + sex + social | primary
              (Scottish secondary schools: 3,435 students from 148 primary
              schools)

Protocol
--------
For each fold seed s in {0, 1, 2} (fixed before any run), the clusters are put
in a random order (``numpy.random.default_rng(s).permutation`` of the sorted
cluster labels) and dealt into 5 folds of whole clusters (the i-th cluster in
that order goes to fold i mod 5).  For each fold, every method is fitted on
the other four folds and predicts the held-out rows.  Every cluster is thus
held out once per seed.

Methods (``--methods``, comma-separated; default all):

    default  rfp.tune(train, y=, x=, cluster=, seed=0, progress=False), every
             other argument at its default; .predict(test, as_numpy=True)
    linear   the same with model="linear"
    ols      least squares on the same controls, with an intercept
    lmer     lme4::lmer(y ~ controls + (1 | cluster)) in R (one Rscript per
             dataset x seed x fold), population prediction
             predict(fit, newdata, re.form = NA)
    hgb      scikit-learn HistGradientBoostingRegressor(random_state=0), tuned
             by GridSearchCV over max_depth in {2, 3} x max_iter in {50, 200}
             with GroupKFold(5) on the training clusters, negative MSE
    mean     the training mean of y

Recorded per fit: the held-out sum of squared errors and row count of every
held-out cluster, and the wall time of fit + predict (time.perf_counter; for
lmer it is measured inside R, so R's start-up and the CSV transfer are
excluded).  Warnings raised by rfp (e.g. NoBetterThanMeanWarning) are kept in
the ``warnings`` column.  One row per (dataset, seed, fold, method, cluster)
is appended to ``--out`` after each fit; a rerun skips every (dataset, seed,
fold, method) already in the file, so an interrupted run can be resumed.

Summary
-------
``--summary FILE`` prints, per dataset, a markdown table: mean held-out MSE
(all rows, all seeds), the paired difference default - method with its SE and
z, and the median seconds per fit.  The paired SE treats clusters as the unit:
D_c = the sum over cluster c's rows of the squared-error difference, averaged
over the fold seeds; N = sum_c n_c; Dbar = sum_c D_c / N (the difference in
MSE); SE = sqrt(G / (G - 1) * sum_c (D_c - n_c Dbar)^2) / N over the G
clusters.  Also printed: linear - ols, default - best of (ols, lmer, linear)
(the best being the one with the lowest MSE), and two verdicts:
"default below the mean" (its MSE is lower than the training mean's) and
"default <= best of OLS/lmer/linear + 2 SE".  A comparison uses only the
(seed, cluster) pairs both methods have, so a partial run still summarises.

How to run
----------
From the repository root (R with lme4 and mlmRev is needed for the data and
for lmer; rfp's Python backend for default and linear):

    .venv/bin/python validation/realdata.py --out validation/realdata_raw.csv
    .venv/bin/python validation/realdata.py --summary validation/realdata_raw.csv

    # smaller runs
    .venv/bin/python validation/realdata.py --datasets Exam --seeds 0 \\
        --methods ols,lmer,hgb,mean,linear --out /tmp/realdata_raw.csv
    .venv/bin/python validation/realdata.py --datasets Exam --seeds 0 --folds-only 0 \\
        --methods default --out /tmp/realdata_raw.csv

Set RSCRIPT to use another Rscript; R_LIBS is passed through to R.  The
seconds per fit are only comparable on a quiet machine: on a busy one,
scikit-learn's OpenMP threads can make hgb ten times slower than with
OMP_NUM_THREADS=1 (as seen on a shared 2-core machine).
"""
from __future__ import annotations

import argparse
import csv
import os
import statistics
import subprocess
import sys
import tempfile
import time
import warnings
from pathlib import Path

import numpy as np
import pandas as pd

FOLD_SEEDS = [0, 1, 2]
N_FOLDS = 5
RSCRIPT = os.environ.get("RSCRIPT", "Rscript")

# name -> (R data set, outcome, cluster, numeric controls, factor controls)
DATASETS = {
    "Hsb82": ("Hsb82", "mAch", "school", ["ses", "meanses"], ["minrty", "sx", "sector"]),
    "Exam": ("Exam", "normexam", "school", ["standLRT", "schavg"],
             ["sex", "schgend", "vr", "intake"]),
    "ScotsSec": ("ScotsSec", "attain", "primary", ["verbal", "social"], ["sex"]),
}

RAW_COLUMNS = ["dataset", "seed", "fold", "method", "cluster", "n", "sse", "seconds",
               "warnings"]


# ----------------------------------------------------------------------------
# data

def export_from_r(folder):
    """Write every data set of DATASETS to folder/<name>.csv, from R."""
    lines = ["suppressMessages(library(mlmRev))"]
    for name, (rname, *_rest) in DATASETS.items():
        path = str(Path(folder) / f"{name}.csv")
        lines.append(f'write.csv({rname}, "{path}", row.names = FALSE)')
    subprocess.run([RSCRIPT, "-e", "; ".join(lines)], check=True)


def load_dataset(name, folder):
    """The data set as (table, y, x names, cluster): factors as 0/1 dummies."""
    _rname, y, cluster, numeric, factors = DATASETS[name]
    raw = pd.read_csv(Path(folder) / f"{name}.csv")
    table = pd.DataFrame({y: raw[y].astype(float), "cluster": raw[cluster].astype(str)})
    x = []
    for col in numeric:
        table[col] = raw[col].astype(float)
        x.append(col)
    for col in factors:
        levels = sorted(raw[col].astype(str).unique())
        for level in levels[1:]:
            dummy = f"{col}_{level}".replace(" ", "_").replace("%", "pct")
            table[dummy] = (raw[col].astype(str) == level).astype(float)
            x.append(dummy)
    return table, y, x, "cluster"


def cluster_folds(clusters, seed):
    """Fold (0..4) of each distinct cluster label: a seeded permutation dealt in turn."""
    labels = np.array(sorted(set(clusters)))
    order = np.random.default_rng(seed).permutation(len(labels))
    return {labels[j]: i % N_FOLDS for i, j in enumerate(order)}


# ----------------------------------------------------------------------------
# methods: each takes (train, test, y, x, cluster) and returns predictions for test

def fit_default(train, test, y, x, cluster):
    import rfp
    model = rfp.tune(train, y=y, x=x, cluster=cluster, seed=0, progress=False)
    return model.predict(test, as_numpy=True)


def fit_linear(train, test, y, x, cluster):
    import rfp
    model = rfp.tune(train, y=y, x=x, cluster=cluster, model="linear", seed=0,
                     progress=False)
    return model.predict(test, as_numpy=True)


def fit_ols(train, test, y, x, cluster):
    design = np.column_stack([np.ones(len(train)), train[x].to_numpy()])
    coef, *_ = np.linalg.lstsq(design, train[y].to_numpy(), rcond=None)
    return np.column_stack([np.ones(len(test)), test[x].to_numpy()]) @ coef


def fit_mean(train, test, y, x, cluster):
    return np.full(len(test), train[y].mean())


def fit_hgb(train, test, y, x, cluster):
    from sklearn.ensemble import HistGradientBoostingRegressor
    from sklearn.model_selection import GridSearchCV, GroupKFold
    search = GridSearchCV(HistGradientBoostingRegressor(random_state=0),
                          {"max_depth": [2, 3], "max_iter": [50, 200]},
                          cv=GroupKFold(5), scoring="neg_mean_squared_error")
    search.fit(train[x].to_numpy(), train[y].to_numpy(), groups=train[cluster].to_numpy())
    return search.predict(test[x].to_numpy())


LMER_R = r"""
args <- commandArgs(trailingOnly = TRUE)
suppressMessages(library(lme4))
train <- read.csv(args[1]); test <- read.csv(args[2])
train$cluster <- factor(train$cluster)
x <- strsplit(args[4], ",")[[1]]
f <- reformulate(c(x, "(1 | cluster)"), response = "y")
seconds <- system.time({
  fit <- lmer(f, data = train, REML = TRUE)
  pred <- predict(fit, newdata = test, re.form = NA)
})[["elapsed"]]
write.csv(data.frame(pred = pred), args[3], row.names = FALSE)
cat(seconds, "\n")
"""


def fit_lmer(train, test, y, x, cluster):
    """lmer in an Rscript; returns (predictions, seconds measured inside R)."""
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        cols = {y: "y", cluster: "cluster"}
        train[[y, cluster] + x].rename(columns=cols).to_csv(tmp / "train.csv", index=False)
        test[x].to_csv(tmp / "test.csv", index=False)
        (tmp / "lmer.R").write_text(LMER_R)
        out = subprocess.run([RSCRIPT, str(tmp / "lmer.R"), str(tmp / "train.csv"),
                              str(tmp / "test.csv"), str(tmp / "pred.csv"), ",".join(x)],
                             capture_output=True, text=True)
        if out.returncode != 0:
            raise RuntimeError(f"lmer failed:\n{out.stderr}")
        seconds = float(out.stdout.split()[-1])
        return pd.read_csv(tmp / "pred.csv")["pred"].to_numpy(), seconds


METHODS = {"default": fit_default, "linear": fit_linear, "ols": fit_ols, "lmer": fit_lmer,
           "hgb": fit_hgb, "mean": fit_mean}


# ----------------------------------------------------------------------------
# running

def done_fits(path):
    """(dataset, seed, fold, method) already in the raw file."""
    if not Path(path).exists():
        return set()
    raw = pd.read_csv(path, dtype={"cluster": str})
    return set(zip(raw["dataset"], raw["seed"], raw["fold"], raw["method"]))


def run(datasets, seeds, folds, methods, out):
    done = done_fits(out)
    new_file = not Path(out).exists()
    with tempfile.TemporaryDirectory() as tmp, open(out, "a", newline="") as fh:
        writer = csv.writer(fh)
        if new_file:
            writer.writerow(RAW_COLUMNS)
        export_from_r(tmp)
        for name in datasets:
            table, y, x, cluster = load_dataset(name, tmp)
            print(f"{name}: {len(table)} rows, {table[cluster].nunique()} clusters, "
                  f"y = {y}, x = {x}", flush=True)
            for seed in seeds:
                fold_of = cluster_folds(table[cluster], seed)
                row_fold = table[cluster].map(fold_of).to_numpy()
                for fold in folds:
                    train = table[row_fold != fold].reset_index(drop=True)
                    test = table[row_fold == fold].reset_index(drop=True)
                    for method in methods:
                        if (name, seed, fold, method) in done:
                            continue
                        with warnings.catch_warnings(record=True) as caught:
                            warnings.simplefilter("always")
                            t0 = time.perf_counter()
                            pred = METHODS[method](train, test, y, x, cluster)
                            seconds = time.perf_counter() - t0
                        if isinstance(pred, tuple):          # lmer: time from inside R
                            pred, seconds = pred
                        rfp_warnings = sorted({w.category.__name__ for w in caught
                                               if w.category.__module__.startswith("rfp")})
                        sq = (test[y].to_numpy() - np.asarray(pred, dtype=float)) ** 2
                        per_cluster = pd.DataFrame({"c": test[cluster], "sq": sq}) \
                            .groupby("c")["sq"].agg(["size", "sum"])
                        for c, (n, sse) in per_cluster.iterrows():
                            writer.writerow([name, seed, fold, method, c, int(n),
                                             repr(float(sse)), f"{seconds:.4f}",
                                             ";".join(rfp_warnings)])
                        fh.flush()
                        print(f"  seed {seed} fold {fold} {method:8s} "
                              f"MSE {sq.mean():.4f}  {seconds:7.2f} s"
                              + (f"  [{', '.join(rfp_warnings)}]" if rfp_warnings else ""),
                              flush=True)


# ----------------------------------------------------------------------------
# summary

def paired(raw, a, b):
    """MSE(a) - MSE(b) and its cluster-level SE, over the (seed, cluster) pairs
    both methods have: returns (difference, SE, number of clusters)."""
    sa = raw[raw.method == a].set_index(["seed", "cluster"])
    sb = raw[raw.method == b].set_index(["seed", "cluster"])
    common = sa.index.intersection(sb.index)
    if len(common) == 0:
        return np.nan, np.nan, 0
    both = pd.DataFrame({"n": sa.loc[common, "n"],
                         "d": sa.loc[common, "sse"] - sb.loc[common, "sse"]})
    per_cluster = both.groupby(level="cluster").mean()    # averaged over the seeds
    n_c, d_c = per_cluster["n"].to_numpy(), per_cluster["d"].to_numpy()
    g, total = len(d_c), n_c.sum()
    dbar = d_c.sum() / total
    se = np.sqrt(g / (g - 1) * np.sum((d_c - n_c * dbar) ** 2)) / total if g > 1 else np.nan
    return dbar, se, g


def fmt(v, digits=4):
    return "" if v is None or not np.isfinite(v) else f"{v:+.{digits}f}"


def summarise(path):
    raw = pd.read_csv(path, dtype={"cluster": str})
    for name, data in raw.groupby("dataset", sort=False):
        methods = [m for m in METHODS if m in set(data.method)]
        mse = {m: data[data.method == m].sse.sum() / data[data.method == m].n.sum()
               for m in methods}
        print(f"\n### {name}\n")
        print("| method | MSE | rows | seeds | default - method | SE | z | s per fit (median) "
              "| fits |")
        print("|---|---|---|---|---|---|---|---|---|")
        for m in methods:
            d = data[data.method == m]
            fits = d.drop_duplicates(["seed", "fold"])
            diff, se, _g = paired(data, "default", m) if m != "default" and "default" in mse \
                else (np.nan, np.nan, 0)
            seeds = ",".join(str(s) for s in sorted(d.seed.unique()))
            print(f"| {m} | {mse[m]:.4f} | {d.n.sum():,} | {seeds} | {fmt(diff)} | "
                  f"{'' if not np.isfinite(se) else f'{se:.4f}'} | "
                  f"{fmt(diff / se, 2) if np.isfinite(se) and se > 0 else ''} | "
                  f"{statistics.median(fits.seconds):.2f} | {len(fits)} |")
        print()
        if len({data[data.method == m].n.sum() for m in methods}) > 1:
            print("note: the methods cover different rows (a partial run); each paired "
                  "difference uses the rows both methods have")
        if {"linear", "ols"} <= set(methods):
            diff, se, g = paired(data, "linear", "ols")
            print(f"linear - ols: {fmt(diff)} (SE {se:.4f}, z {diff / se:+.2f}, {g} clusters)")
        baselines = [m for m in ("ols", "lmer", "linear") if m in methods]
        if "default" in methods and baselines:
            best = min(baselines, key=lambda m: mse[m])
            diff, se, g = paired(data, "default", best)
            print(f"default - best of ({', '.join(baselines)}) = {best}: {fmt(diff)} "
                  f"(SE {se:.4f}, z {diff / se if se > 0 else float('nan'):+.2f}, {g} clusters)")
            print(f"default <= best of OLS/lmer/linear + 2 SE: "
                  f"{'yes' if diff <= 2 * se else 'no'}")
        if "default" in methods and "mean" in methods:
            diff, se, g = paired(data, "default", "mean")
            print(f"default below the mean: {'yes' if diff < 0 else 'no'} "
                  f"(difference {fmt(diff)}, SE {se:.4f})")
        warned = data[data.warnings.notna()].drop_duplicates(["seed", "fold", "method"])
        for (m, w), k in warned.groupby(["method", "warnings"]).size().items():
            print(f"warnings: {m} raised {w} in {k} fit(s)")


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--datasets", default=",".join(DATASETS),
                   help=f"comma-separated, from {', '.join(DATASETS)}")
    p.add_argument("--methods", default=",".join(METHODS),
                   help=f"comma-separated, from {', '.join(METHODS)}")
    p.add_argument("--seeds", default=",".join(map(str, FOLD_SEEDS)),
                   help="fold seeds (the protocol fixes 0,1,2; fewer for a quick check)")
    p.add_argument("--folds-only", default=None,
                   help="run only these folds (comma-separated, 0-4), for a quick check")
    p.add_argument("--out", default="validation/realdata_raw.csv", help="raw results (appended)")
    p.add_argument("--summary", metavar="FILE", help="summarise FILE instead of running")
    args = p.parse_args(argv)
    if args.summary:
        summarise(args.summary)
        return
    datasets = args.datasets.split(",")
    methods = args.methods.split(",")
    for what, given, known in (("dataset", datasets, DATASETS), ("method", methods, METHODS)):
        unknown = [v for v in given if v not in known]
        if unknown:
            p.error(f"unknown {what}(s): {', '.join(unknown)}")
    seeds = [int(s) for s in args.seeds.split(",")]
    folds = [int(f) for f in args.folds_only.split(",")] if args.folds_only \
        else list(range(N_FOLDS))
    run(datasets, seeds, folds, methods, args.out)


if __name__ == "__main__":
    sys.exit(main())
