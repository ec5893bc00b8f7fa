"""Wall time of the default ``rfp.tune`` (Python) and of R's
``rfp(y ~ x | cluster, data, tune = TRUE, seed = 1)`` against tuned gradient
boosting, OLS and a random-intercept model, on the same data, in one run.

What
----
Data: ``rfp.simulate.tragic_triad(n_clusters=G, n_per_cluster=m,
overlap="low", seed=1)``, the README's one-control design (y = |x| plus
cluster-specific tails plus noise; clusters differ in the mean of x).  Sizes
(``--sizes``):

    1.2k   40 clusters x 30 rows  =  1,200 rows
    5k    100 clusters x 50 rows  =  5,000 rows
    50k  1000 clusters x 50 rows  = 50,000 rows

Methods, each timed as fit + prediction of every row (wall clock):

    rfp.tune      rfp.tune(data, y="y", x=["x"], cluster="cluster", seed=1,
                  progress=False), everything else at its default (Python,
                  in this process)
    rfp (R)       rfp(y ~ x | cluster, data, tune = TRUE, seed = 1,
                  progress = FALSE) in R, timed inside R with system.time
                  (R's start-up is excluded; the first call includes starting
                  the Python backend)
    hgb           scikit-learn HistGradientBoostingRegressor(random_state=0)
                  in GridSearchCV over max_depth in {2, 3} x max_iter in
                  {50, 200} (4 configurations) with GroupKFold(5) by cluster,
                  negative MSE, refit on all rows
    ols           least squares of y on x with an intercept (numpy)
    lmer          lme4::lmer(y ~ x + (1 | cluster)) in R, population
                  prediction predict(fit, re.form = NA), timed inside R

rfp (both front ends) is timed once as "first call" (JIT compilation
included, as a user meets it) and then ``--repeats`` more times (default 3;
1 at the 50k size); the table reports the median of the repeats and its
ratio to hgb's median.  hgb, ols and lmer are timed ``--repeats`` times too.
The last line is "default / HGB at ~5k rows: X.XX (target <= 2)", the
Python rfp.tune median over hgb's median at the 5k size.

How to run
----------
From the repository root, after ``make setup``:

    .venv/bin/python bench/bench_default.py                      # all sizes
    .venv/bin/python bench/bench_default.py --sizes 1.2k --repeats 1
    .venv/bin/python bench/bench_default.py --sizes 5k --skip-r  # Python only

R is run as ``Rscript`` (or $RSCRIPT) with R_LIBS defaulting to
.venv/Rlib and RFP_PYTHON to this Python, unless they are set.

Machine note
------------
The reference machine has 2 cores.  Run with nothing else running: JAX and
scikit-learn (OpenMP) both use every core, and on a loaded machine OpenMP's
threads can make HistGradientBoosting ten times slower than with
OMP_NUM_THREADS=1, which flatters every ratio to hgb.  The script prints the
core count, the load average at the start and OMP_NUM_THREADS, so that a
table can be read with them.
"""
from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd

ROOT = Path(__file__).resolve().parent.parent
SIZES = {"1.2k": (40, 30), "5k": (100, 50), "50k": (1000, 50)}

R_SCRIPT = r"""
args <- commandArgs(trailingOnly = TRUE)
data <- read.csv(args[1])
repeats <- as.integer(args[2])
skip_rfp <- args[3] == "skip-rfp"
suppressMessages(library(lme4))
suppressMessages(library(rfp))
data$cluster <- factor(data$cluster)
elapsed <- function(expr) system.time(expr)[["elapsed"]]
lmer_times <- replicate(repeats, elapsed({
  fit <- lmer(y ~ x + (1 | cluster), data = data)
  pred <- predict(fit, newdata = data, re.form = NA)
}))
cat(sprintf('{"method": "lmer", "first": null, "times": [%s]}\n',
            paste(lmer_times, collapse = ", ")))
if (!skip_rfp) {
  rfp_once <- function() elapsed({
    m <- rfp(y ~ x | cluster, data, tune = TRUE, seed = 1, progress = FALSE)
    pred <- predict(m, data)
  })
  first <- rfp_once()
  rfp_times <- replicate(repeats, rfp_once())
  cat(sprintf('{"method": "rfp (R)", "first": %f, "times": [%s]}\n',
              first, paste(rfp_times, collapse = ", ")))
}
"""


def timed(fn, repeats):
    """Wall seconds of each of `repeats` calls of fn()."""
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return times


