# Two commands matter on a fresh machine: `make run` and `make test`.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
DEMO_WAREHOUSE := data/demo-warehouse.duckdb

# A local Prefect server (UI on http://127.0.0.1:4200), its SQLite database under .prefect/.
PREFECT_PORT ?= 4200
# No telemetry from anything a target starts, the server and the worker included
# (flows/config.py sets the same defaults for the project's own processes):
# docs/operating.md, "Telemetry".
export PREFECT_SERVER_ANALYTICS_ENABLED ?= false
export DO_NOT_TRACK ?= 1
# Only these targets talk to a server; `make run` and `make test` never need one.
deploy worker status: export PREFECT_API_URL ?= http://127.0.0.1:$(PREFECT_PORT)/api

.PHONY: install browser lock run test lint clean server deploy worker status bench bench-wap generate

# .venv holds exactly requirements.lock (every distribution, pip and the build tools
# included, at one version and its hashes) plus the project. requirements-pip.lock is its
# pip line alone: the venv's own pip varies with the Python build, the locked one installs
# the rest.
LOCKS := requirements-pip.lock requirements.lock
LOCKED := $(VENV)/.locked

install: $(STAMP)

# A new venv whenever a lock changes, since pip cannot remove what a lock no longer names.
# Wheels only, so that no source build fetches build tools the lock does not name.
$(LOCKED): $(LOCKS)
	rm -rf $(VENV)
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --require-hashes --no-deps -r requirements-pip.lock
	$(BIN)/pip install --quiet --require-hashes --no-deps --only-binary :all: -r requirements.lock
	touch $(LOCKED)

# Hashes cannot apply to a local directory: the project is built by the locked setuptools
# (no build isolation, which would fetch an unlocked one), its dependencies already there.
$(STAMP): $(LOCKED) pyproject.toml requirements.lock
	$(BIN)/pip install --quiet --no-deps --no-build-isolation -e .
	touch $(STAMP)

# Resolves pyproject.toml (the dev extra, the build-system tools and pip included) for the
# project's machines: CPython 3.11 on x86_64 Linux, glibc 2.28 or newer, wheels only. uv
# keeps every version already locked that still fits; `make lock LOCK_ARGS=--upgrade`
# moves all to the newest, `LOCK_ARGS='-P prefect'` one. uv, pinned, lives in a throwaway
# venv: nothing in .venv needs it.
UV_VERSION := 0.13.8
UV_VENV := .venv-uv
UV_COMPILE = $(UV_VENV)/bin/uv pip compile --quiet --generate-hashes --only-binary :all: \
	--python-version 3.11 --python-platform x86_64-manylinux_2_28 \
	--custom-compile-command 'make lock' $(LOCK_ARGS)
BUILD_REQUIRES := $(PYTHON) -c 'import tomllib; \
	print(*tomllib.load(open("pyproject.toml", "rb"))["build-system"]["requires"], sep="\n")'
lock:
	rm -rf $(UV_VENV)
	$(PYTHON) -m venv $(UV_VENV)
	$(UV_VENV)/bin/pip install --quiet uv==$(UV_VERSION)
	{ echo pip; $(BUILD_REQUIRES); } | $(UV_COMPILE) pyproject.toml - --extra dev -o requirements.lock
	echo pip | $(UV_COMPILE) - -c requirements.lock -o requirements-pip.lock
	rm -rf $(UV_VENV)

# The demo starts from a fresh warehouse every time, so the bundled sample is always
# fresh data (a kept warehouse would rightly fail the 48-hour freshness check later).
run: install
	rm -f $(DEMO_WAREHOUSE) $(DEMO_WAREHOUSE).wal
	$(BIN)/ledgerflow run --warehouse $(DEMO_WAREHOUSE)

test: install browser
	$(BIN)/python -m pytest

# The dashboard's browser test drives the system's Chromium (Playwright's own browser
# download is not used): installed from the distribution's packages where it is missing,
# as root or through sudo; otherwise the target fails with the command to run.
CHROMIUM_INSTALL := apt-get update && apt-get install -y chromium
browser:
	@if command -v chromium >/dev/null 2>&1 || command -v chromium-browser >/dev/null 2>&1; then \
		exit 0; \
	elif [ "$$(id -u)" -eq 0 ]; then \
		echo "Installing Chromium for the browser tests: $(CHROMIUM_INSTALL)"; \
		apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium; \
	elif command -v sudo >/dev/null 2>&1 && sudo -n true 2>/dev/null; then \
		echo "Installing Chromium for the browser tests: sudo $(CHROMIUM_INSTALL)"; \
		sudo -n apt-get update -qq && sudo -n DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium; \
	else \
		echo "The browser tests need Chromium, and installing it needs root. Run:" >&2; \
		echo "    sudo sh -c '$(CHROMIUM_INSTALL)'" >&2; \
		exit 1; \
	fi

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

# What write-audit-publish of the warehouse costs: the start's check, the undo of a killed
# run, against a copy of the warehouse file.
bench-wap: install
	$(BIN)/python tests/benchmarks/wap_cost.py --accounts $(ACCOUNTS) $(BENCH_ARGS)

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
