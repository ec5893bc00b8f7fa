"""Randomized trials: does AIPW with the default (data-chosen) nuisances
behave like the fixed-effects regression when treatment is randomized?

Two designs from ``rfp.simulate.cluster_trial(overlap="randomized")`` (e = 1/2,
40 clusters of 15; outcome nonlinear in (x, z) plus a cluster effect; τ = 1):

cluster      whole clusters randomized (the simulator's assignment); AIPW's
             propensity is the cluster-level ridge logit (``propensity="auto"``).
individual   the same outcomes with treatment redrawn per unit, Bernoulli(1/2),
             within clusters (y = Y(0) + d τ recomputed); AIPW's propensity is
             E[D | X] chosen by the ladder constant → logistic → MLP
             (``nuisance="select"``), the case of the issue's real experiment.

Per sample: the fixed-effects row of ``rfp.compare`` (OLS with linear controls
and strata FE, CR1) and ``rfp.effects.estimators.aipw`` (ATE) with rfp's defaults (repeats
None = 5 splits, nuisance "select") and the study's small MLP settings; the
range of ê (max − min over rows), the chosen propensity model, the overlap
warnings. Summary: share of samples with range < 0.1, median SE ratio
AIPW / FE and the share with ratio ≤ 1.5, bias and coverage of both.

    python validation/randomized_study.py --reps 50 --workers 2
"""
from __future__ import annotations

import argparse
import csv
import os
import tempfile
import time
from concurrent.futures import ProcessPoolExecutor, as_completed
from multiprocessing import get_context

import numpy as np

FIELDS = ["design", "rep", "fe_estimate", "fe_se", "aipw_estimate", "aipw_se", "aipw_low",
          "aipw_high", "fe_low", "fe_high", "e_range", "e_model", "warnings", "largest_share",
          "seconds"]


def _init_worker():
    os.environ.setdefault("JAX_PLATFORMS", "cpu")
    import jax
    jax.config.update("jax_compilation_cache_dir",
                      os.path.join(tempfile.gettempdir(), "rfp-study-jax-cache"))
    jax.config.update("jax_persistent_cache_min_compile_time_secs", 0)


def sample(design: str, seed: int):
    import pyarrow as pa
    from rfp.simulate import cluster_trial
    sim = cluster_trial(4, 10, 15, overlap="randomized", seed=seed)
    if design == "individual":
        t = sim.data
        rng = np.random.default_rng(seed + 10_000)
        d = (rng.random(t.num_rows) < 0.5).astype(float)
        tau = t["tau_i"].to_numpy()
        y = t["y"].to_numpy() - t["d"].to_numpy() * tau + d * tau
        t = t.set_column(t.column_names.index("d"), "d", pa.array(d))
        t = t.set_column(t.column_names.index("y"), "y", pa.array(y))
        sim.data = t
    return sim


def one(design: str, rep: int, a: dict) -> dict:
    import warnings
    import rfp
    from rfp.effects.estimators import aipw
    sim = sample(design, a["seed"] + rep)
    settings = dict(model="mlp", hidden=(8,), alpha=0.5, inner_steps=1, inner_lr=0.1,
                    learning_rate=0.02, max_steps=a["max_steps"], patience=50, eval_every=10,
                    validation_share=0.2)
    start = time.time()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        fe = rfp.compare(sim, methods=["fixed_effects"]).to_pylist()[0]
        e = aipw(sim.data, "y", "d", ["x1", "x2", "z"], "cluster", folds=2, seed=rep,
                    **settings)
    ehat = e.nuisance["e"]
    dg = e.diagnostics
    model = dg.get("nuisance_models", {})
    return {"design": design, "rep": rep, "fe_estimate": fe["estimate"], "fe_se": fe["std_error"],
            "fe_low": fe["ci_low"], "fe_high": fe["ci_high"],
            "aipw_estimate": e.estimate, "aipw_se": e.std_error, "aipw_low": e.ci_low,
            "aipw_high": e.ci_high, "e_range": float(np.ptp(ehat)),
            "e_model": model.get("e", model.get("m", "")),
            "warnings": len(dg.get("overlap_warnings", [])),
            "largest_share": dg.get("largest_cluster_share", np.nan),
            "seconds": time.time() - start}


def summarize(rows):
    lines = ["| design | samples | ê range < 0.1 | median ê range | propensity model chosen | "
             "median SE ratio AIPW/FE | ratio ≤ 1.5 | AIPW bias ± MC se | AIPW coverage | "
             "FE bias ± MC se | FE coverage | samples with an overlap warning |",
             "|---|---|---|---|---|---|---|---|---|---|---|---|"]
    for design in ("cluster", "individual"):
        rs = [r for r in rows if r["design"] == design]
        if not rs:
            continue
        f = lambda k: np.array([float(r[k]) for r in rs])
        ratio = f("aipw_se") / f("fe_se")
        ea, ef = f("aipw_estimate") - 1.0, f("fe_estimate") - 1.0
        models = {}
        for r in rs:
            models[r["e_model"]] = models.get(r["e_model"], 0) + 1
        lines.append(
            f"| {design} | {len(rs)} | {np.mean(f('e_range') < 0.1):.2f} | "
            f"{np.median(f('e_range')):.3f} | "
            f"{', '.join(f'{k}: {v}' for k, v in sorted(models.items()))} | "
            f"{np.median(ratio):.2f} | {np.mean(ratio <= 1.5):.2f} | "
            f"{ea.mean():.3f} ± {ea.std(ddof=1) / np.sqrt(len(rs)):.3f} | "
            f"{np.mean((f('aipw_low') <= 1) & (1 <= f('aipw_high'))):.2f} | "
            f"{ef.mean():.3f} ± {ef.std(ddof=1) / np.sqrt(len(rs)):.3f} | "
            f"{np.mean((f('fe_low') <= 1) & (1 <= f('fe_high'))):.2f} | "
            f"{np.mean(f('warnings') > 0):.2f} |")
    return "\n".join(lines)


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--reps", type=int, default=50)
    p.add_argument("--workers", type=int, default=2)
    p.add_argument("--designs", nargs="+", default=["cluster", "individual"])
    p.add_argument("--max-steps", type=int, default=500)
    p.add_argument("--seed", type=int, default=30_000)
    p.add_argument("--raw", default=os.path.join(os.path.dirname(__file__),
                                                 "randomized_study_raw.csv"))
    p.add_argument("--summarize", action="store_true")
    a = p.parse_args(argv)
    if not a.summarize:
        start = time.time()
        with open(a.raw, "w", newline="") as fh:
            writer = csv.DictWriter(fh, fieldnames=FIELDS)
            writer.writeheader()
            with ProcessPoolExecutor(a.workers, mp_context=get_context("spawn"),
                                     initializer=_init_worker) as pool:
                futs = [pool.submit(one, d, r, vars(a)) for r in range(a.reps) for d in a.designs]
                for k, fut in enumerate(as_completed(futs), 1):
                    writer.writerow(fut.result())
                    fh.flush()
                    if k % 10 == 0:
                        print(f"{k}/{len(futs)}, {time.time() - start:.0f}s", flush=True)
        print(f"wall {time.time() - start:.0f}s")
    import gzip
    opener = gzip.open if a.raw.endswith(".gz") else open
    with opener(a.raw, "rt") as fh:
        print(summarize(list(csv.DictReader(fh))))


if __name__ == "__main__":
    main()
