"""The R package, run from pytest.

1. The testthat suite in tests/testthat runs under ``Rscript`` (R hosting
   Python through reticulate, as in RStudio) with RFP_PYTHON set to this
   interpreter, once per session; its results are parsed and reported as one
   pytest item per tests/testthat/test-*.R file: every test must pass, none
   skipped.
2. The pure-R formula layer is checked in-process through rpy2 against
   ``model.matrix`` and against dummies built here.  Only R code that never
   calls back into Python runs this way (docs/DESIGN.md: rpy2 and reticulate do
   not share a process).
"""
from __future__ import annotations

import csv
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

ROOT = Path(__file__).resolve().parents[2]
RSCRIPT = shutil.which("Rscript")
pytestmark = pytest.mark.skipif(RSCRIPT is None, reason="Rscript not found: R is not installed")


TESTTHAT = ROOT / "tests" / "testthat"
R_TEST_FILES = sorted(p.name for p in TESTTHAT.glob("test-*.R"))


@pytest.fixture(scope="module")
def testthat_run(r_lib, tmp_path_factory):
    """The whole testthat suite in one R process (R, reticulate and the
    backend start once, not once per file); its results per test, as
    (exit status, rows of the results table, R's output)."""
    results = tmp_path_factory.mktemp("testthat") / "results.csv"
    code = f"""
        res <- testthat::test_dir({str(TESTTHAT)!r}, package = "rfp",
                                  load_package = "installed", reporter = "summary",
                                  stop_on_failure = FALSE)
        df <- as.data.frame(res)
        utils::write.csv(df[c("file", "test", "nb", "failed", "skipped", "error", "passed")],
                         {str(results)!r}, row.names = FALSE)
    """
    env = {**os.environ, "R_LIBS": r_lib, "RFP_PYTHON": os.environ.get("RFP_PYTHON", sys.executable),
           "JAX_PLATFORMS": "cpu", "NOT_CRAN": "true"}
    done = subprocess.run([RSCRIPT, "-e", code], capture_output=True, text=True, env=env,
                          cwd=ROOT, timeout=1800)
    output = f"--- R output ---\n{done.stdout}\n{done.stderr}"
    rows = []
    if results.exists():
        with open(results, newline="") as f:
            rows = list(csv.DictReader(f))
    return done.returncode, rows, output


def test_testthat_suite_runs_under_rscript(testthat_run):
    """The suite as a whole: R exits cleanly, every test-*.R file reports,
    and the counts have not shrunk."""
    returncode, rows, output = testthat_run
    assert returncode == 0, output
    assert len(rows) >= 20, output
    assert sorted({r["file"] for r in rows}) == R_TEST_FILES, output
    assert sum(int(r["passed"]) for r in rows) > 100, output
    assert "max |R - Python| prediction difference" in output, output


@pytest.mark.parametrize("file", R_TEST_FILES)
def test_testthat_file_passes(testthat_run, file):
    """One pytest item per R test file: each of its tests ran, passed its
    expectations and was not skipped (the backend must be found)."""
    returncode, rows, output = testthat_run
    mine = [r for r in rows if r["file"] == file]
    assert mine, f"{file}: no results (R exit status {returncode})\n{output}"
    failed = [r["test"] for r in mine if int(r["failed"]) > 0 or r["error"] == "TRUE"]
    skipped = [r["test"] for r in mine if r["skipped"] == "TRUE"]
    assert not failed, f"failed R tests in {file}: {failed}\n{output}"
    assert not skipped, f"skipped R tests in {file} (the backend should be found): {skipped}\n{output}"


@pytest.fixture(scope="module")
def r(r_lib):
    """Embedded R through rpy2, with the package's library on the path."""
    ro = pytest.importorskip("rpy2.robjects")
    ro.r(f".libPaths(c({r_lib.split(os.pathsep)[0]!r}, .libPaths()))")
    ro.r("""
        set.seed(3)
        df <- data.frame(y = rnorm(40), x1 = rnorm(40), x2 = runif(40, 1, 2),
                         f = sample(c("a", "b", "c"), 40, replace = TRUE),
                         g = rep(c("s1", "s2", "s3", "s4"), each = 10))
    """)
    return ro


def r_matrix(ro, expr: str) -> np.ndarray:
    return np.asarray(ro.r(f"unname(as.matrix({expr}))"), dtype=float)


@pytest.mark.parametrize("rhs", ["x1 + f", "x1 * f + I(x2^2)", "log(x2) + x1:x2", "."])
def test_formula_layer_matches_model_matrix(r, rhs):
    r.r(f"d <- rfp::rfp_design(y ~ {rhs} | g, df)")
    data = "df[setdiff(names(df), 'g')]"
    r.r(f"mm <- model.matrix(lm(y ~ {rhs}, {data}))[, -1, drop = FALSE]")
    np.testing.assert_array_equal(r_matrix(r, "d$x"), r_matrix(r, "mm"))
    assert list(r.r("d$x_names")) == list(r.r("colnames(mm)"))
    columns = list(r.r("d$columns"))
    assert columns == list(r.r("make.names(d$columns)")) and len(set(columns)) == len(columns)
    assert list(r.r("d$cluster")) == list(r.r("df$g"))


def test_formula_layer_dummies_match_python(r):
    r.r("d <- rfp::rfp_design(y ~ x1 + f | g, df)")
    f = np.asarray(r.r("df$f"))
    expected = np.column_stack([np.asarray(r.r("df$x1")), f == "b", f == "c"]).astype(float)
    np.testing.assert_array_equal(r_matrix(r, "d$x"), expected)
    # new data with one level only keeps the training columns
    r.r("nd <- data.frame(x1 = c(0.5, 1.5), f = c('c', 'c'))")
    np.testing.assert_array_equal(r_matrix(r, "rfp::rfp_design_matrix(d, nd)"),
                                  [[0.5, 0, 1], [1.5, 0, 1]])


def test_formula_layer_errors_say_what_to_do(r):
    msg = r.r("tryCatch(rfp::rfp_design(y ~ x1, df), error = conditionMessage)")[0]
    assert "add `| cluster`" in msg
    r.r("df2 <- df; df2$x1[c(2, 5)] <- NA")
    msg = r.r("tryCatch(rfp::rfp_design(y ~ x1 | g, df2), error = conditionMessage)")[0]
    assert "column 'x1' has 2 missing value(s)" in msg
    n = r.r("nrow(suppressMessages(rfp::rfp_design(y ~ x1 | g, df2, na.action = na.omit))$x)")[0]
    assert n == 38
    # the formula layer never started Python from R
    assert not r.r("isNamespaceLoaded('reticulate') && reticulate::py_available()")[0]
