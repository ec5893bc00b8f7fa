"""Held-out-cluster error of ERM (alpha = 1), MAML (alpha = 0) and the method
on the tragic-triad design, over replications with fixed seeds.

For each replication r: simulate a training sample (seed r), fit each method
with the same settings and seed, and measure the mean squared error of its
predictions against the true conditional mean on fresh clusters from the same
design (seed 10_000 + r).  Prints each method's mean error and the paired
differences method - ERM and method - MAML with their standard errors.

    .venv/bin/python validation/tragic_triad.py --reps 20 --overlap low
"""
from __future__ import annotations

import argparse
import json
import sys
import time

import numpy as np

import rfp
from rfp.simulate import held_out, tragic_triad


def held_out_error(model, test) -> float:
    pred = model.predict(test.data, as_numpy=True)
    return float(np.mean((pred - test.data["mu"].to_numpy()) ** 2))


def run(reps, overlap, zero_mean, alpha, settings, design, test_clusters=50, quiet=False):
    rows = []
    for r in range(reps):
        sim = tragic_triad(overlap=overlap, zero_mean=zero_mean, seed=r, **design)
        test = held_out(sim, test_clusters, seed=10_000 + r)
        errs = {}
        for name, a in (("erm", 1.0), ("maml", 0.0), ("method", alpha)):
            m = rfp.fit(sim.data, y="y", x=["x"], cluster="cluster", alpha=a, seed=r,
                        progress=False, **settings)
            errs[name] = held_out_error(m, test)
        rows.append(errs)
        if not quiet:
            print(f"rep {r}: " + "  ".join(f"{k}={v:.4f}" for k, v in errs.items()), file=sys.stderr)
    return rows


def summarise(rows):
    e = {k: np.array([r[k] for r in rows]) for k in rows[0]}
    out = {k: (float(v.mean()), float(v.std(ddof=1) / np.sqrt(len(v)))) for k, v in e.items()}
    for other in ("erm", "maml"):
        d = e["method"] - e[other]
        out[f"method-{other}"] = (float(d.mean()), float(d.std(ddof=1) / np.sqrt(len(d))))
    return out


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--reps", type=int, default=20)
    p.add_argument("--overlap", default="low")
    p.add_argument("--zero-mean", action="store_true")
    p.add_argument("--alpha", type=float, default=0.5)
    p.add_argument("--settings", default="{}", help="JSON of fit settings")
    p.add_argument("--design", default="{}", help="JSON of tragic_triad arguments")
    a = p.parse_args(argv)
    settings = {"model": "mlp", "hidden": [32, 32], "inner_steps": 1, "inner_lr": 0.1,
                "max_steps": 2000, "patience": 200, **json.loads(a.settings)}
    t = time.time()
    rows = run(a.reps, a.overlap, a.zero_mean, a.alpha, settings, json.loads(a.design))
    s = summarise(rows)
    print(f"design overlap={a.overlap} zero_mean={a.zero_mean} design={a.design} alpha={a.alpha} "
          f"settings={json.dumps(settings)} reps={a.reps} ({time.time() - t:.0f}s)")
    for k, (m, se) in s.items():
        print(f"  {k:12s} {m:+.4f}  (se {se:.4f}, z {m / se if se else float('nan'):+.2f})")


if __name__ == "__main__":
    main()
