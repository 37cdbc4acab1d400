# Two commands matter on a fresh machine: `make run` and `make test`.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
DEMO_WAREHOUSE := data/demo-warehouse.duckdb

# A local Prefect server (UI on http://127.0.0.1:4200), its SQLite database under .prefect/.
PREFECT_PORT ?= 4200
# Only these targets talk to a server; `make run` and `make test` never need one.
deploy worker status: export PREFECT_API_URL ?= http://127.0.0.1:$(PREFECT_PORT)/api

.PHONY: install run test lint clean server deploy worker status bench generate

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

server: install
	PREFECT_HOME=$(CURDIR)/.prefect PREFECT_UI_URL=http://127.0.0.1:$(PREFECT_PORT) \
		$(BIN)/prefect server start --host 127.0.0.1 --port $(PREFECT_PORT)

# The work pool, Slack block, failure automation and every deployment in prefect.yaml.
deploy: install
	$(BIN)/python -m deployments

worker: install
	PREFECT_WORKER_QUERY_SECONDS=5 $(BIN)/prefect worker start --pool ledgerflow-process

status: install
	$(BIN)/ledgerflow status

# A benchmark, not a test: floors, full / unchanged / 1%-changed runs, budgets, memory.
# `make bench ACCOUNTS=10000000` for 10M accounts; `make bench BENCH_ARGS=--sample`.
ACCOUNTS ?= 1000000
bench: install
	$(BIN)/python tests/benchmarks/run_bench.py --accounts $(ACCOUNTS) $(BENCH_ARGS)

# A synthetic delivery (a development tool): make generate ARGS="--out DIR --customers N".
generate: install
	PYTHONPATH=tests $(BIN)/python -m tools.generate $(ARGS)

# Python with ruff; the dbt project's SQL with sqlfluff, rendered twice by dbt: as a first
# build sees the models, and as a nightly (incremental) run does.
LINT_WAREHOUSE := $(CURDIR)/dbt_project/target/lint.duckdb
lint: install
	$(BIN)/ruff check flows deployments tests
	$(BIN)/ruff format --check flows deployments tests
	cd dbt_project && LEDGERFLOW_WAREHOUSE=$(LINT_WAREHOUSE) ../$(BIN)/sqlfluff lint models tests
	cd dbt_project && LEDGERFLOW_WAREHOUSE=$(LINT_WAREHOUSE) ../$(BIN)/sqlfluff lint \
		--config .sqlfluff-incremental models tests

clean:
	rm -rf output $(DEMO_WAREHOUSE) dbt_project/target dbt_project/logs .bench
