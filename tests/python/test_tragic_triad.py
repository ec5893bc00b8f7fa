"""The papers' claim on the tragic triad, tested at 2 standard errors.

20 replications with fixed seeds of the low-overlap design (40 clusters x 30
observations, tail deviations sd 1): paired differences in mean squared error
against the true conditional mean on 50 clusters held out of training.

What the evidence supports (validation/RESULTS.md has the numbers and the
settings where it does not hold):
- the method (alpha = 0.5, k = 1, eta = 0.1) beats ERM by more than 2 SE;
- against MAML the difference favours the method but is within 2 SE, so we
  assert only that the method is not worse than MAML by 2 SE.
"""
import importlib.util
import pathlib

import numpy as np
import pytest

study_path = pathlib.Path(__file__).parents[2] / "validation" / "tragic_triad.py"
spec = importlib.util.spec_from_file_location("tragic_triad_study", study_path)
study = importlib.util.module_from_spec(spec)
spec.loader.exec_module(study)

SETTINGS = {"model": "mlp", "hidden": [32, 32], "inner_steps": 1, "inner_lr": 0.1,
            "max_steps": 2000, "patience": 200}
DESIGN = {"n_clusters": 40, "sd_tail": 1.0}


@pytest.fixture(scope="module")
def low_overlap():
    rows = study.run(20, "low", False, 0.5, SETTINGS, DESIGN, quiet=True)
    return study.summarise(rows)


def test_method_beats_erm_on_held_out_clusters(low_overlap):
    diff, se = low_overlap["method-erm"]
    print(f"method - ERM: {diff:+.4f} (se {se:.4f})")
    assert diff + 2 * se < 0


def test_method_is_not_worse_than_maml(low_overlap):
    diff, se = low_overlap["method-maml"]
    print(f"method - MAML: {diff:+.4f} (se {se:.4f})")
    assert diff - 2 * se < 0


def test_every_method_has_finite_errors(low_overlap):
    assert all(np.isfinite(m) and np.isfinite(s) for m, s in low_overlap.values())
