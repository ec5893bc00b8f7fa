"""The persistent compilation cache: a fit in a fresh process writes compiled
programs into RFP_CACHE_DIR; RFP_CACHE_DIR=off writes nothing."""
import os
import subprocess
import sys
from pathlib import Path

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
