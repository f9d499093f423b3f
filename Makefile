# calotools: `make demo` runs the study, `make test` runs the tests.
#
# Both set up the environment first: an active virtual or conda environment
# that already has calotools and its test tools is used as it is; otherwise a
# local one is made in .venv (once; later runs only check that it is current).

PYTHON ?= python3
VENV   ?= .venv

# An environment counts as suitable when calotools, its stack and its test tools import.
SUITABLE := $(shell if [ -n "$$VIRTUAL_ENV$$CONDA_PREFIX" ] && [ "$$VIRTUAL_ENV" != "$(abspath $(VENV))" ] \
	&& python -c "import calotools, tensorflow, uproot, pytest, nbval" >/dev/null 2>&1; then echo yes; fi)

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

.PHONY: demo test lab bench lint format clean help

help:
	@echo "make demo   set up, then run the study end to end"
	@echo "make test   set up, then run the tests"
	@echo "make lab    start JupyterLab on the notebooks"
	@echo "make bench  run the benchmarks and print their figures"
	@echo "make lint   ruff check + format check"

$(VENV)/.installed: pyproject.toml
	@$(PYTHON) -c 'import sys; sys.exit(sys.version_info < (3, 10))' || \
		{ echo "calotools needs Python >= 3.10; set PYTHON=/path/to/python3.x"; exit 1; }
	@test -x $(VENV)/bin/python || $(PYTHON) -m venv $(VENV)
	$(VENV)/bin/python -m pip install --quiet --upgrade pip
	$(VENV)/bin/python -m pip install --quiet -e '.[dev]'
	@touch $@

demo: $(SETUP)
	$(PY) -m calotools demo

# The unit tests, then every notebook executed in quick mode (nbval).
test: $(SETUP)
	CALOTOOLS_QUICK=1 $(PY) -m pytest tests notebooks --nbval-lax

lab: $(SETUP)
	$(PY) -m jupyter lab notebooks/

bench: $(SETUP)
	@for script in benchmarks/*.py; do echo "== $$script"; $(PY) $$script || exit 1; done

lint: $(SETUP)
	$(PY) -m ruff check calotools tests benchmarks
	$(PY) -m ruff format --check calotools tests benchmarks

clean:
	rm -rf $(VENV) outputs .pytest_cache .ruff_cache
