# Two commands: `make run` (the whole platform, locally) and `make test` (the whole suite).
SHELL := /bin/bash
VENV ?= .venv
PY := $(VENV)/bin/python

.PHONY: run test setup migrate demo services bench lint

setup:            ## services + virtualenv + pinned requirements + databases
	bash scripts/setup.sh

migrate: setup
	$(PY) manage.py migrate --noinput
	$(PY) manage.py migrate_clickhouse

demo: migrate
	$(PY) manage.py seed_demo

run: demo         ## set up, migrate, load demo data, start every process (Ctrl-C stops all)
	mkdir -p var
	$(PY) manage.py collectstatic --noinput -v0
	OPENBLAS_NUM_THREADS=1 $(VENV)/bin/honcho -f Procfile start

test:             ## set up, lint, then the whole test suite
	WITH_BROWSER=1 bash scripts/setup.sh
	bash scripts/lint.sh
	bash scripts/test.sh

lint:             ## ruff and mypy (pyproject.toml); `make test` runs it first
	bash scripts/lint.sh

services:
	bash scripts/services.sh

bench:            ## bid-path load test: starts its own bid app on 127.0.0.1 and prints figures (bench/README.md)
	$(PY) bench/bid_load.py
