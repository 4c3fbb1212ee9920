# One Makefile: the README and CI (.ci/run) call these same targets.
PYTHON ?= python3
VENV   ?= .venv
PY     := $(VENV)/bin/python
PROTO  := proto/usdcop/observation/v1/observation.proto

.DEFAULT_GOAL := help
.PHONY: help setup run test wheels test-wheels bench-footprint bench-fallback-refresh bench-cluster bench-training-set bench-echo-ab test-unit test-integration test-postgres test-ops lint typecheck generate check-generated bench bench-full faults ci clean \
        clients generate-clients check-proto test-clients test-typescript test-go \
        airflow-setup airflow-constraints test-airflow \
        deploy-conf deploy-base deploy-wheels deploy-images deploy-standins test-deploy

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
	$(PY) -m pipeline up --agent-policy agent/policies/example.npz

test: $(STAMP) ## Run every test (unit + integration: real redis-server, Feast, gRPC)
	$(PY) -m pytest

test-unit: $(STAMP) ## Unit tests only (no sockets)
	$(PY) -m pytest tests/unit

test-integration: $(STAMP) ## Integration tests only
	$(PY) -m pytest tests/integration

wheels: $(STAMP) ## Build the wheels into dist/: usdcop-observation-server and usdcop-observation-client
	$(PY) packaging/build_wheels.py dist

test-wheels: $(STAMP) ## Build the wheels, install each into a clean venv (pip), call a real server from it
	$(PY) -m pytest packaging/tests

test-postgres: $(STAMP) ## The PostgreSQL offline store's tests alone (also part of make test)
	$(PY) -m pytest tests/integration/offline_store tests/integration/feast/test_offline_stores.py \
	    tests/integration/server/test_fallback_postgres.py

