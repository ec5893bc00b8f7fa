import os
import subprocess
from pathlib import Path

import pytest

os.environ.setdefault("JAX_PLATFORMS", "cpu")
# The tests run without JAX's persistent compilation cache (set before any
# test module imports rfp; subprocesses inherit it; test_cache.py turns it on
# in its own subprocesses).  With it on, in a session-private folder, the
# whole suite died twice in a row with a segfault inside JAX while reading a
# cached executable back (test_tune.py, test_tune_on_a_table_and_bad_settings),
# which the same test files run in smaller groups did not reproduce.
os.environ["RFP_CACHE_DIR"] = "off"

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="session")
def r_lib(tmp_path_factory) -> str:
    """A library holding the R package: R_LIBS as `make test` sets it up, or
    a fresh install of this checkout."""
    lib = os.environ.get("R_LIBS")
    if lib and all((Path(p) / "rfp" / "DESCRIPTION").exists() for p in lib.split(os.pathsep)[:1]):
        return lib
    lib = str(tmp_path_factory.mktemp("Rlib"))
    done = subprocess.run(["R", "CMD", "INSTALL", "--no-test-load", "-l", lib, str(ROOT)],
                          capture_output=True, text=True)
    assert done.returncode == 0, done.stdout + done.stderr
    return lib



@pytest.fixture
def descents(monkeypatch) -> list:
    """The loss of every gradient-descent fit that rfp.effects makes from
    here on (its ``fit_arrays``, counted): nuisances solved directly add
    nothing to the list."""
    from rfp import effects
    seen, gradient_descent = [], effects.fit_arrays

    def counted(*args, **kwargs):
        seen.append(kwargs["loss"])
        return gradient_descent(*args, **kwargs)
    monkeypatch.setattr(effects, "fit_arrays", counted)
    return seen
