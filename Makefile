# tholos — every target creates .venv itself on first use.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed-stamp
RUN_DIR ?= run/local

.PHONY: run test test-fast lint bench bench-crypto venv clean

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q -e '.[dev]'
	touch $(STAMP)

venv: $(STAMP)

## run: a local demo (see README)
run: $(STAMP)
	$(BIN)/python -m tholos.demo

## test: the whole suite, including the slow multi-process cluster tests
test: $(STAMP)
	$(BIN)/pytest -p no:cacheprovider

## test-fast: unit and property tests only
test-fast: $(STAMP)
	$(BIN)/pytest -p no:cacheprovider -m "not slow"

lint: $(STAMP)
	$(BIN)/ruff check src tests bench
	$(BIN)/ruff format --check src tests bench
	$(BIN)/mypy --strict src/tholos/crypto

## bench: per-operation costs of the threshold protocols, then the cluster benchmark
bench: bench-crypto

bench-crypto: $(STAMP)
	$(BIN)/python bench/crypto_micro.py

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache src/*.egg-info
