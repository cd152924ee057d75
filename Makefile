# tholos — every target creates .venv itself on first use.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed-stamp
RUN_DIR ?= run/local

.PHONY: run stop test test-fast lint bench bench-crypto bench-cluster venv clean openapi

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q -e '.[dev]'
	touch $(STAMP)

venv: $(STAMP)

## run: initialise (once) and start a local 4-node, threshold-2 cluster + gateway, then a demo
run: $(STAMP)
	$(BIN)/python -m tholos.demo

## stop: stop the local cluster that `make run` left running
stop: $(STAMP)
	$(BIN)/tholos cluster down --dir $(RUN_DIR)

## test: the whole suite, including the slow multi-process cluster tests
test: $(STAMP)
	$(BIN)/pytest -p no:cacheprovider

## test-fast: unit and property tests only
test-fast: $(STAMP)
	$(BIN)/pytest -p no:cacheprovider -m "not slow"

## lint: ruff, mypy --strict, and the layer and no-circle contracts (pyproject [tool.importlinter])
lint: $(STAMP)
	$(BIN)/ruff check src tests
	$(BIN)/ruff format --check src tests
	$(BIN)/mypy --strict src/tholos/crypto src/tholos/governance src/tholos/audit \
		src/tholos/node src/tholos/gateway src/tholos/transport src/tholos/cluster \
		src/tholos/cli src/tholos/bench src/tholos/schemes src/tholos/chains \
		src/tholos/client.py src/tholos/demo.py
	PYTHONPATH=src $(BIN)/lint-imports

## bench: per-operation costs of the threshold protocols, then the cluster benchmark
bench: bench-crypto bench-cluster

bench-crypto: $(STAMP)
	$(BIN)/python -m tholos.bench.micro

## bench-cluster: real local clusters (n=4/t=2, n=7/t=3), all processes on this machine (~3 min)
bench-cluster: $(STAMP)
	$(BIN)/python -m tholos bench

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache src/*.egg-info

## openapi: rewrite docs/openapi.json from the live app (a test fails when it is stale)
openapi: $(STAMP)
	$(BIN)/python -m tholos.gateway.openapi
