# The two commands a new user needs: `make demo` and `make test`.
# Each creates .venv with the Python found as $(PYTHON) (3.10 or later).

PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
PIP := $(BIN)/python -m pip install --quiet --disable-pip-version-check

.PHONY: demo test lint typecheck unit bench clean

$(BIN)/python:
	@$(PYTHON) -c 'import sys; sys.exit(0 if sys.version_info >= (3, 10) else "agentcore-bridge needs Python 3.10 or later: run make with PYTHON=python3.x")'
	$(PYTHON) -m venv $(VENV)

$(VENV)/.demo-installed: $(BIN)/python pyproject.toml
	$(PIP) -e '.[server]'
	@touch $@

$(VENV)/.test-installed: $(BIN)/python pyproject.toml requirements-dev.txt
	$(PIP) -e '.[server]' -r requirements-dev.txt
	@touch $@ $(VENV)/.demo-installed

# The demo's page port: make demo DEMO_PORT=8001 when 8000 is taken.
DEMO_PORT ?= 8000

demo: $(VENV)/.demo-installed
	$(BIN)/agentcore-bridge demo --port $(DEMO_PORT)

test: $(VENV)/.test-installed lint typecheck unit

lint: $(VENV)/.test-installed
	$(BIN)/ruff check src tests benchmarks examples
	$(BIN)/ruff format --check src tests benchmarks examples

typecheck: $(VENV)/.test-installed
	$(BIN)/mypy src

unit: $(VENV)/.test-installed
	$(BIN)/python -m pytest

bench: $(VENV)/.test-installed
	$(BIN)/python benchmarks/sigv4.py

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache .hypothesis
