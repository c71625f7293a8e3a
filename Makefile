# One place for the commands the README names. Each target builds .venv itself
# (pip from PyPI), so a fresh clone needs nothing installed by hand first.
PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed

.PHONY: run test lint fmt bench clean

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	touch $(STAMP)

run: $(STAMP)
	$(BIN)/nico serve

test: $(STAMP)
	$(BIN)/python -m pytest -q

lint: $(STAMP)
	$(BIN)/ruff check src tests $(wildcard bench)
	$(BIN)/ruff format --check src tests $(wildcard bench)
	$(BIN)/mypy

fmt: $(STAMP)
	$(BIN)/ruff format src tests $(wildcard bench)
	$(BIN)/ruff check --fix src tests $(wildcard bench)

# Rack counts of the fleet table; `make bench FLEET_SIZES=1,10,50,100,200` for all.
FLEET_SIZES ?= 1,10,50

bench: $(STAMP)
	$(BIN)/python bench/engine.py
	$(BIN)/python bench/fleet.py --sizes $(FLEET_SIZES)
	$(BIN)/python bench/cli_startup.py

clean:
	rm -rf $(VENV) .nico .pytest_cache .mypy_cache .ruff_cache
