# Two commands: `make demo` (install + run the demo) and `make test` (install + run tests).
PYTHON ?= python3
VENV   := .venv
PY     := $(VENV)/bin/python
PIP    := $(PY) -m pip --disable-pip-version-check
# uv (from PyPI) installs the ~6 GB of wheels in about a minute, pip in 2.5-4.5 minutes;
# pip remains the fallback where uv cannot be installed or fails.
UV     := $(VENV)/bin/uv
INSTALL = $(UV) pip install --python $(PY) -q $(1) || $(PIP) install -q $(1)
export MLFLOW_DISABLE_TELEMETRY := true

.PHONY: demo test install install-test system-deps lint clean

$(VENV)/bin/activate:
	$(PYTHON) -m venv $(VENV)
	-$(PIP) install -qq uv

$(VENV)/.installed: pyproject.toml | $(VENV)/bin/activate
	$(call INSTALL,-e .)
	touch $@

$(VENV)/.installed-test: pyproject.toml $(VENV)/.installed
	$(call INSTALL,-e '.[test]')
	touch $@

install: $(VENV)/.installed

install-test: $(VENV)/.installed-test

# Debian tools the tests use as references (dcm2niix, dciodvfy); installed when missing.
system-deps:
	@bash scripts/install_system_deps.sh

demo: install
	$(VENV)/bin/medseg demo --overwrite

lint: install-test
	$(VENV)/bin/ruff check medseg tests benchmarks
	$(VENV)/bin/ruff format --check medseg tests benchmarks
	$(VENV)/bin/lint-imports

test: install-test system-deps
	$(VENV)/bin/ruff check medseg tests benchmarks
	$(VENV)/bin/ruff format --check medseg tests benchmarks
	$(VENV)/bin/lint-imports
	$(PY) -m pytest

clean:
	rm -rf $(VENV) medseg-demo .pytest_cache .ruff_cache
