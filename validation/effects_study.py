"""Validation study of the effect estimators (docs/DESIGN.md, "Effects" and
"Comparisons"): every method in ``rfp.compare`` on repeated draws of
``rfp.simulate.cluster_trial`` (treatment assigned to whole clusters within
strata, selection on a cluster covariate), low and high overlap.

For each design, method and estimand: bias (mean of estimate − truth, with its
Monte Carlo standard error), SD of the estimates, RMSE, coverage of the 95%
confidence interval (with its binomial standard error), mean reported SE, and
the share of replications in which the method ran and reported convergence.

Not a CI test: it is slow. Per-replication rows go to a CSV as they finish
(``--raw``), so an interrupted run can be summarised with ``--summarize``.
The summary and the exact command go to ``--out`` (validation/RESULTS.md).

    python validation/effects_study.py --reps 200 --workers 2
"""
from __future__ import annotations

import argparse
import csv
import gzip
import math
import os
import shlex
import sys
import tempfile
import time
from concurrent.futures import ProcessPoolExecutor, as_completed
from multiprocessing import get_context

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
METHODS = ("fixed_effects", "entropy_balancing", "cluster_balancing", "dml", "aipw", "kernel",
           "dml_maml", "dml_erm")                 # rfp.compare.METHODS (not imported: spawn)
FIELDS = ["design", "rep", "method", "estimand", "estimate", "std_error", "ci_low", "ci_high",
          "truth", "ess", "converged", "variance_share", "imbalance", "approximate", "seconds"]


def _init_worker():
    """Each worker: JAX on the CPU, one thread, a persistent compilation cache
    (fits of the same shapes across replications then skip XLA compilation)."""
    os.environ.setdefault("JAX_PLATFORMS", "cpu")
    import jax
    jax.config.update("jax_compilation_cache_dir",
                      os.path.join(tempfile.gettempdir(), "rfp-study-jax-cache"))
    jax.config.update("jax_persistent_cache_min_compile_time_secs", 0)


def one_replication(design: str, rep: int, args_dict: dict) -> list[dict]:
    import warnings

    import rfp
    from rfp.simulate import cluster_trial

    a = argparse.Namespace(**args_dict)
    sim = cluster_trial(n_strata=a.strata, clusters_per_stratum=a.clusters_per_stratum,
                        n_per_cluster=a.n_per_cluster, effect=a.effect, overlap=design,
                        tau=1.0, seed=a.seed + rep)
    settings = dict(model="mlp", hidden=tuple(a.hidden), alpha=a.alpha, inner_steps=1,
                    inner_lr=0.1, learning_rate=a.learning_rate, max_steps=a.max_steps,
                    patience=a.patience, eval_every=10, validation_share=0.2)
    start = time.time()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        table = rfp.compare(sim, methods=a.methods, folds=a.folds, seed=rep,
                            repeats=None if a.repeats == "default" else int(a.repeats),
                            propensity=a.propensity, propensity_penalty=a.propensity_penalty,
                            nuisance=a.nuisance, **settings)
    seconds = time.time() - start
    rows = []
    for r in table.to_pylist():
        rows.append({"design": design, "rep": rep, "method": r["method"],
                     "estimand": r["estimand"], "estimate": r["estimate"],
                     "std_error": r["std_error"], "ci_low": r["ci_low"], "ci_high": r["ci_high"],
                     "truth": r["truth"], "ess": r["ess"], "converged": int(r["converged"]),
                     "variance_share": r["variance_share"],
                     "imbalance": r.get("imbalance", float("nan")),
                     "approximate": int("approximate balance" in (r.get("note") or "")),
                     "seconds": seconds})
    return rows


def read_raw(path: str) -> list[dict]:
    """Rows of the raw CSV (plain or gzipped, as committed)."""
    opener = gzip.open if path.endswith(".gz") else open
    with opener(path, "rt") as f:
        return list(csv.DictReader(f))


