# Two entry points (see README): `make demo` and `make test`.
PYTHON ?= python3
VENV   ?= .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.installed

.PHONY: demo test lint unit system-deps brokers-up brokers-down brokers-up-aws secure-matrix test-aws test-clusters clean

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -e '.[dev]'
	touch $(STAMP)

## The main job on the embedded broker: the conformance matrix and the example domain's AsyncAPI docs.
demo: $(STAMP)
	mkdir -p build/asyncapi
	$(VENV)/bin/eventwire conformance run memory:// --json build/conformance-memory.json
	$(VENV)/bin/eventwire asyncapi generate contracts/reference_app.py:bus -o build/asyncapi/orders.yaml
	$(VENV)/bin/eventwire asyncapi html build/asyncapi/orders.yaml -o build/asyncapi/html

## Everything: lint, types, brokers up, the whole test suite against memory and the real brokers.
test: $(STAMP) lint system-deps brokers-up
	EVENTWIRE_BROKERS=1 $(PY) -m pytest -n 2 --durations=15 -m "not restart and not secure_matrix and not aws_matrix and not cluster"
	EVENTWIRE_BROKERS=1 $(PY) -m pytest -p no:xdist -m "restart and not secure_matrix and not aws_matrix and not cluster"
	EVENTWIRE_BROKERS=1 $(PY) -m pytest -p no:xdist -m cluster_ci

## The conformance matrix over TLS with authentication on the secure brokers (not in `make test`).
secure-matrix: $(STAMP)
	conformance/brokers/brokers up --secure
	conformance/brokers/brokers up postgres
	EVENTWIRE_BROKERS=1 $(PY) -m pytest -p no:xdist -m secure_matrix

## The conformance matrix on a local EventBridge + SQS endpoint (the tests start their own): two
## runs, G15 on its own; minutes, so not in `make test` (docs/backends/eventbridge.md).
test-aws: $(STAMP)
	$(PY) -m pytest -p no:xdist -m aws_matrix

## Three-node Kafka, RabbitMQ, Redis Sentinel and NATS clusters, one at a time: each cluster test
## starts its own on free ports, kills the node that leads, starts it again; then the whole
## conformance suite (G01-G23) on each cluster. `make test` runs the NATS cluster's suite only,
## without G22 (tests/backends/test_cluster_matrix.py says why).
## Kafka's suite keeps its idempotency ids in PostgreSQL, started here.
test-clusters: $(STAMP)
	conformance/brokers/brokers up postgres
	EVENTWIRE_BROKERS=1 $(PY) -m pytest -p no:xdist -m "cluster and not cluster_ci" tests/brokers/test_clusters.py tests/backends/test_cluster_matrix.py

lint: $(STAMP)
	$(VENV)/bin/ruff check sdk plugins conformance tests conformance/brokers/brokers
	$(VENV)/bin/ruff format --check sdk plugins conformance tests docs/examples conformance/brokers/brokers
	$(VENV)/bin/mypy sdk plugins conformance tests conformance/brokers/brokers

## Only the tests that need no broker.
unit: $(STAMP)
	$(PY) -m pytest -n 2

## Tools some tests drive: headless Chromium (offline AsyncAPI page) and Node.js (official parser).
system-deps:
	@command -v chromium >/dev/null || { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null; }
	@command -v node >/dev/null && command -v npm >/dev/null || { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq nodejs npm >/dev/null; }

## The four brokers, PostgreSQL for the SQL idempotency store (127.0.0.1:5433), and the
## secure (TLS + authentication) brokers beside them.
brokers-up: $(STAMP)
	conformance/brokers/brokers up
	conformance/brokers/brokers up postgres
	conformance/brokers/brokers up --secure

brokers-down:
	conformance/brokers/brokers down
	conformance/brokers/brokers down postgres
	conformance/brokers/brokers down --secure

## A local EventBridge + SQS endpoint (moto_server from the venv's dev extra) on 127.0.0.1:4599.
brokers-up-aws: $(STAMP)
	conformance/brokers/brokers up aws

clean:
	rm -rf $(VENV) build .mypy_cache .ruff_cache .pytest_cache
