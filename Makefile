# One place for the commands the README names. Each target builds .venv itself
# (pip from PyPI), so a fresh clone needs nothing installed by hand first.
PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed
# Test-only venv for openapi-python-client: a generated client is tested against our
# /openapi.json (tests/api/test_openapi_client.py), without its deps in the app's venv.
CODEGEN := .venv-codegen

.PHONY: run test lint fmt bench clean

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	touch $(STAMP)

$(CODEGEN)/.installed:
	test -x $(CODEGEN)/bin/python || $(PYTHON) -m venv $(CODEGEN)
	$(CODEGEN)/bin/python -m pip install --quiet --upgrade pip
	$(CODEGEN)/bin/python -m pip install --quiet 'openapi-python-client>=0.29,<0.30'
	touch $@

run: $(STAMP)
	$(BIN)/nico serve

test: $(STAMP) $(CODEGEN)/.installed
	$(BIN)/python -m pytest -q --durations=25

lint: $(STAMP)
	$(BIN)/ruff check src tests $(wildcard bench)
	$(BIN)/ruff format --check src tests $(wildcard bench)
	$(BIN)/mypy

fmt: $(STAMP)
	$(BIN)/ruff format src tests $(wildcard bench)
	$(BIN)/ruff check --fix src tests $(wildcard bench)

# Rack counts of the fleet table (100 and 200 take about a minute each since batching);
# `make bench FLEET_SIZES=1,10` for a quick look.
FLEET_SIZES ?= 1,10,50,100,200
# Task-history sizes of the reads table (`READS_FLAGS=--million` adds 1,000,000 tasks).
READS_SIZES ?= 200,10000,100000
READS_FLAGS ?=
# Finished tasks under the upgrade bench/migrate.py times (0007 -> head).
MIGRATE_TASKS ?= 100000

bench: $(STAMP)
	$(BIN)/python bench/engine.py
	$(BIN)/python bench/sandbox.py
	$(BIN)/python bench/fleet.py --sizes $(FLEET_SIZES)
	$(BIN)/python bench/redfish.py
	$(BIN)/python bench/cli_startup.py
	$(BIN)/python bench/list_items.py
	$(BIN)/python bench/task_writes.py
	$(BIN)/python bench/reads.py --sizes $(READS_SIZES) $(READS_FLAGS)
	$(BIN)/python bench/migrate.py --tasks $(MIGRATE_TASKS)

clean:
	rm -rf $(VENV) $(CODEGEN) .nico .pytest_cache .mypy_cache .ruff_cache
