# calotools: `make demo` runs the study, `make test` runs the tests.
#
# Both set up the environment first: an active virtual or conda environment
# that already has calotools and its test tools is used as it is; otherwise a
# local one is made in .venv (once; later runs only check that it is current),
# with the exact versions of requirements.lock (`make lock` remakes that file).

PYTHON ?= python3
VENV   ?= .venv
# The core install alone (no TensorFlow, Dask or Jupyter), for the test that
# the core API works without the extras.
CORE_VENV ?= .venv-core
LOCK   := requirements.lock

# An environment counts as suitable when calotools, its stack and its test tools import.
SUITABLE := $(shell if [ -n "$$VIRTUAL_ENV$$CONDA_PREFIX" ] && [ "$$VIRTUAL_ENV" != "$(abspath $(VENV))" ] \
	&& python -c "import calotools, tensorflow, uproot, pytest, nbval, mypy" >/dev/null 2>&1; then echo yes; fi)

ifeq ($(SUITABLE),yes)
PY    := python
SETUP :=
else
PY    := $(VENV)/bin/python
SETUP := $(VENV)/.installed
endif

export PYTHONHASHSEED := 0
# TensorFlow's start-up chatter is noise in a terminal and in CI logs.
export TF_CPP_MIN_LOG_LEVEL := 2

.PHONY: demo test lab bench lint format lock clean help

help:
	@echo "make demo   set up, then run the study end to end"
	@echo "make test   set up, then run the tests, the doctests and the notebooks (quick mode)"
	@echo "make lab    start JupyterLab on the notebooks"
	@echo "make bench  run the benchmarks and print their figures"
	@echo "make lint   ruff check + format check + mypy"
	@echo "make lock   remake requirements.lock from pyproject.toml (newest releases)"

define check_python
	@$(PYTHON) -c 'import sys; sys.exit(sys.version_info < (3, 10))' || \
		{ echo "calotools needs Python >= 3.10; set PYTHON=/path/to/python3.x"; exit 1; }
endef

$(VENV)/.installed: pyproject.toml $(LOCK)
	$(check_python)
	@test -x $(VENV)/bin/python || $(PYTHON) -m venv $(VENV)
	$(VENV)/bin/python -m pip install --quiet --upgrade pip
	$(VENV)/bin/python -m pip install --quiet -c $(LOCK) -e '.[dev]'
	@touch $@

$(CORE_VENV)/.installed: pyproject.toml $(LOCK)
	$(check_python)
	@test -x $(CORE_VENV)/bin/python || $(PYTHON) -m venv $(CORE_VENV)
	$(CORE_VENV)/bin/python -m pip install --quiet --upgrade pip
	$(CORE_VENV)/bin/python -m pip install --quiet -c $(LOCK) -e . pytest
	@touch $@

demo: $(SETUP)
	$(PY) -m calotools demo

# The unit tests, the docstring examples, then every notebook executed in quick
# mode (nbval); tests/test_core_install.py runs the core API in $(CORE_VENV).
test: $(SETUP) $(CORE_VENV)/.installed
	CALOTOOLS_CORE_PYTHON=$(abspath $(CORE_VENV))/bin/python CALOTOOLS_QUICK=1 \
		$(PY) -m pytest tests calotools notebooks --doctest-modules --nbval-lax

lab: $(SETUP)
	$(PY) -m jupyter lab notebooks/

bench: $(SETUP)
	@for script in benchmarks/*.py; do echo "== $$script"; $(PY) $$script || exit 1; done

lint: $(SETUP)
	$(PY) -m ruff check calotools tests benchmarks
	$(PY) -m ruff format --check calotools tests benchmarks
	$(PY) -m mypy

# A fresh environment with the newest releases pyproject.toml allows, frozen.
# Run it to take new releases (then `make test`), and commit requirements.lock.
lock:
	$(check_python)
	rm -rf .venv-lock
	$(PYTHON) -m venv .venv-lock
	.venv-lock/bin/python -m pip install --quiet --upgrade pip
	.venv-lock/bin/python -m pip install --quiet -e '.[dev]'
	{ echo "# Exact versions of every dependency of calotools[dev], for pip's -c (constraints)."; \
	  echo "# Made by 'make lock' with $$(.venv-lock/bin/python --version) on $$(uname -sm); remake it"; \
	  echo "# to take new releases. pyproject.toml holds the lower bounds."; \
	  .venv-lock/bin/python -m pip freeze --exclude-editable | grep -v '^calotools' ; } > $(LOCK).tmp
	mv $(LOCK).tmp $(LOCK)
	rm -rf .venv-lock

clean:
	rm -rf $(VENV) $(CORE_VENV) outputs .pytest_cache .ruff_cache .mypy_cache