def python_methods(data, repeats):
    """{method: (first-call seconds or None, [seconds of each repeat])}."""
    import rfp
    from sklearn.ensemble import HistGradientBoostingRegressor
    from sklearn.model_selection import GridSearchCV, GroupKFold

    x, y, groups = data[["x"]].to_numpy(), data["y"].to_numpy(), data["cluster"].to_numpy()

    def rfp_default():
        model = rfp.tune(data, y="y", x=["x"], cluster="cluster", seed=1, progress=False)
        return model.predict(data, as_numpy=True)

    def hgb():
        search = GridSearchCV(HistGradientBoostingRegressor(random_state=0),
                              {"max_depth": [2, 3], "max_iter": [50, 200]},
                              cv=GroupKFold(5), scoring="neg_mean_squared_error")
        search.fit(x, y, groups=groups)
        return search.predict(x)

    def ols():
        design = np.column_stack([np.ones(len(y)), x])
        coef, *_ = np.linalg.lstsq(design, y, rcond=None)
        return design @ coef

    out = {}
    first = timed(rfp_default, 1)[0]
    print(f"    rfp.tune first call {first:.2f} s", flush=True)
    out["rfp.tune"] = (first, timed(rfp_default, repeats))
    print(f"    rfp.tune {out['rfp.tune'][1]}", flush=True)
    out["hgb"] = (None, timed(hgb, repeats))
    print(f"    hgb {out['hgb'][1]}", flush=True)
    out["ols"] = (None, timed(ols, repeats))
    return out


def r_methods(data, repeats, skip_rfp=False):
    """lmer and rfp(tune = TRUE), timed inside one Rscript."""
    env = dict(os.environ)
    env.setdefault("R_LIBS", str(ROOT / ".venv" / "Rlib"))
    env.setdefault("RFP_PYTHON", sys.executable)
    with tempfile.TemporaryDirectory() as tmp:
        csv_path, script = Path(tmp) / "data.csv", Path(tmp) / "bench.R"
        data.to_csv(csv_path, index=False)
        script.write_text(R_SCRIPT)
        proc = subprocess.run([os.environ.get("RSCRIPT", "Rscript"), str(script), str(csv_path),
                               str(repeats), "skip-rfp" if skip_rfp else "rfp"],
                              capture_output=True, text=True, env=env)
    if proc.returncode != 0:
        print(f"    R failed:\n{proc.stderr[-3000:]}", flush=True)
    out = {}
    for line in proc.stdout.splitlines():
        if line.startswith("{"):
            row = json.loads(line)
            out[row["method"]] = (row["first"], row["times"])
    return out


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--sizes", default=",".join(SIZES),
                   help=f"comma-separated, from {', '.join(SIZES)}")
    p.add_argument("--repeats", type=int, default=3,
                   help="timed repeats after rfp's first call (1 at the 50k size)")
    p.add_argument("--skip-r", action="store_true", help="time the Python methods only")
    p.add_argument("--skip-r-rfp", action="store_true",
                   help="in R, time lmer only (not rfp(tune = TRUE))")
    args = p.parse_args(argv)
    sizes = args.sizes.split(",")
    unknown = [s for s in sizes if s not in SIZES]
    if unknown:
        p.error(f"unknown size(s): {', '.join(unknown)}")

    from rfp.simulate import tragic_triad
    print(f"cores: {os.cpu_count()}, load average at start: "
          f"{' '.join(f'{v:.2f}' for v in os.getloadavg())}, "
          f"OMP_NUM_THREADS={os.environ.get('OMP_NUM_THREADS', 'unset')}", flush=True)

    rows = []
    for size in sizes:
        n_clusters, per_cluster = SIZES[size]
        repeats = 1 if size == "50k" else args.repeats
        sim = tragic_triad(n_clusters=n_clusters, n_per_cluster=per_cluster, overlap="low",
                           seed=1)
        data = sim.data.select(["y", "x", "cluster"]).to_pandas()
        print(f"{size}: {len(data)} rows, {n_clusters} clusters, {repeats} repeat(s)",
              flush=True)
        results = python_methods(data, repeats)
        if not args.skip_r:
            results.update(r_methods(data, repeats, skip_rfp=args.skip_r_rfp))
        hgb = statistics.median(results["hgb"][1])
        for method in ("rfp.tune", "rfp (R)", "hgb", "ols", "lmer"):
            if method in results:
                first, times = results[method]
                rows.append(dict(size=size, rows=len(data), method=method, first=first,
                                 median=statistics.median(times), repeats=len(times),
                                 ratio=statistics.median(times) / hgb))

    print("\n| size | rows | method | first call (s) | median s | repeats | ratio to hgb |")
    print("|---|---|---|---|---|---|---|")
    for r in rows:
        first = "" if r["first"] is None else f"{r['first']:.2f}"
        print(f"| {r['size']} | {r['rows']:,} | {r['method']} | {first} | {r['median']:.4f} | "
              f"{r['repeats']} | {r['ratio']:.3g} |")
    at_5k = [r for r in rows if r["size"] == "5k" and r["method"] == "rfp.tune"]
    print()
    if at_5k:
        print(f"default / HGB at ~5k rows: {at_5k[0]['ratio']:.2f} (target <= 2)")
    else:
        print("default / HGB at ~5k rows: not run (add --sizes 5k) (target <= 2)")


if __name__ == "__main__":
    sys.exit(main())