test-ops: $(STAMP) ## Alert rules (promtool check + unit tests), real Prometheus scrape, dashboard queries
	promtool check rules ops/prometheus/alerts.yml
	promtool test rules ops/prometheus/tests/*.yml
	$(PY) -m pytest tests/integration/ops

lint: $(STAMP) ## ruff lint + format check
	$(PY) -m ruff check .
	$(PY) -m ruff format --check .

typecheck: $(STAMP) ## mypy (strict on the packages)
	$(PY) -m mypy

generate: $(STAMP) ## Regenerate the Python code for the proto (pinned grpcio-tools) and Feast's registry schema
	PATH="$(abspath $(VENV))/bin:$$PATH" $(PY) -m grpc_tools.protoc -Iproto --python_out=proto --mypy_out=proto \
	    --grpc_python_out=proto --mypy_grpc_out=proto $(PROTO)
	$(PY) -m pipeline.registry_schema  # pipeline/feast_registry.binpb: the installed Feast's Registry.proto

check-generated: generate ## Fail when the committed generated code differs from a fresh generation
	git diff --exit-code -- proto/ pipeline/feast_registry.binpb \
	    || (echo "generated code is stale: run 'make generate' and commit" >&2; exit 1)

# Airflow lives in its own virtualenv, installed against airflow/constraints.txt; its tasks run
# the project's steps with the project's .venv, so neither environment pins the other.
AIRFLOW_VERSION ?= 3.3.2
AIRFLOW_VENV    ?= .venv-airflow
AIRFLOW_STAMP   := $(AIRFLOW_VENV)/.installed

$(AIRFLOW_STAMP): airflow/constraints.txt
	test -x $(AIRFLOW_VENV)/bin/python || $(PYTHON) -m venv $(AIRFLOW_VENV)
	$(AIRFLOW_VENV)/bin/python -m pip install --quiet 'apache-airflow==$(AIRFLOW_VERSION)' \
	    -c airflow/constraints.txt
	@touch $(AIRFLOW_STAMP)

airflow-setup: $(AIRFLOW_STAMP) ## Create .venv-airflow: Airflow $(AIRFLOW_VERSION) pinned by airflow/constraints.txt

airflow-constraints: ## Re-resolve Airflow $(AIRFLOW_VERSION) in a scratch venv and rewrite airflow/constraints.txt
	rm -rf .venv-airflow-resolve && $(PYTHON) -m venv .venv-airflow-resolve
	.venv-airflow-resolve/bin/python -m pip install --quiet 'apache-airflow==$(AIRFLOW_VERSION)'
	{ sed -n '/^#/p' airflow/constraints.txt; .venv-airflow-resolve/bin/python -m pip freeze; } \
	    > airflow/constraints.txt.new && mv airflow/constraints.txt.new airflow/constraints.txt
	rm -rf .venv-airflow-resolve

test-airflow: $(STAMP) $(AIRFLOW_STAMP) ## DAG tests: airflow dags test L0 -> L1 -> L1b against a real Redis
	AIRFLOW_BIN=$(abspath $(AIRFLOW_VENV))/bin/airflow $(PY) -m pytest -s airflow/tests

bench: $(STAMP) ## Quick benchmark (~6-8 min): every scenario, every load mode
	$(PY) -m benchmarks run --profile quick

bench-full: $(STAMP) ## Longer, steadier benchmark
	$(PY) -m benchmarks run --profile full

bench-footprint: $(STAMP) ## Start to SERVING and RSS per serving process, --workers 1 and 2 (~2 min)
	$(PY) -m benchmarks footprint

bench-cluster: $(STAMP) ## Cluster read path: our slot router vs redis-py's RedisCluster, 3 masters (~20 s)
	$(PY) -m benchmarks.cluster_client

bench-training-set: $(STAMP) ## Training sets, ours vs Feast's join, both stores (~10 min)
	$(PY) -m benchmarks training-set

ECHO_AB_VARIANTS ?= asyncio,uvloop
bench-fallback-refresh: $(STAMP) ## Cached calls' latency, quiet vs while the fallback recomputes (~1 min)
	$(PY) -m benchmarks.fallback_refresh

bench-echo-ab: $(STAMP) ## A/B of server-stack variants, rounds interleaved (ECHO_AB_VARIANTS=base,gc_freeze,cached_log_off...)
	$(PY) -m benchmarks.echo_ab --variants $(ECHO_AB_VARIANTS)

FAULTS_SOAK_S ?= 600
faults: $(STAMP) ## Fault suite (tests/faults, ~15 min): fuzz, Redis SIGSTOP/SIGKILL, corruption, overload, SIGTERM, soak; prints its table
	$(PY) -m tests.faults --soak-s $(FAULTS_SOAK_S)

ci: ## Exactly what .ci/run runs once the system packages are in (~19 min with warm caches)
	$(MAKE) -j1 --no-print-directory setup clients check-generated lint typecheck test test-wheels
	$(MAKE) -j1 --no-print-directory check-proto test-clients test-ops test-airflow test-deploy
	$(MAKE) -j1 --no-print-directory faults FAULTS_SOAK_S=180

# ---- The proto as a product, and the TypeScript and Go clients (clients/README.md) --------
BUF      := tools/buf/node_modules/.bin/buf
TS_DIR   := clients/typescript
TS_STAMP := $(TS_DIR)/node_modules/.installed
GO_DIR   := clients/go
# Go builds from Debian's packaged modules only (no module proxy): GOPATH mode over
# /usr/share/gocode (golang-google-grpc-dev, golang-github-golang-protobuf-1-3-dev), which
# ignores src/usdcop/go.mod (the module other Go code requires).
GO_ENV   := GO111MODULE=off GOPROXY=off GOFLAGS= GOPATH="$(abspath $(GO_DIR)):/usr/share/gocode"

$(BUF): tools/buf/package.json tools/buf/package-lock.json
	cd tools/buf && npm ci --no-audit --no-fund --loglevel=error
	@touch $(BUF)

$(TS_STAMP): $(TS_DIR)/package.json $(TS_DIR)/package-lock.json
	cd $(TS_DIR) && npm ci --no-audit --no-fund --loglevel=error
	@touch $(TS_STAMP)

clients: $(BUF) $(TS_STAMP) ## Install the client toolchains: buf and the TypeScript client's packages (npm ci)

generate-clients: clients $(STAMP) ## Regenerate the TypeScript and Go code from the proto (buf) and the contract constants
	cd proto && PATH="$(abspath $(TS_DIR))/node_modules/.bin:$$PATH" ../$(BUF) generate
	$(PY) -m canonical.contract_export ts > $(TS_DIR)/src/contract.ts
	$(PY) -m canonical.contract_export go > $(GO_DIR)/src/usdcop/observation/contract.go

check-proto: generate-clients ## buf lint + buf breaking against the v1 release + stale generated TS/Go code
	cd proto && ../$(BUF) lint
	cd proto && ../$(BUF) breaking --against v1-release.binpb
	$(PY) -m pytest clients/tests -q
	@test -z "$$(git status --porcelain -- clients proto)" && git diff --exit-code -- clients proto \
	    || (git status --short -- clients proto; echo "generated client code is stale: run 'make generate-clients' and commit" >&2; exit 1)

test-typescript: clients $(STAMP) ## TypeScript client tests (node --test) against a real server
	$(PY) -m devstack.fixture_server --cwd $(TS_DIR) -- npm test

test-go: $(STAMP) ## Go client build + tests (go test) against a real server
	cd $(GO_DIR) && test -z "$$(gofmt -l src/usdcop)" || (gofmt -l src/usdcop; echo "gofmt: files above are not formatted" >&2; exit 1)
	cd $(GO_DIR) && env $(GO_ENV) go vet usdcop/observation/...
	cd $(GO_DIR)/src/usdcop && env GO111MODULE=on GOPROXY=off GOFLAGS= go list ./... >/dev/null  # go.mod is valid
	$(PY) -m devstack.fixture_server --cwd $(GO_DIR) -- env $(GO_ENV) go test -count=1 -v usdcop/observation/...

test-clients: test-typescript test-go ## TypeScript and Go client tests against a real server

# ---- Containers: deploy/ (deploy/README.md) ------------------------------------------------
# podman reads only $(DEPLOY_CONF) (runc, ulimits within the host's limits) in these targets.
PODMAN         ?= podman
DEPLOY_CONF    := $(abspath deploy/.local/containers.conf)
DEPLOY_IMAGE   ?= localhost/usdcop-observation
STANDIN        ?= localhost/usdcop-standin
DEPLOY_TIMEOUT ?= 1500
deploy-conf deploy-base deploy-wheels $(WHEELS_STAMP) deploy-images deploy-standins test-deploy: export CONTAINERS_CONF = $(DEPLOY_CONF)

deploy-conf: ## Write deploy/.local/containers.conf (podman settings for this kind of machine)
	@mkdir -p $(dir $(DEPLOY_CONF)) && deploy/containers-conf.sh > $(DEPLOY_CONF)

deploy-base: deploy-conf ## The debian:bookworm-slim base image, from debootstrap (skipped when present)
	deploy/base.sh

WHEELS_STAMP := deploy/.local/wheels.complete
$(WHEELS_STAMP): pyproject.toml deploy/wheels.sh
	deploy/wheels.sh
	@touch $@

deploy-wheels: deploy-base $(WHEELS_STAMP) ## Every wheel the image installs, into deploy/wheelhouse/ (offline image builds)

deploy-images: deploy-base deploy-wheels ## The server and pipeline images ($(DEPLOY_IMAGE):server, :pipeline)
	$(PODMAN) build --quiet --format docker -f deploy/Containerfile --build-arg PIP_NO_INDEX=1 --target pipeline -t $(DEPLOY_IMAGE):pipeline . >/dev/null
	$(PODMAN) build --quiet --format docker -f deploy/Containerfile --build-arg PIP_NO_INDEX=1 --target server -t $(DEPLOY_IMAGE):server . >/dev/null
	@$(PODMAN) images --format '{{.Repository}}:{{.Tag}} {{.Size}}' | grep '^$(DEPLOY_IMAGE):'

deploy-standins: deploy-base ## Redis/PostgreSQL/Prometheus/node-exporter stand-ins from Debian packages
	for name in redis postgres prometheus node-exporter; do \
	    $(PODMAN) build --quiet -t $(STANDIN)-$$name:debian12 deploy/standins/$$name >/dev/null || exit 1; done

test-deploy: $(STAMP) ## Build the images, then the compose stack and podman kube play, for real (~10 min)
	@set -u; run=usdcop-t$$$$; export USDCOP_DEPLOY_RUN=$$run; \
	trap 'deploy/teardown.sh $$run' EXIT; \
	start=$$(date +%s); \
	$(MAKE) -j1 --no-print-directory deploy-images deploy-standins VENV=$(VENV) PYTHON=$(PYTHON) || exit 1; \
	echo "images built in $$(( $$(date +%s) - start )) s"; \
	DEPLOY_IMAGE=$(DEPLOY_IMAGE) STANDIN=$(STANDIN) timeout --kill-after=60 $(DEPLOY_TIMEOUT) \
	    $(PY) -m pytest tests/deploy -p no:cacheprovider -o addopts="-ra --strict-markers --strict-config" -v

clean: ## Remove the venvs and generated data
	rm -rf $(VENV) $(AIRFLOW_VENV) data benchmarks/results dist
