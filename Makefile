# Two commands on a fresh machine: `make demo` and `make test`. Both create .venv themselves.
PY ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: setup test test-fast lint demo clean

$(STAMP): pyproject.toml Makefile
	test -d $(VENV) || $(PY) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	# torch first, pinned: this CPU wheel is on the machine; a looser pin pulls GBs of CUDA packages.
	$(BIN)/pip install --quiet torch==2.13.0
	$(BIN)/pip install --quiet -e ".[dev]"
	# Test-only: VLMEvalKit's scoring code for the parity test (tests/_vlmeval.py loads its files without
	# importing the package). --no-deps: its requirements pull in model, API and video stacks we never run.
	$(BIN)/pip install --quiet --no-deps ms-vlmeval==0.0.20
	touch $(STAMP)

setup: $(STAMP)

lint: $(STAMP)
	$(BIN)/ruff check sailvl tests
	$(BIN)/ruff format --check sailvl tests

test: lint
	HF_HUB_OFFLINE=1 TRANSFORMERS_OFFLINE=1 $(BIN)/pytest -q --timeout 1200 tests

test-fast: $(STAMP)
	HF_HUB_OFFLINE=1 TRANSFORMERS_OFFLINE=1 $(BIN)/pytest -q -m "not slow" tests

demo: $(STAMP)
	HF_HUB_OFFLINE=1 TRANSFORMERS_OFFLINE=1 $(BIN)/sailvl demo --out runs/demo

clean:
	rm -rf $(VENV) runs .pytest_cache
