"""The persistent compilation cache: a fit in a fresh process writes compiled
programs into RFP_CACHE_DIR; RFP_CACHE_DIR=off writes nothing.  In memory:
compiled programs are dropped before the process runs out of memory mappings."""
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]

FIT = """
import numpy as np, jax, rfp
rng = np.random.default_rng(0)
g = np.repeat(np.arange(6), 10)
x = rng.normal(size=(60, 1))
rfp.fit_arrays(x, x[:, 0] + rng.normal(size=60), g, model="linear", max_steps=20,
               patience=None, progress=False)
print(jax.config.jax_compilation_cache_dir)
"""


def run_fit(tmp_path, cache):
    env = {**os.environ, "RFP_CACHE_DIR": cache, "JAX_PLATFORMS": "cpu",
           "PYTHONPATH": str(ROOT / "python")}
    env.pop("JAX_COMPILATION_CACHE_DIR", None)
    done = subprocess.run([sys.executable, "-c", FIT], env=env, capture_output=True, text=True,
                          cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    return done.stdout.strip().splitlines()[-1]


def test_a_fit_fills_the_cache_directory(tmp_path):
    cache = tmp_path / "cache"
    used = run_fit(tmp_path, str(cache))
    assert used == str(cache)
    assert len(list(cache.iterdir())) > 0


def test_off_disables_the_cache(tmp_path, monkeypatch):
    home = tmp_path / "home"
    monkeypatch.setenv("HOME", str(home))            # where a default cache would go
    monkeypatch.setenv("XDG_CACHE_HOME", str(home / ".cache"))
    assert run_fit(tmp_path, "off") == "None"
    assert not (home / ".cache" / "rfp").exists()


def test_compiled_programs_are_dropped_when_mappings_crowd(monkeypatch):
    """release_if_crowded drops JAX's in-memory programs past the share of
    vm.max_map_count (a long session would otherwise segfault inside XLA),
    leaves them below it, and every fit and tune calls it first."""
    import numpy as np
    import rfp
    from rfp.core import cache
    from rfp.training import fit as fit_mod, train
    from rfp.tuning import tune as tune_mod
    counts = cache.mapping_counts()
    if counts is None:
        pytest.skip("no /proc: not Linux")
    held, limit = counts
    assert 0 < held < limit
    rng = np.random.default_rng(0)
    cluster = np.repeat(np.arange(6), 5)
    x = rng.normal(size=(30, 1))
    y = x[:, 0] + rng.normal(size=30)
    rfp.fit_arrays(x, y, cluster, max_steps=10, eval_every=5, progress=False)
    assert train.chunk._cache_size() > 0
    assert not cache.release_if_crowded(share=1.0)
    assert train.chunk._cache_size() > 0
    assert cache.release_if_crowded(share=0.0)
    assert train.chunk._cache_size() == 0
    calls = []
    for mod in (fit_mod, tune_mod):
        monkeypatch.setattr(mod, "release_if_crowded", lambda: calls.append(1))
    rfp.fit_arrays(x, y, cluster, max_steps=10, eval_every=5, progress=False)
    rfp.tune_arrays(x, y, cluster, grid={"alpha": [1.0]}, folds=2, max_steps=10,
                    progress=False)
    assert len(calls) >= 2
