# rfp: `make demo` and `make test` set up what is missing, then run.
# Setup is idempotent: stamps make a second run quick.
SHELL := /bin/bash
VENV := .venv
PY := $(VENV)/bin/python
R_DEBS := r-base-core r-cran-reticulate r-cran-testthat r-cran-formula r-cran-knitr \
  r-cran-rmarkdown r-cran-generics r-cran-sandwich r-cran-estimatr r-cran-clubsandwich r-cran-lme4 \
  r-cran-mlmrev r-cran-ggplot2 r-cran-roxygen2 r-cran-quadprog pandoc
SUDO := $(shell [ "$$(id -u)" = 0 ] || echo sudo)
R_SOURCES := $(wildcard DESCRIPTION NAMESPACE R/*.R man/*.Rd data/*.rda)

.PHONY: setup demo test bench clean
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

# The R package, installed into the venv-local library so no root is needed.
.stamp-rpkg: .stamp-apt $(R_SOURCES)
	@if [ -f DESCRIPTION ]; then mkdir -p $(VENV)/Rlib && R CMD INSTALL --no-test-load -l $(VENV)/Rlib . >/dev/null 2>&1 || R CMD INSTALL -l $(VENV)/Rlib .; fi
	@touch $@

demo: setup
	@if [ -f demo/demo.R ]; then R_LIBS=$(VENV)/Rlib RFP_PYTHON=$(abspath $(PY)) Rscript demo/demo.R; else $(PY) -m rfp.demo; fi

test: setup
	R_LIBS=$(abspath $(VENV)/Rlib) RFP_PYTHON=$(abspath $(PY)) $(PY) -m pytest -q tests/python

bench: setup
	$(PY) bench/bench_objective.py

clean:
	rm -rf $(VENV) .stamp-* *.egg-info python/*.egg-info
