# One Makefile: the README and CI (.ci/run) call these same targets.
PYTHON ?= python3
VENV   ?= .venv
PY     := $(VENV)/bin/python
PROTO  := proto/usdcop/observation/v1/observation.proto

.DEFAULT_GOAL := help
.PHONY: help setup run test test-unit test-integration lint typecheck generate check-generated bench bench-full ci clean

help: ## List the targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  %-18s %s\n", $$1, $$2}'

STAMP  := $(VENV)/.installed

$(STAMP): pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e '.[dev]'
	@touch $(STAMP)

setup: $(STAMP) ## Create .venv and install the project with its dev tools

run: $(STAMP) ## Quick start: pipeline into an embedded Redis, then serve observations (Ctrl-C stops)
	$(PY) -m pipeline up

test: $(STAMP) ## Run every test (unit + integration: real redis-server, Feast, gRPC)
	$(PY) -m pytest

test-unit: $(STAMP) ## Unit tests only (no sockets)
	$(PY) -m pytest tests/unit

test-integration: $(STAMP) ## Integration tests only
	$(PY) -m pytest tests/integration

lint: $(STAMP) ## ruff lint + format check
	$(PY) -m ruff check .
	$(PY) -m ruff format --check .

typecheck: $(STAMP) ## mypy (strict on the packages)
	$(PY) -m mypy

generate: $(STAMP) ## Regenerate the Python code for the proto (pinned grpcio-tools)
	PATH="$(abspath $(VENV))/bin:$$PATH" $(PY) -m grpc_tools.protoc -Iproto --python_out=proto --mypy_out=proto \
	    --grpc_python_out=proto --mypy_grpc_out=proto $(PROTO)

check-generated: generate ## Fail when the committed generated code differs from a fresh generation
	git diff --exit-code -- proto/ || (echo "generated code is stale: run 'make generate' and commit" >&2; exit 1)

bench: $(STAMP) ## Quick benchmark (~2 min): every scenario, every load mode
	$(PY) -m benchmarks run --profile quick

bench-full: $(STAMP) ## Longer, steadier benchmark
	$(PY) -m benchmarks run --profile full

ci: check-generated lint typecheck test ## What CI runs

clean: ## Remove the venv and generated data
	rm -rf $(VENV) data benchmarks/results
