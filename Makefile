# The two commands in the README: `make run` (everything, Ctrl-C stops it) and `make test` (the whole suite, every
# tier; what CI runs). `make test-fast` is the unit tier alone (no Kafka), for a quick check while working.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
INSTALLED := $(VENV)/.installed

.PHONY: run test test-fast lint setup model model-card schema bench kafka-start kafka-stop kafka-status pipeline producer webhook clean help

run: setup ## set up, start local Kafka, build the model if missing, run pipeline + producer
	$(PY) run.py

test: setup lint ## lint and types, then the whole test suite, every tier (it starts its own Kafka on port 19092); CI runs this
	./scripts/install-test-tools.sh
	$(PY) -m pytest

lint: $(INSTALLED) ## ruff (lint and format check) and mypy (strict on common/ and pipeline/), as configured in pyproject.toml
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .
	$(VENV)/bin/mypy

test-fast: $(INSTALLED) ## the unit tier alone: no Kafka, a few minutes
	$(PY) -m pytest -m unit

setup: $(INSTALLED) ## virtualenv with pinned requirements, and the Kafka jars
	$(PY) -m kafka_local fetch >/dev/null

$(INSTALLED): requirements.txt requirements-dev.txt
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	@echo "Installing the pinned environment into $(VENV) (a few minutes the first time: torch is large)..."
	$(PY) -m pip install --disable-pip-version-check --progress-bar on -r requirements.txt -r requirements-dev.txt
	touch $@

model: setup ## build the offline sentiment models into models/: quick (~2 min), then full (~20 min); skips built ones
	$(PY) -m sentiment_model.build

model-card: $(INSTALLED) ## render the full model's card (models/) into docs/model-card.md, the only command that writes it
	$(PY) -m sentiment_model.build --card-only

schema: $(INSTALLED) ## write the message contract's JSON Schema files (docs/contract/) from common/contract.py
	$(PY) -m common.contract_schema

bench: model ## run the benchmarks (about 15 minutes per model runtime) with a profile of the pipeline worker; writes docs/benchmarks/
	$(PY) -m bench --profile

webhook: setup ## serve the HTTP ingestion endpoint on 127.0.0.1:8600 (SENTISTREAM_WEBHOOK_*); Kafka must be running
	$(PY) -m producer.webhook

kafka-start: setup ## start local Kafka only (NODES=3 for the replicated cluster)
	$(PY) -m kafka_local start --nodes $(or $(NODES),1)

kafka-stop: ## stop local Kafka
	$(PY) -m kafka_local stop

kafka-status: ## show local Kafka nodes
	$(PY) -m kafka_local status

clean: ## stop local Kafka and delete its data, state and caches (keeps the venv)
	-$(PY) -m kafka_local reset
	rm -rf .local .cache

help:
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  make %-14s %s\n", $$1, $$2}'
