# ridestream: the two commands a newcomer needs are `make demo` and `make test`.
SHELL := /bin/bash
.DEFAULT_GOAL := help

PYTHON ?= python3.11
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
# Real TLC files: ../shared/data beside the checkout when present (dev and CI), else ./data,
# where `ridestream demo` downloads the months it lacks (a mirror: DEMO_ARGS="--base-url URL").
# Tests that lack a month fetch it into .ridestream/test-data (see tests/tripdata.py).
DATA_DIR ?= $(abspath $(if $(wildcard ../shared/data/*.parquet),../shared/data,data))
export RIDESTREAM_DATA_DIR ?= $(DATA_DIR)
export RIDESTREAM_TEST_DATA_DIR ?= $(DATA_DIR)

.PHONY: help install system-packages demo test test-unit test-integration test-reliability test-faults lint format broker-up broker-down broker-status bench clean

help: ## Show this help
	@grep -hE '^[a-zA-Z_-]+:.*?## ' $(MAKEFILE_LIST) | awk 'BEGIN {FS = ":.*?## "}; {printf "  \033[36m%-18s\033[0m %s\n", $$1, $$2}'

install: $(STAMP) system-packages ## Create .venv with ridestream and its dev tools (idempotent)

# Tests use Debian packages, installed when missing: chromium (renders the HTML report),
# docker-compose (validates docker-compose.yml; the client needs no Docker engine for `config`),
# postgresql (MLflow's backend store as compose runs it) and prometheus (scrapes the services).
system-packages:
	@missing=""; \
	command -v chromium >/dev/null || command -v chromium-browser >/dev/null || missing="$$missing chromium"; \
	docker compose version >/dev/null 2>&1 || command -v docker-compose >/dev/null || missing="$$missing docker-compose"; \
	ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1 || command -v initdb >/dev/null || missing="$$missing postgresql"; \
	command -v prometheus >/dev/null || missing="$$missing prometheus"; \
	[ -z "$$missing" ] || { \
	  if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null; then \
	    echo "installing Debian's$$missing (for the report, compose, registry and dashboard tests)"; \
	    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $$missing >/dev/null; \
	  else echo "warning: missing$$missing; install with apt-get install$$missing (tests need them)" >&2; fi; }

$(STAMP): pyproject.toml
	@command -v $(PYTHON) >/dev/null || { echo "error: $(PYTHON) not found: install Python 3.11" >&2; exit 1; }
	@[ -x $(BIN)/python ] || $(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[dev]'
	@touch $(STAMP)

demo: install ## Run the whole loop on real data (fetches missing months; local Kafka, SQLite MLflow, all services)
	$(BIN)/ridestream demo $(DEMO_ARGS)

test: install lint ## Lint, type-check and run the tests (unit, integration, reliability; real Kafka)
	$(BIN)/pytest tests -m "not faults"

test-unit: install ## Unit tests only (no broker, seconds)
	$(BIN)/pytest tests/unit

test-integration: install ## Integration tests only (starts a real Kafka broker from its jars)
	$(BIN)/pytest tests/integration

test-reliability: install ## Poison input, SASL, secrets, and the fault tests (real brokers)
	$(BIN)/pytest tests/reliability

test-faults: install ## kill -9 of services and of a cluster's leader, a broker down 30 s, the registry down, MLflow on PostgreSQL (minutes)
	$(BIN)/pytest tests -m faults

lint: install ## ruff (lint + format check) and mypy
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy

format: install ## Apply ruff's fixes and formatting
	$(BIN)/ruff check --fix .
	$(BIN)/ruff format .

broker-up: install ## Start the local Apache Kafka (KRaft, 127.0.0.1:19092)
	$(BIN)/ridestream broker up

broker-down: install ## Stop the local Apache Kafka
	$(BIN)/ridestream broker down

broker-status: install ## Is the local Apache Kafka running?
	$(BIN)/ridestream broker status

bench: install ## Run the benchmarks (print tables; those that need Kafka start a broker of their own)
	@for b in bench/*.py; do echo "== $$b"; $(BIN)/python $$b || exit 1; done

clean: ## Remove the venv and local state (.ridestream/: broker data, MLflow store)
	-$(BIN)/ridestream broker down 2>/dev/null
	rm -rf $(VENV) .ridestream .pytest_cache .mypy_cache .ruff_cache
