# Everything a fresh machine needs is installed from this file, idempotently.
# Only Python 3.11 and access to the package registries are assumed.
PYTHON ?= python3.11
VENV   := .venv
BIN    := $(VENV)/bin
UV     := $(BIN)/uv
export UV_PYTHON_DOWNLOADS := never
export UV_PROJECT_ENVIRONMENT := $(VENV)

.PHONY: install run test test-unit integration lint fmt gen docs clean bench bench-components reliability h2load

include mk/guest-toolchain.mk
include mk/images.mk

install: $(VENV)/.installed

$(VENV)/.installed: pyproject.toml uv.lock
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	test -x $(UV) || $(BIN)/pip install --quiet "uv==0.13.9"
	$(UV) sync --frozen --python $(BIN)/python
	touch $@

## Serve the embedded default (example extensions, dev settings) on :8080.
run: install
	$(BIN)/extensions-runtime serve --dev --host 127.0.0.1 --port 8080

## Lint, type-check and run every test (installs the guest toolchain first).
test: install guest-toolchain lint
	$(BIN)/pytest

## The rollout suite (tests/rollout): MODE=local (default) starts the service, S3 and
## tokens on loopback; MODE=cluster runs against a deployment named by INTEGRATION_*
## variables (README, "Integration suite: two modes").
integration: install
	$(BIN)/python tools/integration.py --mode $(or $(MODE),local)

## The fast loop: tests that start no server, subprocess or external tool (no installs
## beyond the venv). `make test` is still everything, and what CI runs.
test-unit: install
	$(BIN)/pytest -m "not integration" -q

## Benchmark the service against its same-run baselines (protocol floor, in-process
## sandbox); prints a table and writes bench/results/latest.json (bench/README.md), then
## the components (hello-py, hello-js): bench/results/components.{json,md}.
bench: install h2load
	$(BIN)/python bench/run.py
	$(BIN)/python bench/components.py

## Only the components' rows (hello-py, hello-js): bench/results/components.{json,md}.
bench-components: install
	$(BIN)/python bench/components.py

## Noisy neighbour, soak and injected faults against the real service (~10 min);
## writes bench/results/reliability.json (docs/reliability.md). QUICK=1: ~3 min.
reliability: install h2load
	$(BIN)/python bench/reliability.py $(if $(QUICK),--quick)

## h2load (Debian nghttp2-client): the C load generator the benchmarks drive good
## traffic with, so the figures do not measure a starved Python client.
h2load:
	@if command -v h2load >/dev/null; then \
	  echo "h2load: $$(h2load --version | head -1) already installed"; \
	else \
	  command -v apt-get >/dev/null || { echo "h2load: needs apt-get (Debian/Ubuntu) to install nghttp2-client" >&2; exit 1; }; \
	  echo "h2load: installing nghttp2-client"; \
	  $(if $(filter 0,$(shell id -u)),,sudo) apt-get update -q && \
	  DEBIAN_FRONTEND=noninteractive $(if $(filter 0,$(shell id -u)),,sudo) apt-get install -y -q --no-install-recommends nghttp2-client; \
	fi

lint: install
	$(BIN)/ruff check app tests bench examples tools clients/python
	$(BIN)/ruff format --check app tests bench examples tools clients/python
	$(BIN)/mypy app
	$(BIN)/mypy clients/python/src
	$(BIN)/buf lint
	$(BIN)/hadolint Dockerfile.dev Dockerfile.release

fmt: install
	$(BIN)/ruff check --fix app tests bench examples tools clients/python
	$(BIN)/ruff format app tests bench examples tools clients/python

## Regenerate app/gen and the Python SDK's stubs (clients/python/src/ameide_extensions_client/gen)
## from proto/ (offline: local plugins from .venv).
gen: install
	rm -rf app/gen
	PATH="$(abspath $(BIN)):$$PATH" $(BIN)/buf generate
	cd clients/python && PATH="$(abspath $(BIN)):$$PATH" $(abspath $(BIN))/buf generate --template buf.gen.yaml

## Rewrite the generated parts of docs/: the settings table in docs/operations.md,
## from app/settings.py (tests/test_docs.py fails when it is stale).
docs: install
	$(BIN)/python tools/settings_table.py

clean:
	rm -rf $(VENV) .mypy_cache .ruff_cache .pytest_cache clients/python/.ruff_cache

# Deployment tooling (Helm, kubernetes-validate) and checks; included last so
# `install` stays the default goal.
include mk/node.mk
include mk/deploy.mk
include mk/clients.mk
