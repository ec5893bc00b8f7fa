"""Tuned method against tuned ERM, MAML, the kernel with leave-cluster-out
bandwidth, a tree ensemble tuned by grouped CV, and the training mean: mean
squared error against the true conditional mean on 50 clusters never seen.

For each seed s of the list: a training sample from the design (seed s) and a
test sample of 50 fresh clusters (seed 10_000 + s).  Methods:

- method: ``rfp.tune`` with every default (grid: alpha from 1 to 0 x two
  inner step sizes; 5 folds; max_steps 500, patience 100): the call a user makes;
- erm: ``rfp.tune`` at alpha = 1 over learning rate x width, the same number of
  configurations as the method's grid (the same budget);
- maml: the method's cross-validation, best alpha = 0 row, refitted;
- kernel_lco: Nadaraya-Watson, bandwidth by leave-cluster-out CV;
- hgb: scikit-learn's HistGradientBoostingRegressor (learning rate 0.1), depth
  {2, 3} x iterations {50, 200} chosen by GridSearchCV with GroupKFold(5);
- mean: the training mean outcome.

Writes one CSV row per (seed, method); ``--summary`` prints paired differences.

    .venv/bin/python validation/tuning_study.py --design tt-low,tt-high --seeds 7000-7039 \
        --out validation/tuning_raw.csv      # resumes: pairs already in the file are skipped
    .venv/bin/python validation/tuning_study.py --summary validation/tuning_raw.csv
"""
from __future__ import annotations

import argparse
import csv
import os
import sys
import time
import warnings

import numpy as np

import rfp
from rfp.baselines import kernel
from rfp.tuning.grid import DEFAULT_GRID, candidate_name
from rfp.simulate import clustered_means, held_out, tragic_triad

sys.path.insert(0, os.path.dirname(__file__))
import resume  # noqa: E402
from resume import seeds_arg  # noqa: E402,F401  (the runners' seed lists)

BUDGET = {}   # the defaults of rfp.tune: 5 folds, max_steps 500, patience 100
ERM_GRID = {"alpha": [1.0], "learning_rate": [3e-2, 1e-2, 3e-3],
            "hidden": [(16,), (32, 32), (64, 64)]}
METHODS = ("method", "method_m1", "method_m2", "linear", "erm", "maml", "kernel_lco", "hgb",
           "mean")
# the method's own table re-chosen with another margin (paired SEs, selection.py)
MARGINS = {"method_m1": 1.0, "method_m2": 2.0}


def design(name: str, seed: int):
    if name.startswith("tt-"):
        return tragic_triad(n_clusters=40, overlap=name[3:], seed=seed)
    if name.startswith("means-d"):
        return clustered_means(dim=int(name[7:]), seed=seed)
    raise ValueError(f"unknown design {name!r}: tt-low, tt-high, means-d2, means-d5, ...")


def maml_refit(model, sim, seed):
    """The method's best alpha = 0 network row, refitted on all clusters."""
    cv = model.cv
    rows = [g for g, c in enumerate(cv.configs) if float(c["alpha"]) == 0.0
            and c["model"] != "linear"]
    g = min(rows, key=lambda r: cv.loss[r])
    return refit_row(cv, g, sim)


def refit_row(cv, g, sim):
    """Row g of a tune table refitted on all clusters: a predictor of x."""
    x = np.column_stack([sim.data[n].to_numpy() for n in sim.x_names])
    y, cl = sim.data["y"].to_numpy(), sim.data["cluster"].to_numpy()
    if g == len(cv.configs):   # the mean
        return lambda data: np.full(data.num_rows, np.mean(y))
    c = {k: v for k, v in cv.configs[g].items() if k not in ("max_steps", "patience", "model")}
    if cv.configs[g]["model"] == "linear":
        m = rfp.training.fit.solve_arrays(x, y, cl, **{k: c[k] for k in ("alpha", "inner_steps",
                                                                 "inner_lr")})
    else:
        c.update(max_steps=int(cv.best_step[g]), patience=None, progress=False)
        m = rfp.fit_arrays(x, y, cl, model=cv.configs[g]["model"], **c)
    return lambda data: m.predict_arrays(np.column_stack([data[n].to_numpy()
                                                          for n in sim.x_names]))


def hgb_predict(sim, test):
    from sklearn.ensemble import HistGradientBoostingRegressor
    from sklearn.model_selection import GridSearchCV, GroupKFold
    x = np.column_stack([sim.data[n].to_numpy() for n in sim.x_names])
    xt = np.column_stack([test.data[n].to_numpy() for n in sim.x_names])
    search = GridSearchCV(HistGradientBoostingRegressor(random_state=0),
                          {"max_depth": [2, 3], "max_iter": [50, 200]},
                          cv=GroupKFold(5), scoring="neg_mean_squared_error")
    search.fit(x, sim.data["y"].to_numpy(), groups=sim.data["cluster"].to_numpy())
    return search.predict(xt)


