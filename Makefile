# Two commands on a fresh machine: `make demo` (closed-form validation of every bound) and `make test`.
PYTHON ?= python3
VENV   := .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.installed

.PHONY: setup demo test bench clean

setup: $(STAMP)

# torch 2.13.0 first: a CPU build from local disk. An unpinned torch would pull a multi-GB CUDA build.
$(STAMP): pyproject.toml plugins/dim/pyproject.toml plugins/amdim/pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q -U pip
	$(PY) -m pip install -q torch==2.13.0
	$(PY) -m pip install -q -e . -e plugins/dim -e plugins/amdim --group dev
	touch $(STAMP)

demo: $(STAMP)
	$(VENV)/bin/mi-estimators list
	$(VENV)/bin/mi-estimators validate --quick --out out/validation

test: $(STAMP)
	$(PY) -m pytest -n 2 --hypothesis-profile=ci

bench: $(STAMP)
	$(PY) benchmarks/bench_nce.py

clean:
	rm -rf $(VENV) out .pytest_cache .hypothesis
