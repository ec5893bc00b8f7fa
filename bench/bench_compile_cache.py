"""The persistent compilation cache: the README example's first fit in a
fresh process with an empty cache, then in a second fresh process (cache
warm).  Prints the seconds of each (the fit alone, and the whole process
including ``import rfp``) and the ratio first / second.

    .venv/bin/python bench/bench_compile_cache.py
"""
from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

CHILD = """
import json, time
t0 = time.perf_counter()
import rfp
from rfp.simulate import tragic_triad
sim = tragic_triad(n_clusters=40, seed=1)
t1 = time.perf_counter()
rfp.fit(sim.data, y="y", x=["x"], cluster="cluster", alpha=0.5, inner_steps=1, seed=1,
        progress=False)
t2 = time.perf_counter()
print(json.dumps({"fit": t2 - t1, "import": t1 - t0}))
"""


def run(cache: str) -> dict:
    env = {**os.environ, "RFP_CACHE_DIR": cache,
           "PYTHONPATH": str(Path(__file__).resolve().parents[1] / "python")}
    start = time.perf_counter()
    done = subprocess.run([sys.executable, "-c", CHILD], env=env, capture_output=True,
                          text=True, check=True)
    out = json.loads(done.stdout.strip().splitlines()[-1])
    out["process"] = time.perf_counter() - start
    return out


def main():
    with tempfile.TemporaryDirectory() as cache:
        cold = run(cache)
        files = len(os.listdir(cache))
        warm = run(cache)
    off = run("off")
    print(f"cache off      : fit {off['fit']:.2f} s, process {off['process']:.2f} s")
    print(f"empty cache    : fit {cold['fit']:.2f} s, process {cold['process']:.2f} s "
          f"({files} cache entries written)")
    print(f"warm cache     : fit {warm['fit']:.2f} s, process {warm['process']:.2f} s")
    print(f"ratio empty / warm: fit {cold['fit'] / warm['fit']:.1f}x, "
          f"process {cold['process'] / warm['process']:.1f}x")


if __name__ == "__main__":
    main()
