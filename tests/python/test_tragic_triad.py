"""Regression check (not evidence) of the tragic-triad result.

It reruns the seeds the original result came from (0-4 of the 20 in
validation/TRAGIC_TRIAD.md, low overlap, 40 clusters x 30, tail sd 1):
the method (alpha = 0.5, k = 1, eta = 0.1) had a lower mean squared error on
50 held-out clusters than ERM and MAML there.  A change that breaks that on
these seeds is worth a look; whether the method wins on fresh samples is
what validation/TUNING.md measures, with seeds fixed before the runs.
"""
import importlib.util
import pathlib
import warnings

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
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")   # individual fits may warn; the means are checked
        rows = study.run(5, "low", False, 0.5, SETTINGS, DESIGN, quiet=True)
    return study.summarise(rows)


def test_method_below_erm_and_maml_on_the_original_seeds(low_overlap):
    print({k: round(v[0], 4) for k, v in low_overlap.items()})
    assert low_overlap["method-erm"][0] < 0
    assert low_overlap["method-maml"][0] < 0


def test_every_method_has_finite_errors(low_overlap):
    assert all(np.isfinite(m) and np.isfinite(s) for m, s in low_overlap.values())
