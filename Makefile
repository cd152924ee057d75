# tholos — every target creates .venv itself on first use.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed-stamp
RUN_DIR ?= run/local

.PHONY: run stop test test-fast lint bench bench-crypto bench-cluster bench-report venv clean openapi lock sbom wheel reproducible
LOCK   := requirements/lock.txt
DIST   := dist
# Reproducible builds: file times in the wheel come from the last commit, not the clock.
SOURCE_DATE_EPOCH ?= $(shell git log -1 --format=%ct 2>/dev/null || echo 315532800)
export SOURCE_DATE_EPOCH

# Every dependency (runtime, dev, build backend) comes from the lock, checked against its hashes;
# tholos itself is installed without resolving anything more.
$(STAMP): pyproject.toml $(LOCK)
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --require-hashes -r $(LOCK)
	$(BIN)/pip install -q --no-deps --no-build-isolation -e .
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
	$(BIN)/mypy --strict src/tholos
	PYTHONPATH=src $(BIN)/lint-imports

## bench: per-operation costs of the threshold protocols, then the cluster benchmark
bench: bench-crypto bench-cluster

bench-crypto: $(STAMP)
	$(BIN)/python -m tholos.bench.micro

## bench-cluster: real local clusters (n=4/t=2, n=7/t=3), all processes on this machine (~3 min)
bench-cluster: $(STAMP)
	$(BIN)/python -m tholos bench

## bench-report: every benchmark from one run (cluster 4:2 and 7:3, --wan, scale, micro) beside
## the old tree's cluster bench; rewrites the README table and docs/bench charts. Run it on a quiet
## machine (~20 min on 2 cores). BENCH_OLD=REV picks the old tree, BENCH_KEYS the scale bench's keys.
BENCH_OLD  ?= 965f811
BENCH_KEYS ?= 100000
bench-report: $(STAMP)
	$(BIN)/python -m tholos.bench.report --old-tree $(BENCH_OLD) --keys $(BENCH_KEYS) \
		--out bench-report --update-readme README.md --plot docs/bench

## lock: re-pin every dependency with hashes after pyproject.toml (or requirements/build.in) changed
lock: $(STAMP)
	$(BIN)/uv pip compile --native-tls pyproject.toml requirements/build.in --extra dev \
		--generate-hashes --python-version 3.11 --universal -o $(LOCK)

## sbom: a CycloneDX JSON SBOM of the installed environment, in $(DIST)/sbom.cdx.json
sbom: $(STAMP)
	mkdir -p $(DIST)
	$(BIN)/cyclonedx-py environment --pyproject pyproject.toml --output-reproducible \
		--of JSON -o $(DIST)/sbom.cdx.json $(BIN)/python

## wheel: the wheel, built with the locked backend and SOURCE_DATE_EPOCH, into $(DIST)
wheel: $(STAMP)
	rm -rf build $(DIST)/*.whl
	$(BIN)/pip wheel -q --no-deps --no-build-isolation -w $(DIST) .

## reproducible: build the wheel twice into two folders; fail unless the SHA-256 digests agree
reproducible: $(STAMP)
	rm -rf build $(DIST)/repro-a $(DIST)/repro-b
	$(BIN)/pip wheel -q --no-deps --no-build-isolation -w $(DIST)/repro-a .
	rm -rf build
	$(BIN)/pip wheel -q --no-deps --no-build-isolation -w $(DIST)/repro-b .
	cd $(DIST) && sha256sum repro-a/*.whl repro-b/*.whl
	cd $(DIST) && test "$$(sha256sum repro-a/*.whl | cut -d' ' -f1)" = \
		"$$(sha256sum repro-b/*.whl | cut -d' ' -f1)" \
		|| { echo "wheel NOT reproducible: the two builds differ"; exit 1; }
	@echo "wheel reproducible (SOURCE_DATE_EPOCH=$(SOURCE_DATE_EPOCH))"

clean:
	rm -rf $(VENV) $(DIST) build .pytest_cache .mypy_cache .ruff_cache src/*.egg-info

## openapi: rewrite docs/openapi.json from the live app (a test fails when it is stale)
openapi: $(STAMP)
	$(BIN)/python -m tholos.gateway.api
