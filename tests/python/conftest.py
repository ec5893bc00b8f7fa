import os
import subprocess
import tempfile
from pathlib import Path

import pytest

os.environ.setdefault("JAX_PLATFORMS", "cpu")
# tests never write into the user's real compilation cache (~/.cache/rfp/jax):
# set before any test module imports rfp; subprocesses inherit it
_CACHE = tempfile.TemporaryDirectory(prefix="rfp_jax_cache_")
os.environ["RFP_CACHE_DIR"] = _CACHE.name

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