def one_sample(name: str, seed: int, methods=METHODS) -> list[dict]:
    sim = design(name, seed)
    test = held_out(sim, 50, seed=10_000 + seed)
    mu = test.data["mu"].to_numpy()
    xs = sim.x_names
    cols = dict(y="y", x=xs, cluster="cluster", progress=False, seed=seed, **BUDGET)
    preds, info = {}, {}
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        t = time.time()
        m = rfp.tune(sim.data, **cols)
        info["method"] = (time.time() - t, m.cv.chosen_config, m.cv.chosen_step)
        preds["method"] = m.predict(test.data, as_numpy=True)
        preds["maml"] = maml_refit(m, sim, seed)(test.data)
        preds["linear"] = refit_row(m.cv, [g for g, c in enumerate(m.cv.configs) if
                                           c["model"] == "linear" and c["alpha"] == 1.0][0],
                                    sim)(test.data)
        for rule, margin in MARGINS.items():
            g = m.cv.choice(margin)
            info[rule] = (np.nan, m.cv.configs[g] if g < len(m.cv.configs) else
                          {"model": "constant"}, np.nan)
            preds[rule] = (preds["method"] if g == m.cv.chosen else
                           refit_row(m.cv, g, sim)(test.data))
        t = time.time()
        # tuned ERM network, chosen by the lowest CV loss as before (no linear rows)
        e = rfp.tune(sim.data, grid=ERM_GRID, simple=False, margin=0.0, **cols)
        info["erm"] = (time.time() - t, e.cv.configs[e.cv.chosen], e.cv.chosen_step)
        preds["erm"] = e.predict(test.data, as_numpy=True)
    warned = sorted({w.category.__name__ for w in caught
                     if issubclass(w.category, rfp.alerts.RFPWarning)})
    x = np.column_stack([sim.data[n].to_numpy() for n in xs])
    xt = np.column_stack([test.data[n].to_numpy() for n in xs])
    k = kernel.fit(x, sim.data["y"].to_numpy(), sim.data["cluster"].to_numpy(), leave_out="cluster")
    preds["kernel_lco"] = kernel.predict(k, xt)
    if "hgb" in methods:
        preds["hgb"] = hgb_predict(sim, test)
    preds["mean"] = np.full(len(mu), np.mean(sim.data["y"].to_numpy()))
    rows = []
    for meth in (m for m in METHODS if m in methods):
        t, cfg, step = info.get(meth, (np.nan, {}, np.nan))
        rows.append(dict(design=name, seed=seed, method=meth,
                         mse=float(np.mean((preds[meth] - mu) ** 2)), seconds=round(t, 1),
                         chosen=candidate_name(cfg) if cfg else "",
                         alpha=cfg.get("alpha", ""), inner_lr=cfg.get("inner_lr", ""),
                         learning_rate=cfg.get("learning_rate", ""),
                         hidden=str(cfg.get("hidden", "")).replace(",", ";"), step=step,
                         warnings=";".join(warned) if meth == "method" else ""))
    return rows


def summary(path: str) -> None:
    import pandas as pd
    df = pd.read_csv(path)
    for name, d in df.groupby("design", sort=False):
        wide = d.pivot_table(index="seed", columns="method", values="mse")
        n = len(wide)
        print(f"\n## {name} ({n} samples)\n")
        print("| method | mean MSE | method − it | SE | z | method lower in |")
        print("|---|---|---|---|---|---|")
        verdict = {"wins": [], "ties": [], "loses": []}
        for other in METHODS:
            if other not in wide:
                continue
            diff = wide["method"] - wide[other]
            se = diff.std(ddof=1) / np.sqrt(n) if other != "method" else np.nan
            z = diff.mean() / se if other != "method" and se > 0 else np.nan
            lower = f"{int((diff < 0).sum())}/{n}" if other != "method" else ""
            if other != "method":
                verdict["wins" if z < -2 else "loses" if z > 2 else "ties"].append(other)
            print(f"| {other} | {wide[other].mean():.4f} | "
                  f"{'' if other == 'method' else f'{diff.mean():+.4f}'} | "
                  f"{'' if other == 'method' else f'{se:.4f}'} | "
                  f"{'' if other == 'method' else f'{z:+.2f}'} | {lower} |")
        if "chosen" in d:
            chosen = d[d.method == "method"].chosen.value_counts().sort_index()
            print(f"\nchosen by the method: { {k: int(v) for k, v in chosen.items()} }")
        else:
            chosen = d[d.method == "method"].alpha.value_counts().sort_index()
            print(f"\nalpha chosen by the method: "
                  f"{ {float(k): int(v) for k, v in chosen.items()} }")
        print("At 2 SE the tuned method " + "; ".join(
            f"{k} against {', '.join(v)}" for k, v in verdict.items() if v) + ".")


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--design", help="comma-separated, run seed by seed across designs: tt-low, "
                   "tt-high, means-d2, means-d5, means-d10, means-d25")
    p.add_argument("--seeds", help="e.g. 7000-7039 or 1,2,5-9")
    p.add_argument("--out", default="validation/tuning_raw.csv")
    p.add_argument("--summary", metavar="CSV")
    p.add_argument("--methods", default=",".join(METHODS),
                   help="comma-separated subset of " + ",".join(METHODS))
    a = p.parse_args(argv)
    if a.summary:
        return summary(a.summary)
    methods = a.methods.split(",")
    started = [time.time()]

    def report(name, seed, rows):
        print(f"{name} seed {seed}: " + "  ".join(f"{r['method']}={r['mse']:.4f}" for r in rows)
              + f"  ({time.time() - started[0]:.0f}s)", file=sys.stderr)
        started[0] = time.time()
    resume.run(a.out, seeds_arg(a.seeds), a.design.split(","),
               lambda name, seed: one_sample(name, seed, methods), report)

if __name__ == "__main__":
    main()
