# Two commands matter on a fresh machine: `make run` and `make test`.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
DEMO_WAREHOUSE := data/demo-warehouse.duckdb

.PHONY: install run test lint clean

install: $(STAMP)

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[dev]'
	touch $(STAMP)

# The demo starts from a fresh warehouse every time, so the bundled sample is always
# fresh data (a kept warehouse would rightly fail the 48-hour freshness check later).
run: install
	rm -f $(DEMO_WAREHOUSE) $(DEMO_WAREHOUSE).wal
	$(BIN)/ledgerflow run --warehouse $(DEMO_WAREHOUSE)

test: install
	$(BIN)/python -m pytest

lint: install
	$(BIN)/ruff check flows tests
	$(BIN)/ruff format --check flows tests

clean:
	rm -rf output $(DEMO_WAREHOUSE) dbt_project/target dbt_project/logs
