# Two entry points (see README): `make run` and `make test`. Both set up .venv first.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
# A CPU build where one is on the machine; any torch >= 2.4 works (set TORCH=torch on a GPU box).
TORCH ?= torch==2.13.0
STAMP := $(VENV)/.installed

.PHONY: setup run test test-fast bench clean

setup: $(STAMP)

# setuptools always adds an "Editable installation" notice for a package-dir layout like ours;
# it is information only (PYTHONWARNINGS below), so a first `make run` shows nothing but the app.
$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	$(BIN)/python -m pip install -q "$(TORCH)"
	PYTHONWARNINGS="ignore:Editable installation" $(BIN)/python -m pip install -q -e ".[test]"
	touch $(STAMP)

run: setup
	$(BIN)/spectrascope

test: setup
	$(BIN)/python -m pytest -q

test-fast: setup
	$(BIN)/python -m pytest -q -m "not integration"

bench: setup  # every benchmark in turn; each prints ours, its baseline and the ratio
	set -e; for b in bench/bench_*.py; do $(BIN)/python $$b; done

clean:
	rm -rf $(VENV) build *.egg-info
