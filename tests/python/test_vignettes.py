"""Every vignette renders from this checkout, and says what it claims.

Each vignette in ``vignettes/`` is rendered with rmarkdown (Debian's pandoc)
under ``Rscript``, with the R package from ``make test`` and this
interpreter as its backend.  Vignettes that print numbers the issue asks
for also write them as CSV when ``RFP_VIGNETTE_OUT`` is set; the checks
below read those files:

* tragic triad: in the low-overlap design, the method's mean held-out
  error is below MAML's and below the kernel smoother's (bandwidth by the
  usual leave-one-out cross-validation); the seeds (0 to 4) were fixed in
  the vignette before the numbers were seen.  The leave-cluster-out kernel
  is *not* asserted against: over 40 samples it is level with the method
  (validation/TRAGIC_TRIAD.md).
* Catholic schools: every row of the comparison has a finite estimate and
  standard error, and the fixed-effects row equals ``lm`` + ``sandwich::vcovCL``
  computed here, independently, through rpy2.

Render times are printed (``-s`` shows them); CI's budget for the whole set
is 10 minutes, which is not asserted (machines are noisy).
"""
from __future__ import annotations

import csv
import os
import shutil
import subprocess
import sys
import time

import pytest

from conftest import ROOT

RSCRIPT = shutil.which("Rscript")
pytestmark = pytest.mark.skipif(RSCRIPT is None or shutil.which("pandoc") is None,
                                reason="Rscript or pandoc not found")
VIGNETTES = sorted(p.stem for p in (ROOT / "vignettes").glob("*.Rmd"))


@pytest.fixture(scope="module")
def rendered(r_lib, tmp_path_factory):
    """Render every vignette once; returns (output folder, {name: (rc, log, seconds)})."""
    out = tmp_path_factory.mktemp("vignettes")
    env = {**os.environ, "R_LIBS": r_lib, "JAX_PLATFORMS": "cpu",
           "RFP_PYTHON": os.environ.get("RFP_PYTHON", sys.executable),
           "RFP_VIGNETTE_OUT": str(out)}
    results = {}
    for name in VIGNETTES:
        code = (f"rmarkdown::render({str(ROOT / 'vignettes' / (name + '.Rmd'))!r}, "
                f"output_dir = {str(out)!r}, intermediates_dir = {str(out)!r}, quiet = TRUE)")
        start = time.time()
        done = subprocess.run([RSCRIPT, "-e", code], capture_output=True, text=True, env=env,
                              cwd=out, timeout=900)
        results[name] = (done.returncode, done.stdout + done.stderr, time.time() - start)
    total = sum(r[2] for r in results.values())
    print("\nvignette render times: " + ", ".join(f"{k} {v[2]:.0f}s" for k, v in results.items())
          + f"; total {total:.0f}s")
    return out, results


def read_csv(path):
    with open(path, newline="") as f:
        return list(csv.DictReader(f))


def test_there_are_five_vignettes():
    assert VIGNETTES == ["catholic-schools", "getting-started", "high-dimensions",
                         "text-data", "tragic-triad"]


@pytest.mark.parametrize("name", VIGNETTES)
def test_vignette_renders_with_the_backend_and_figures(rendered, name):
    out, results = rendered
    rc, log, _ = results[name]
    assert rc == 0, f"{name} failed to render:\n{log[-4000:]}"
    html = (out / f"{name}.html").read_text()
    assert "was not found when this page was built" not in html, "backend not found"
    assert html.count("<img") >= 1, f"{name} has no figure"
    assert "#&gt; Error" not in html and "#> Error" not in html, f"{name} shows an R error"


def test_tragic_triad_numbers_under_the_figure(rendered):
    out, results = rendered
    assert results["tragic-triad"][0] == 0
    rows = read_csv(out / "tragic_triad_summary.csv")
    low = {r["method"]: float(r["mse"]) for r in rows if r["overlap"] == "low"}
    assert set(low) == {"kernel regression", "kernel (leave-one-out CV)", "MAML (alpha = 0)",
                        "the method (alpha = 0.5)", "ERM (alpha = 1)"}
    method = low["the method (alpha = 0.5)"]
    assert method < low["MAML (alpha = 0)"], low
    assert method < low["kernel (leave-one-out CV)"], low
    # the sentence under the table reads the same numbers
    text = " ".join((out / "tragic-triad.html").read_text().split())
    assert f"({method:.3f}) is below MAML" in text, low
    errors = read_csv(out / "tragic_triad_errors.csv")
    assert len(errors) == 2 * 5 * 5   # overlap x seed x method


def test_text_data_table_reads_as_its_numbers(rendered):
    """tate_text: rfp (tuned, text) against a bag-of-words ridge and the mean
    on held-out artists.  The table reports wins, ties and losses as they
    come; what is asserted is that it is consistent (the paired difference of
    the same rows is the difference of the MSEs, the verdict follows the 2-SE
    rule) and the vignette's one claim: the default is not worse than the mean."""
    out, results = rendered
    assert results["text-data"][0] == 0
    rows = {r["method"]: r for r in read_csv(out / "text-data.csv")}
    assert set(rows) == {"rfp", "ridge", "mean"}
    mse = {m: float(r["mse"]) for m, r in rows.items()}
    for m in ("ridge", "mean"):
        diff, se = float(rows[m]["rfp_minus"]), float(rows[m]["se"])
        assert abs(diff - (mse["rfp"] - mse[m])) < 1e-8 * mse[m]
        assert se > 0
        verdict = "better" if diff < -2 * se else "worse" if diff > 2 * se else "tied"
        assert rows[m]["rfp_is"] == verdict
    assert rows["mean"]["rfp_is"] != "worse", rows


def test_catholic_schools_table_and_fixed_effects_equal_lm_vcovcl(rendered):
    out, results = rendered
    assert results["catholic-schools"][0] == 0
    rows = read_csv(out / "catholic_schools_compare.csv")
    got = {(r["method"], r["estimand"]): r for r in rows}
    assert set(got) == {("fixed_effects", "OLS"), ("entropy_balancing", "ATT"),
                        ("cluster_balancing", "ATT"), ("dml", "PLM"), ("aipw", "ATE"),
                        ("aipw", "ATT")}
    for r in rows:
        assert float(r["std.error"]) > 0 and abs(float(r["estimate"])) < 10, r
        assert r["clusters"] == "160" and r["n"] == "7185", r
    ro = pytest.importorskip("rpy2.robjects")
    ro.r("""
        suppressMessages(library(sandwich))
        data(Hsb82, package = "mlmRev")
        h <- data.frame(y = Hsb82$mAch, d = as.integer(Hsb82$sector == "Catholic"),
                        ses = Hsb82$ses, minority = as.integer(Hsb82$minrty == "Yes"),
                        female = as.integer(Hsb82$sx == "Female"), school_ses = Hsb82$meanses,
                        school = Hsb82$school)
        h$school_minority <- ave(h$minority, h$school)
        ols <- lm(y ~ d + ses + minority + female + school_ses + school_minority, data = h)
        reference <- c(coef(ols)[["d"]],
                       sqrt(vcovCL(ols, cluster = ~ school, type = "HC1")["d", "d"]))
    """)
    estimate, se = list(ro.r("reference"))
    fe = got[("fixed_effects", "OLS")]
    assert abs(float(fe["estimate"]) - estimate) < 1e-8
    assert abs(float(fe["std.error"]) - se) < 1e-8
