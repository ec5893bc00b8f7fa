"""The text fit against a bag-of-words ridge regression and the training
mean on new clusters of ``rfp.simulate.text_clusters`` (issue 21).

Protocol (fixed in validation/TEXT.md before the run)
------------------------------------------------------
For each seed s of ``--seeds``: train on ``text_clusters(seed=s)`` (60
clusters x 25 rows), predict 100 fresh clusters ``held_out(sim, 100, s +
50000)``, and record each method's mean squared error against the outcome y
and against the true conditional mean mu.  Methods:

    rfp      rfp.tune(data, "y", x=["x1"], text="title", cluster="cluster"),
             the defaults
    ridge    scikit-learn: word counts (CountVectorizer, the same lower-cased
             words) and x1, Ridge with alpha in 10^(-2..3) (12 values) chosen
             by GridSearchCV(GroupKFold(5)) over the training clusters
    mean     the training mean

The seeds are independent samples, so the paired difference rfp - other is
averaged over seeds with its SE across seeds (``--summary``).

Usage: python validation/text_study.py --seeds 21000-21019 --out raw.csv
       python validation/text_study.py --summary raw.csv
"""
from __future__ import annotations

import argparse
import csv
import os
import time
import warnings

import numpy as np


def ridge_fit(train, test):
    from scipy.sparse import csr_matrix, hstack
    from sklearn.feature_extraction.text import CountVectorizer
    from sklearn.linear_model import Ridge
    from sklearn.model_selection import GridSearchCV, GroupKFold
    words = CountVectorizer()
    a = hstack([words.fit_transform(train["title"]), csr_matrix(train[["x1"]].values)]).tocsr()
    b = hstack([words.transform(test["title"]), csr_matrix(test[["x1"]].values)]).tocsr()
    search = GridSearchCV(Ridge(), {"alpha": np.logspace(-2, 3, 12)}, cv=GroupKFold(5),
                          scoring="neg_mean_squared_error")
    search.fit(a, train["y"], groups=train["cluster"])
    return search.predict(b)


def one_seed(seed: int) -> list[dict]:
    import rfp
    from rfp import simulate
    sim = simulate.text_clusters(seed=seed)
    new = simulate.held_out(sim, 100, seed + 50_000)
    train, test = sim.data.to_pandas(), new.data.to_pandas()
    rows = []
    start = time.perf_counter()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        fit = rfp.tune(sim.data, "y", x=["x1"], text="title", cluster="cluster", progress=False)
    chosen = fit.cv.chosen_config
    preds = {"rfp": (fit.predict(new.data, as_numpy=True), time.perf_counter() - start)}
    start = time.perf_counter()
    preds["ridge"] = (ridge_fit(train, test), time.perf_counter() - start)
    preds["mean"] = (np.full(len(test), train["y"].mean()), 0.0)
    for name, (p, seconds) in preds.items():
        rows.append({"seed": seed, "method": name,
                     "mse_y": float(np.mean((test["y"] - p) ** 2)),
                     "mse_mu": float(np.mean((test["mu"] - p) ** 2)),
                     "seconds": round(seconds, 2),
                     "chosen": f"{chosen['model']} alpha={chosen.get('alpha')}"
                     if name == "rfp" else ""})
    return rows


def summary(path: str) -> None:
    import pandas as pd
    raw = pd.read_csv(path)
    wide = {m: raw[raw.method == m].set_index("seed") for m in raw.method.unique()}
    print(f"{raw.seed.nunique()} seeds; MSE on 100 new clusters per seed")
    for target in ("mse_y", "mse_mu"):
        print(f"\n{target}: mean per method: " + ", ".join(
            f"{m} {w[target].mean():.3f}" for m, w in wide.items()))
        for other in ("ridge", "mean"):
            d = wide["rfp"][target] - wide[other][target]
            se = d.std(ddof=1) / np.sqrt(len(d))
            verdict = "win" if d.mean() < -2 * se else "loss" if d.mean() > 2 * se else "tie"
            print(f"  rfp - {other}: {d.mean():+.3f} (SE {se:.3f}, z {d.mean() / se:+.1f}), "
                  f"rfp lower in {(d < 0).sum()}/{len(d)}: {verdict}")
    print("\nchosen:", raw[raw.method == "rfp"].chosen.value_counts().to_dict())
    print("seconds per fit: " + ", ".join(f"{m} {w.seconds.median():.1f}"
                                          for m, w in wide.items()))


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--seeds", default="21000-21019")
    ap.add_argument("--out", default="validation/text_study_raw.csv")
    ap.add_argument("--summary")
    args = ap.parse_args()
    if args.summary:
        return summary(args.summary)
    lo, hi = (int(v) for v in args.seeds.split("-"))
    new = not os.path.exists(args.out)
    with open(args.out, "a", newline="") as f:
        out = None
        for seed in range(lo, hi + 1):
            for row in one_seed(seed):
                if out is None:
                    out = csv.DictWriter(f, fieldnames=list(row))
                    if new:
                        out.writeheader()
                out.writerow(row)
            f.flush()
            print("seed", seed, "done", flush=True)


if __name__ == "__main__":
    main()
