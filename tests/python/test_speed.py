"""Speed settings that must not change the answer: dtype="float32" (against
float64), minibatches of clusters (batch_clusters), several devices."""
import os
import subprocess
import sys
from pathlib import Path

import jax
import numpy as np
import pytest

import rfp
from rfp.simulate import tragic_triad

ROOT = Path(__file__).resolve().parents[2]


def test_float32_training_matches_float64_and_returns_float64():
    sim = tragic_triad(n_clusters=16, n_per_cluster=20, seed=3)
    kw = dict(y="y", x=["x"], cluster="cluster", alpha=0.5, inner_steps=1, hidden=(8, 8),
              max_steps=100, patience=None, validation_share=0.0, progress=False)
    m64 = rfp.fit(sim.data, **kw)
    m32 = rfp.fit(sim.data, dtype="float32", **kw)
    assert all(a.dtype == np.float64 for a in jax.tree.leaves(m32.params))
    p64, p32 = m64.predict(sim.data, as_numpy=True), m32.predict(sim.data, as_numpy=True)
    assert p32.dtype == np.float64
    # float32 rounding (relative 6e-8 per operation) carried through 100 Adam
    # steps: predictions agree to 1e-4 of the outcome's standard deviation and
    # the objective's curve to 1e-3 relative
    sd = np.std(sim.data["y"].to_numpy())
    assert np.max(np.abs(p32 - p64)) < 1e-4 * sd
    np.testing.assert_allclose(m32.history.train, m64.history.train, rtol=1e-3)


def test_dtype_setting_is_checked():
    sim = tragic_triad(n_clusters=4, n_per_cluster=5, seed=0)
    with pytest.raises(ValueError, match="dtype must be 'float64' or 'float32'"):
        rfp.fit(sim.data, y="y", x=["x"], cluster="cluster", dtype="float16")
