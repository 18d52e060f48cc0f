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
	@# Optional real data for the trainer tests; they skip with a reason where it is absent.
	@[ -d /usr/share/datasets/fashion-mnist ] || { [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null && \
	  (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq dataset-fashion-mnist) >/dev/null 2>&1 ; } || \
	  echo "note: Fashion-MNIST not installed (apt-get install dataset-fashion-mnist); its tests will skip"
	touch $(STAMP)

demo: $(STAMP)
	$(VENV)/bin/mi-estimators list
	$(VENV)/bin/mi-estimators validate --quick --out out/validation

# The lint (ruff: pyflakes and pycodestyle, 120 columns; pyproject.toml), the docstring examples (>>>)
# of the core and both plugins, then the test suite.
test: $(STAMP)
	$(VENV)/bin/ruff check .
	$(PY) -m pytest -q -p no:cacheprovider --doctest-modules mi_estimators plugins/dim/mi_estimators_dim plugins/amdim/mi_estimators_amdim
	$(PY) -m pytest -n 2 --hypothesis-profile=ci

bench: $(STAMP)
	$(PY) benchmarks/bench_nce.py

clean:
	rm -rf $(VENV) out .pytest_cache .hypothesis
