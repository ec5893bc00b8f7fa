"""The R package calls Python through one module, ``rfp.facade``.

R imports no other Python module (no ``numpy``, ``pyarrow``, ``warnings``,
builtins or other ``rfp`` submodules), runs no Python source of its own
(``py_run_*``, ``py_eval``), and every facade function it names exists, with
a one-line docstring (docs/DESIGN.md, "The R-Python boundary").
"""
from __future__ import annotations

import inspect
import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
R_FILES = sorted((ROOT / "R").glob("*.R"))

FACADE = "rfp.facade"

# Calls that load a Python module or run Python code from R, and how the
# module (or code) is named: the first string argument.
LOADERS = ("import", "import_from_path", "py_module_available", "py_get_attr")
# Calls that run Python code or import a module R cannot name: none allowed.
FORBIDDEN = ("import_builtins", "import_main", "py_run_string", "py_run_file", "py_eval",
             "source_python")

# What could not be routed through the facade, each with its reason: none.
ALLOWED: dict[tuple[str, str, str], str] = {}


def r_code(path: Path) -> str:
    """The file without comment lines (roxygen included) and trailing comments."""
    lines = []
    for line in path.read_text().splitlines():
        if line.lstrip().startswith("#"):
            continue
        lines.append(re.sub(r"""#[^"']*$""", "", line))
    return "\n".join(lines)


def calls(code: str, name: str):
    """The first argument (as written) of every call of ``name`` (with or without reticulate::)."""
    pattern = rf"(?<![\w.$]){name}\s*\(\s*([^,)]*)"
    return [m.group(1).strip() for m in re.finditer(pattern, code)]


def test_r_files_found():
    assert len(R_FILES) > 10


@pytest.mark.parametrize("path", R_FILES, ids=lambda p: p.name)
def test_r_imports_only_the_facade(path):
    code = r_code(path)
    for loader in LOADERS:
        for target in calls(code, loader):
            if loader == "py_get_attr":
                # py_get_attr(object, "name"): the object must be the facade
                assert (path.name, loader, target) in ALLOWED or "facade" in target, \
                    f"{path.name}: py_get_attr on {target} (only the facade's attributes)"
                continue
            assert target.strip("\"'") == FACADE or (path.name, loader, target) in ALLOWED, \
                f"{path.name}: {loader}({target}); R imports only {FACADE}"
    for name in FORBIDDEN:
        found = calls(code, name)
        assert not found, f"{path.name}: {name}() runs or imports Python outside the facade"


def test_the_backend_imports_the_facade_once():
    code = "\n".join(r_code(p) for p in R_FILES)
    assert calls(code, "import") == [f'"{FACADE}"']


def facade_names() -> dict[str, list[str]]:
    """Every ``facade$name`` the R files use, with the files that use it."""
    out: dict[str, list[str]] = {}
    for path in R_FILES:
        for name in re.findall(r"facade\$(\w+)", r_code(path)):
            out.setdefault(name, []).append(path.name)
    return out


def test_r_calls_the_facade():
    names = facade_names()
    for wanted in ("fit", "tune", "effect", "compare", "balance", "heterogeneity",
                   "call_with_warnings", "validate_settings", "weighted_att",
                   "t_learner_estimate", "from_buffer"):
        assert wanted in names, f"R no longer calls facade${wanted}"


def test_every_facade_function_r_calls_exists():
    facade = pytest.importorskip(FACADE)
    for name, files in facade_names().items():
        assert callable(getattr(facade, name, None)), \
            f"{', '.join(sorted(set(files)))} call facade${name}, which rfp.facade lacks"


def test_facade_functions_have_one_line_docstrings():
    facade = pytest.importorskip(FACADE)
    functions = [(n, f) for n, f in vars(facade).items()
                 if inspect.isfunction(f) and not n.startswith("_")
                 and f.__module__ == facade.__name__]
    assert len(functions) > 20
    for name, f in functions:
        doc = inspect.getdoc(f) or ""
        assert doc and "\n" not in doc, f"facade.{name}: one-line docstring wanted"


def test_weighted_att_interval_at_its_level():
    np = pytest.importorskip("numpy")
    facade = pytest.importorskip(FACADE)
    from scipy import stats
    rng = np.random.default_rng(0)
    g = np.repeat(np.arange(8), 5)
    d = (g % 2).astype(float)
    y = d + rng.normal(size=len(g))
    w = np.ones(len(g))
    for level in (0.95, 0.9):
        att = facade.weighted_att(y, d, w, g, [rng.normal(size=len(g))], level=level)
        q = stats.t.ppf(0.5 + level / 2, 7)
        assert att["level"] == level
        assert att["conf.low"] == pytest.approx(att["estimate"] - q * att["std.error"], rel=1e-12)
        assert att["conf.high"] == pytest.approx(att["estimate"] + q * att["std.error"], rel=1e-12)
    nan = facade.weighted_att(y, d, np.full(len(g), np.nan), g)
    assert np.isnan(nan["estimate"]) and np.isnan(nan["conf.low"]) and nan["level"] == 0.95


def test_call_with_warnings_returns_value_and_warnings():
    import warnings
    facade = pytest.importorskip(FACADE)

    def f(x, scale=1):
        warnings.warn("first", UserWarning)
        warnings.warn("first", UserWarning)   # "always": both recorded
        return x * scale

    value, caught = facade.call_with_warnings(f, 2, scale=3)
    assert value == 6
    assert [w["message"] for w in caught] == ["first", "first"]
    assert caught[0]["category"] == "UserWarning" and caught[0]["module"] == "builtins"
