"""Scale curve of issue 11 on the machine at hand: rows 10k -> 1M, clusters
100 -> 10,000 (lognormal sizes capped at 2,000: the GPU suite's design),
MLP 32x32, k = 3, second order.

For each size, in its own process (so that its peak memory is its own):
step time (value and gradient of R_k plus the Adam update, median of
chunks of --steps steps after a first, compiling chunk) with rfp's size
buckets in float64 and float32, and with one max-padded bucket (every
cluster padded to the next power of two of the largest; skipped above
--max-padded rows, where it would not fit a laptop's memory); then an
end-to-end ``rfp.fit_arrays`` of --fit-steps steps, float64, against
fit-steps x step time + the first chunk's compilation; peak resident memory
of the process.  Ratios (max-padded / bucketed, float64 / float32, fit /
bound) are from one process each.  The per-cluster loop is
``bench/bench_objective.py`` (its own design; compiles once per distinct
cluster size, so only at small sizes).

    .venv/bin/python bench/bench_scale_curve.py [--clusters 100 1000 10000]
"""
from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))


def one(g, steps, fit_steps, max_padded):
    sys.path.insert(0, HERE)
    import jax
    import numpy as np

    import rfp
    from gpu_suite import design, step_time
    from rfp.core.layout import make_buckets, padded_rows
    x, y, cluster = design(g)
    out = dict(clusters=g, rows=int(len(y)))
    for layout, dtype in (("bucketed", "float64"), ("bucketed", "float32"),
                          ("max-padded", "float64")):
        if layout == "max-padded":
            rows = padded_rows(make_buckets(cluster, max_padding=1e12, bucket_cost=0))
            if rows > max_padded:
                out["max-padded float64"] = dict(skipped=int(rows))
                continue
        first, per_step, padded = step_time(x, y, cluster, layout, dtype, steps=steps, repeats=2)
        out[f"{layout} {dtype}"] = dict(first=first, step=per_step, padded=int(padded))
    ref = out["bucketed float64"]
    t = time.perf_counter()
    rfp.fit_arrays(x, y, cluster, hidden=(32, 32), inner_steps=3, max_steps=fit_steps,
                   patience=fit_steps, eval_every=10, learning_rate=1e-3, progress=False)
    out["fit"] = time.perf_counter() - t
    out["bound"] = fit_steps * ref["step"] + max(ref["first"] - steps * ref["step"], 0.0)
    out["peak_rss_gb"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1e6
    out["device"] = jax.devices()[0].device_kind
    print(json.dumps(out), flush=True)


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--clusters", type=int, nargs="+", default=[100, 1000, 10000])
    p.add_argument("--steps", type=int, default=5, help="steps per timed chunk")
    p.add_argument("--fit-steps", type=int, default=20)
    p.add_argument("--max-padded", type=int, default=3_000_000)
    p.add_argument("--one", type=int, help=argparse.SUPPRESS)
    a = p.parse_args()
    if a.one:
        return one(a.one, a.steps, a.fit_steps, a.max_padded)
    print(f"{os.cpu_count()} cpus, load average {os.getloadavg()[0]:.1f}", flush=True)
    lines = []
    for g in a.clusters:
        run = subprocess.run([sys.executable, __file__, "--one", str(g), "--steps", str(a.steps),
                              "--fit-steps", str(a.fit_steps), "--max-padded", str(a.max_padded)],
                             capture_output=True, text=True)
        found = [s for s in run.stdout.splitlines() if s.startswith("{")]
        if run.returncode or not found:
            print(f"{g} clusters: failed\n{run.stderr[-2000:]}", flush=True)
            continue
        lines.append(json.loads(found[-1]))
        print(found[-1], flush=True)
    print(f"\nload average after {os.getloadavg()[0]:.1f}; device {lines[0]['device'] if lines else '?'}")
    print("\n| clusters / rows | bucketed f64 ms/step (padded rows) | bucketed f32 ms/step | "
          "f64 / f32 | max-padded f64 ms/step (padded rows) | max-padded / bucketed | "
          f"{a.fit_steps}-step fit s | fit / (steps x step + compile) | peak memory GB |")
    print("|---|---|---|---|---|---|---|---|---|")
    for r in lines:
        b64, b32, mp = r["bucketed float64"], r["bucketed float32"], r["max-padded float64"]
        if "skipped" in mp:
            mp_cell, ratio = f"not run ({mp['skipped']:,} padded rows)", "-"
        else:
            mp_cell = f"{mp['step'] * 1e3:.0f} ({mp['padded']:,})"
            ratio = f"{mp['step'] / b64['step']:.2f}x"
        print(f"| {r['clusters']:,} / {r['rows']:,} | {b64['step'] * 1e3:.0f} ({b64['padded']:,}) | "
              f"{b32['step'] * 1e3:.0f} | {b64['step'] / b32['step']:.2f}x | {mp_cell} | {ratio} | "
              f"{r['fit']:.1f} | {r['fit'] / r['bound']:.2f} | {r['peak_rss_gb']:.2f} |")


if __name__ == "__main__":
    main()
