"""Documentation lives in the repository: no link or citation leaves it, every
exported R function has a reference page with an example, and the package
installed by `make` carries its vignettes (vignette(package = "rfp") lists
them)."""
from __future__ import annotations

import os
import re
import shutil
import subprocess
from pathlib import Path

import pytest

from conftest import ROOT

RSCRIPT = shutil.which("Rscript")


def tracked_text_files():
    out = subprocess.run(["git", "ls-files"], cwd=ROOT, capture_output=True, text=True)
    if out.returncode != 0:                       # not a git checkout: walk the tree
        skip = {".git", ".venv", ".Rlib", "__pycache__", "out"}
        return [p for p in ROOT.rglob("*") if p.is_file() and not skip & set(p.parts)]
    return [ROOT / line for line in out.stdout.splitlines()]


def test_no_link_or_citation_leaves_the_repository():
    assert (ROOT / "docs" / "DESIGN.md").is_file()
    # the pattern is assembled so that this file does not match `git grep` for it
    shared = "shared"
    outside = re.compile(rf"\.\./{shared}|{shared}/DESIGN|(?<![\w/])DESIGN\.md")
    bad = []
    for path in tracked_text_files():
        if path.suffix in {".gz", ".rda", ".png", ".pdf"} or not path.is_file():
            continue
        try:
            text = path.read_text(encoding="utf-8")
        except UnicodeDecodeError:
            continue
        for number, line in enumerate(text.splitlines(), 1):
            # "DESIGN.md" alone (not docs/DESIGN.md) is a citation of a file that is
            # not at that path; docs/DESIGN.md itself may name its own title.
            if outside.search(line) and path not in (ROOT / "docs" / "DESIGN.md", Path(__file__)):
                bad.append(f"{path.relative_to(ROOT)}:{number}: {line.strip()}")
    assert not bad, "\n".join(bad)


def test_every_exported_function_has_a_page_with_an_example():
    exports = re.findall(r"^export\((.+)\)$", (ROOT / "NAMESPACE").read_text(), re.M)
    reexported = {"tidy", "glance", "autoplot"}           # generics from generics / ggplot2
    pages = {}
    for rd in (ROOT / "man").glob("*.Rd"):
        text = rd.read_text()
        for alias in re.findall(r"\\alias\{([^}]+)\}", text):
            pages[alias] = text
    missing = [f for f in exports if f not in reexported and f not in pages]
    assert not missing, f"exported without a reference page: {missing}"
    no_example = [f for f in exports if f not in reexported and "\\examples{" not in pages[f]]
    assert not no_example, f"reference pages without an example: {no_example}"
    # examples that need Python are wrapped in \donttest (or \dontrun for install_rfp)
    for f in exports:
        if f in reexported:
            continue
        example = pages[f].split("\\examples{", 1)[1]
        if "rfp_available()" in example and f != "rfp_available":
            assert "\\donttest{" in example or "\\dontrun{" in example, f


@pytest.mark.skipif(RSCRIPT is None, reason="Rscript not found")
def test_vignettes_are_installed_with_the_package(r_lib):
    """`make` builds the package with its vignettes: vignette(package = "rfp")
    lists the five, with their rendered HTML."""
    expected = sorted(p.stem for p in (ROOT / "vignettes").glob("*.Rmd"))
    assert len(expected) == 5
    code = ('v <- vignette(package = "rfp")$results; '
            'cat(sort(v[, "Item"]), sep = "\\n"); '
            'cat("--\\n"); cat(file.exists(file.path(system.file("doc", package = "rfp"), '
            'paste0(sort(v[, "Item"]), ".html"))), sep = "\\n")')
    done = subprocess.run([RSCRIPT, "-e", code], capture_output=True, text=True,
                          env={**os.environ, "R_LIBS": r_lib})
    assert done.returncode == 0, done.stderr
    listed, exists = done.stdout.split("--\n")
    assert listed.split() == expected, (
        f"vignette(package = 'rfp') lists {listed.split()} from {r_lib}; install the "
        "package with `make` (it builds the vignettes)")
    assert exists.split() == ["TRUE"] * len(expected)


def test_rbuildignore_leaves_out_what_the_tests_write():
    """`R CMD build` after `make test` must not pack the test runs' folders
    (R CMD check gave a NOTE for .hypothesis, the property tests' database)."""
    patterns = [p for p in (ROOT / ".Rbuildignore").read_text().splitlines() if p.strip()]
    for name in (".hypothesis", ".pytest_cache", ".venv", ".stamp-venv", "tests/python"):
        assert any(re.search(p, name) for p in patterns), name
