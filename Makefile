# Two commands matter: `make run` (the embedded stack) and `make test` (the whole suite).
# Both set up everything they need from a fresh clone; warm caches make the second time fast.

SHELL := /bin/bash
PYTHON ?= python3
UV_VERSION := 0.13.8
UV := .tools/bin/uv
VENV := .venv
KAFKA_LIBS := infra/kafka/libs
export UV_PROJECT_ENVIRONMENT := $(VENV)

.PHONY: run test test-long test-unit test-integration setup kafka images browser lint docs bench clean

run: setup
	exec $(VENV)/bin/streams dev

test:
	@start=$$(date +%s); \
	$(MAKE) --no-print-directory setup images browser && \
	setup_done=$$(date +%s); \
	echo "== set-up took $$((setup_done - start))s"; \
	$(MAKE) --no-print-directory lint && \
	(cd infra/ably-standin && go test ./...) && \
	(cd bench/loadgen && go vet ./... && go test ./...) && \
	$(VENV)/bin/pytest tests --durations=15; status=$$?; \
	end=$$(date +%s); \
	echo "== set-up took $$((setup_done - start))s, checks and tests took $$((end - setup_done))s"; \
	exit $$status

# Tests that run for many minutes (ten minutes of sustained load); .ci/run runs them beside `make test`.
test-long: setup images
	$(VENV)/bin/pytest tests -m long --durations=5

test-unit: setup
	$(VENV)/bin/pytest tests/unit

test-integration: setup images browser
	$(VENV)/bin/pytest tests/integration

setup: $(VENV)/.synced $(KAFKA_LIBS)/.fetched

$(UV):
	$(PYTHON) -m venv .tools
	.tools/bin/pip install --quiet uv==$(UV_VERSION)

# Bytecode compiled at install (as pip does; uv does not by default): where PYTHONDONTWRITEBYTECODE
# is set, every process would otherwise compile its dependencies at start (0.6 s a worker here).
$(VENV)/.synced: pyproject.toml uv.lock | $(UV)
	$(UV) sync --frozen --quiet --compile-bytecode
	touch $@

# The broker's jars, pinned in infra/kafka/pom.xml, from Maven Central (cached in ~/.m2).
kafka: $(KAFKA_LIBS)/.fetched
$(KAFKA_LIBS)/.fetched: infra/kafka/pom.xml
	rm -rf $(KAFKA_LIBS)
	cd infra/kafka && mvn -q -B dependency:copy-dependencies -DincludeScope=runtime -DoutputDirectory=libs
	touch $@

# Container images for the integration tests, built locally (nothing can be pulled).
images: $(KAFKA_LIBS)/.fetched
	bash infra/docker/ensure-engine.sh
	bash infra/kafka/build-image.sh
	bash infra/ferretdb/build-image.sh
	bash infra/ably-standin/build-image.sh
	@# Containers a killed test run left behind (testcontainers' reaper cannot be pulled here).
	@bash infra/docker/remove-leftovers.sh

# The dashboard's tests drive Debian's Chromium (Playwright's own browser builds cannot be fetched).
browser:
	@command -v chromium >/dev/null || { apt-get update -qq && \
		DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends chromium; }

# Benchmarks are not tests: nothing in `make test` depends on timing.
# `make bench ARGS="--records 10000 --keys 200000"` passes options (python -m bench --help).
bench: setup images
	$(UV) sync --frozen --quiet --compile-bytecode --group bench
	$(VENV)/bin/python -m bench $(ARGS)

# docs/events.md is generated from schemas/ (a unit test fails when it is stale).
docs: setup
	$(VENV)/bin/python -m schemas.docs

lint: setup
	$(VENV)/bin/ruff check streams tests bench schemas
	$(VENV)/bin/mypy

clean:
	rm -rf $(VENV) .tools .build $(KAFKA_LIBS) .pytest_cache .mypy_cache .ruff_cache