def summarize(rows: list[dict]) -> dict:
    """(design, method, estimand) -> summary numbers."""
    groups: dict = {}
    for r in rows:
        groups.setdefault((r["design"], r["method"], r["estimand"]), []).append(r)
    out = {}
    for key, rs in groups.items():
        est = np.array([float(r["estimate"]) for r in rs])
        ok = np.isfinite(est)
        e = est[ok]
        truth = np.array([float(r["truth"]) for r in rs])[ok]
        lo = np.array([float(r["ci_low"]) for r in rs])[ok]
        hi = np.array([float(r["ci_high"]) for r in rs])[ok]
        se = np.array([float(r["std_error"]) for r in rs])[ok]
        conv = np.array([int(float(r["converged"])) for r in rs])
        err = e - truth
        m = len(e)
        cover = float(np.mean((lo <= truth) & (truth <= hi))) if m else math.nan
        out[key] = dict(
            reps=len(rs), ran=m, bias=float(err.mean()) if m else math.nan,
            bias_se=float(err.std(ddof=1) / math.sqrt(m)) if m > 1 else math.nan,
            sd=float(e.std(ddof=1)) if m > 1 else math.nan,
            rmse=float(np.sqrt(np.mean(err ** 2))) if m else math.nan,
            coverage=cover, coverage_se=math.sqrt(cover * (1 - cover) / m) if m else math.nan,
            mean_se=float(se.mean()) if m else math.nan, converged=float(conv.mean()),
            ess=float(np.nanmean([float(r["ess"]) for r in rs])),
            variance_share=float(np.nanmean([float(r["variance_share"]) for r in rs]))
            if any(np.isfinite(float(r["variance_share"])) for r in rs) else math.nan,
            seconds=float(np.mean([float(r["seconds"]) for r in rs])),
            imbalance=float(np.nanmean([float(r.get("imbalance") or "nan") for r in rs]))
            if any(np.isfinite(float(r.get("imbalance") or "nan")) for r in rs) else math.nan,
            approximate=float(np.mean([int(float(r.get("approximate") or 0)) for r in rs])),
        )
    return out


