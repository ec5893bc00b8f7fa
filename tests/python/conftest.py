import os
import subprocess
from pathlib import Path

import pytest

os.environ.setdefault("JAX_PLATFORMS", "cpu")
# The tests never write into the user's compilation cache: the persistent
# cache is off in the session and its subprocesses (test_cache.py turns it on
# in its own).
os.environ["RFP_CACHE_DIR"] = "off"


@pytest.fixture(autouse=True, scope="module")
def free_compiled_programs():
    """After each test file, drop JAX's compiled programs.  Every executable
    XLA:CPU loads holds memory mappings, and the process keeps them: two test
    files took the pytest process from 40 to 18,000 mappings, and the whole
    suite went past the kernel's limit (vm.max_map_count, 65,530), where the
    next compilation or cache read crashed with a segfault in test_tune.py."""
    yield
    import gc
    import jax
    gc.collect()
    jax.clear_caches()
    gc.collect()

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
    from rfp.effects import crossfit, estimators
    seen, gradient_descent = [], crossfit.fit_arrays

    def counted(*args, **kwargs):
        seen.append(kwargs["loss"])
        return gradient_descent(*args, **kwargs)
    monkeypatch.setattr(crossfit, "fit_arrays", counted)
    monkeypatch.setattr(estimators, "fit_arrays", counted)
    return seen
