# rfp: `make demo` and `make test` set up what is missing, then run.
# Setup is idempotent: stamps make a second run quick.
SHELL := /bin/bash
VENV := .venv
PY := $(VENV)/bin/python
R_DEBS := r-base-core r-cran-reticulate r-cran-testthat r-cran-formula r-cran-knitr \
  r-cran-rmarkdown r-cran-generics r-cran-sandwich r-cran-estimatr r-cran-clubsandwich r-cran-lme4 \
  r-cran-mlmrev r-cran-modeldata r-cran-ggplot2 r-cran-roxygen2 r-cran-quadprog pandoc
SUDO := $(shell [ "$$(id -u)" = 0 ] || echo sudo)
R_SOURCES := $(wildcard DESCRIPTION NAMESPACE R/*.R man/*.Rd data/*.rda vignettes/*.Rmd)

.PHONY: setup demo test quick-test bench clean
setup: .stamp-apt .stamp-venv .stamp-rpkg

# R and the R packages come from Debian (no CRAN here).
.stamp-apt:
	@missing=$$(for p in $(R_DEBS); do dpkg -s $$p >/dev/null 2>&1 || echo $$p; done); \
	python3 -c 'import ensurepip' 2>/dev/null || missing="$$missing python3-venv"; \
	if [ -n "$$missing" ]; then \
	  echo "installing Debian packages: $$missing"; \
	  $(SUDO) apt-get update -qq && DEBIAN_FRONTEND=noninteractive $(SUDO) apt-get install -y -qq $$missing >/dev/null; \
	fi
	@touch $@

$(VENV)/bin/python:
	python3 -m venv $(VENV)
	$(VENV)/bin/pip install -q --upgrade pip

.stamp-venv: pyproject.toml .stamp-apt | $(VENV)/bin/python
	$(VENV)/bin/pip install -q -e '.[test]'
	@touch $@

# The R package, installed into the venv-local library so no root is needed,
# from a tarball built with its vignettes (R CMD build renders them with the
# backend), so that vignette(package = "rfp") lists them. If the vignettes
# fail to build, the package is installed without them and the error shown.
.stamp-rpkg: .stamp-apt .stamp-venv $(R_SOURCES)
	@mkdir -p $(VENV)/Rlib $(VENV)/rbuild && rm -f $(VENV)/rbuild/rfp_*.tar.gz
	@echo "building the R package with its vignettes (a few minutes)"
	@if (cd $(VENV)/rbuild && RFP_PYTHON=$(abspath $(PY)) R CMD build $(CURDIR) >build.log 2>&1); then \
	  R CMD INSTALL --no-test-load -l $(VENV)/Rlib $(VENV)/rbuild/rfp_*.tar.gz >/dev/null 2>&1 || \
	    R CMD INSTALL -l $(VENV)/Rlib $(VENV)/rbuild/rfp_*.tar.gz; \
	else \
	  tail -n 30 $(VENV)/rbuild/build.log; \
	  echo "the vignettes did not build: installing the R package without them"; \
	  R CMD INSTALL --no-test-load -l $(VENV)/Rlib . >/dev/null 2>&1 || R CMD INSTALL -l $(VENV)/Rlib .; \
	fi
	@touch $@

demo: setup
	@if [ -f demo/demo.R ]; then R_LIBS=$(VENV)/Rlib RFP_PYTHON=$(abspath $(PY)) Rscript demo/demo.R; else $(PY) -m rfp.demo; fi

# `make test` (what CI runs) runs everything, the Monte Carlo coverage studies
# marked `slow` included (several minutes); `make quick-test` skips those.
TEST_ENV := R_LIBS=$(abspath $(VENV)/Rlib) RFP_PYTHON=$(abspath $(PY))
test: setup
	$(TEST_ENV) $(PY) -m pytest -q tests/python

quick-test: setup
	$(TEST_ENV) $(PY) -m pytest -q -m "not slow" tests/python

bench: setup
	$(PY) bench/bench_objective.py
	$(PY) bench/bench_dml.py

clean:
	rm -rf $(VENV) .stamp-* *.egg-info python/*.egg-info