def markdown(summary: dict, args, command: str, wall: float | None) -> str:
    def f(v, d=3):
        return "–" if v is None or not np.isfinite(v) else f"{v:.{d}f}"

    designs = sorted({k[0] for k in summary}, key=lambda s: {"low": 0, "high": 1}.get(s, 2))
    order = ["fixed_effects", "entropy_balancing", "cluster_balancing", "dml", "aipw", "kernel",
             "dml_maml", "dml_erm"]
    lines = [
        "# Effects validation study",
        "",
        "Produced by `validation/effects_study.py` (not a CI test). Exact command:",
        "",
        f"    {command}",
        "",
        f"Design: `rfp.simulate.cluster_trial(n_strata={args.strata}, "
        f"clusters_per_stratum={args.clusters_per_stratum}, n_per_cluster={args.n_per_cluster}, "
        f"effect='{args.effect}', tau=1, overlap=...)`, seeds {args.seed}..{args.seed}+reps−1: "
        f"{args.strata * args.clusters_per_stratum} clusters, treatment assigned to whole "
        f"clusters with probability logistic(γ z_c), γ = 2 (low overlap) or 0.5 (high overlap); "
        f"outcome nonlinear in (x, z) plus a cluster random effect.",
        "",
        f"The method's nuisances (rows dml, aipw, dml_maml, dml_erm): MLP hidden={tuple(args.hidden)}, "
        f"tanh, alpha={args.alpha} (dml, aipw; 0 for dml_maml, 1 for dml_erm), one inner step "
        f"(inner_lr 0.1), Adam lr {args.learning_rate}, at most {args.max_steps} steps with early "
        f"stopping (patience {args.patience}) on 20% held-out clusters; {args.folds}-fold "
        f"cross-fitting by cluster, repeated over {args.repeats} split(s) (median), nuisance={args.nuisance}; AIPW propensity: {args.propensity} (auto: a ridge logistic "
        f"regression on cluster means when treatment is constant within clusters, penalty "
        f"{args.propensity_penalty}), clipped to [0.01, 0.99]; methods: {' '.join(args.methods)}. "
        f"These are deliberately small models and few steps, to keep the study near 40 minutes "
        f"on a shared 2-core machine; larger models may behave differently.",
        "",
        "Columns: reps = replications run (ran = with a finite estimate); bias = mean(estimate − "
        "truth) ± its Monte Carlo SE; SD of the estimates; RMSE; coverage of the 95% CI (t on "
        "G − 1 df) ± binomial SE; mean reported SE; conv = share of replications reporting "
        "convergence; ESS = mean Kish effective sample size of the control (or FWL) weights; "
        "var share = mean share of Var(D) explained by the first stage.",
        "",
    ]
    if wall is not None:
        lines += [f"Wall time: {wall / 60:.1f} minutes with {args.workers} worker(s).", ""]
    for design in designs:
        reps = max(v["reps"] for k, v in summary.items() if k[0] == design)
        lines += [f"## {design} overlap ({reps} replications)", "",
                  "| method | estimand | reps (ran) | bias ± MC se | SD | RMSE | coverage ± se | "
                  "mean SE | conv | ESS | var share | approx. balance | mean max imbalance (SD) |",
                  "|---|---|---|---|---|---|---|---|---|---|---|---|---|"]
        keys = sorted((k for k in summary if k[0] == design),
                      key=lambda k: (order.index(k[1]) if k[1] in order else 99, k[2]))
        for k in keys:
            s = summary[k]
            lines.append(
                f"| {k[1]} | {k[2] or '–'} | {s['reps']} ({s['ran']}) | {f(s['bias'])} ± "
                f"{f(s['bias_se'])} | {f(s['sd'])} | {f(s['rmse'])} | {f(s['coverage'], 3)} ± "
                f"{f(s['coverage_se'], 3)} | {f(s['mean_se'])} | {f(s['converged'], 2)} | "
                f"{f(s['ess'], 0)} | {f(s['variance_share'], 2)} | {f(s['approximate'], 2)} | "
                f"{f(s['imbalance'], 3)} |")
        lines.append("")
    return "\n".join(lines)


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--reps", type=int, default=200, help="replications per design")
    p.add_argument("--workers", type=int, default=2)
    p.add_argument("--designs", nargs="+", default=["low", "high"], choices=["low", "high"])
    p.add_argument("--methods", nargs="+", default=list(METHODS), choices=list(METHODS),
                   help="only these rfp.compare methods (default: all)")
    p.add_argument("--propensity", default="auto", choices=["auto", "cluster", "individual"],
                   help="where AIPW fits its propensity (rfp.compare's propensity=)")
    p.add_argument("--propensity-penalty", default="cv", type=lambda v: v if v == "cv" else float(v),
                   help="ridge penalty of a cluster-level propensity: cv (default) or a number")
    p.add_argument("--effect", default="constant", choices=["constant", "heterogeneous"])
    p.add_argument("--strata", type=int, default=4)
    p.add_argument("--clusters-per-stratum", type=int, default=10)
    p.add_argument("--n-per-cluster", type=int, default=15)
    p.add_argument("--folds", type=int, default=2)
    p.add_argument("--repeats", default="1",
                   help="repeated cross-fitting: fold splits, median aggregation; 'default' "
                        "uses rfp's default (5 below 100 clusters)")
    p.add_argument("--nuisance", default="method", choices=["select", "method", "linear", "constant"],
                   help="rfp.compare's nuisance= for the dml/aipw rows (rfp's default: select)")
    p.add_argument("--hidden", type=int, nargs="+", default=[8])
    p.add_argument("--alpha", type=float, default=0.5)
    p.add_argument("--learning-rate", type=float, default=0.02)
    p.add_argument("--max-steps", type=int, default=200)
    p.add_argument("--patience", type=int, default=50)
    p.add_argument("--seed", type=int, default=20_000)
    p.add_argument("--raw", default=os.path.join(HERE, "effects_study_raw.csv"))
    p.add_argument("--out", default=os.path.join(HERE, "RESULTS.md"))
    p.add_argument("--summarize", action="store_true",
                   help="only summarise the rows already in --raw")
    args = p.parse_args(argv)
    command = "python validation/effects_study.py " + " ".join(shlex.quote(a) for a in
                                                             (argv if argv is not None else sys.argv[1:]))
    wall = None
    if not args.summarize:
        jobs = [(d, r) for r in range(args.reps) for d in args.designs]
        start = time.time()
        with open(args.raw, "w", newline="") as f:
            writer = csv.DictWriter(f, fieldnames=FIELDS)
            writer.writeheader()
            with ProcessPoolExecutor(max_workers=args.workers, mp_context=get_context("spawn"),
                                     initializer=_init_worker) as pool:
                futures = [pool.submit(one_replication, d, r, vars(args)) for d, r in jobs]
                for done, fut in enumerate(as_completed(futures), 1):
                    writer.writerows(fut.result())
                    f.flush()
                    if done % 10 == 0 or done == len(jobs):
                        print(f"{done}/{len(jobs)} replications, {time.time() - start:.0f}s",
                              flush=True)
        wall = time.time() - start
    summary = summarize(read_raw(args.raw))
    text = markdown(summary, args, command, wall)
    with open(args.out, "w") as f:
        f.write(text + "\n")
    print(text)


if __name__ == "__main__":
    main()
