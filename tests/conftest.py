"""Shared fixtures.

Two ways to run the pipeline in tests:
- `run_steps` drives the same step functions the flow calls (ingest, dbt layers, export)
  without Prefect, for tests about data rather than orchestration;
- `prefect_harness` is one Prefect test server for the whole session, for tests that run
  the flow itself (each new ephemeral server costs seconds).
"""

from __future__ import annotations

import logging
import os
import shutil
import subprocess
import sys
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import duckdb
import pytest

from flows.config import DBT_LAYERS, DBT_PROJECT_DIR, DEFAULT_INPUT_DIR
from flows.steps.dbt_layers import DbtProject
from flows.steps.ingest import ingest_delivery
from flows.steps.publish import publish_outputs
from flows.steps.start import start_run

sys.path.insert(0, str(Path(__file__).parent))

SAMPLE_DIR = DEFAULT_INPUT_DIR

# The contract's published data files (the quality report aside: it names its run).
CONTRACT_DATA_FILES = (
    "account_summary.csv",
    "account_summary.parquet",
    "customer_profile.csv",
    "customer_profile.parquet",
    "quarantine_customers.csv",
    "quarantine_accounts.csv",
)


@dataclass
class StepsRun:
    warehouse: Path
    output_dir: Path
    run_at: datetime

    def query(self, sql: str) -> list[tuple]:
        with duckdb.connect(str(self.warehouse)) as con:
            return con.execute(sql).fetchall()


def run_steps(
    input_dir: Path,
    warehouse: Path,
    output_dir: Path,
    full_refresh: bool = False,
    run_at: datetime | None = None,
) -> StepsRun:
    """Start, ingest, build every dbt layer and publish: the flow's steps, no Prefect (and
    none of its checks beyond dbt's, which raise when a layer fails)."""
    run_at = start_run.fn(warehouse, output_dir, run_at)
    ingest_delivery.fn(input_dir, warehouse, run_at)
    project = DbtProject(warehouse, run_at, full_refresh)
    try:
        for layer in DBT_LAYERS:
            project.build_layer(layer)
    finally:
        project.close()
    run_id = run_at.strftime("steps-%Y%m%dT%H%M%S%f")
    publish_outputs.fn(warehouse, output_dir, run_id, run_at, {"run_id": run_id})
    return StepsRun(warehouse, output_dir, run_at.replace(tzinfo=UTC))


DBT = Path(sys.executable).with_name("dbt")


def run_dbt(
    folder: Path, *args: str, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess:
    """The dbt command on the project, with its target and log folders under `folder` (so
    the pipeline's own dbt folders are never touched); output captured, never raising."""
    return subprocess.run(
        [
            str(DBT),
            *args,
            "--project-dir",
            str(DBT_PROJECT_DIR),
            "--profiles-dir",
            str(DBT_PROJECT_DIR),
            "--target-path",
            str(folder / "target"),
            "--log-path",
            str(folder / "logs"),
        ],
        env={**os.environ, "DBT_SEND_ANONYMOUS_USAGE_STATS": "false", **(env or {})},
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )


def copy_warehouse(warehouse: Path, folder: Path) -> Path:
    """A private copy of a warehouse file (its write-ahead log folded in first)."""
    with duckdb.connect(str(warehouse)) as con:
        con.execute("checkpoint")
    folder.mkdir(parents=True, exist_ok=True)
    copy = folder / warehouse.name
    shutil.copy(warehouse, copy)
    return copy


def write_delivery(folder: Path, customers: str | bytes, accounts: str | bytes) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    for name, content in (("customers.csv", customers), ("accounts.csv", accounts)):
        data = content.encode("utf-8") if isinstance(content, str) else content
        (folder / name).write_bytes(data)
    return folder


def project_files() -> list[str]:
    """Every file of the project as git sees it: tracked, or new and not ignored."""
    return subprocess.run(
        ["git", "ls-files", "--cached", "--others", "--exclude-standard"],
        cwd=Path(__file__).resolve().parent.parent,
        capture_output=True,
        text=True,
        check=True,
    ).stdout.splitlines()


def copy_sample(folder: Path) -> Path:
    shutil.copytree(SAMPLE_DIR, folder, ignore=shutil.ignore_patterns("*.md"))
    return folder


@pytest.fixture(scope="session")
def sample_run(tmp_path_factory) -> StepsRun:
    """The bundled sample through every step, once per session."""
    root = tmp_path_factory.mktemp("sample-run")
    return run_steps(SAMPLE_DIR, root / "warehouse.duckdb", root / "output")


@pytest.fixture(scope="session")
def prefect_harness():
    from prefect.testing.utilities import prefect_test_harness

    with prefect_test_harness(server_startup_timeout=180):
        yield


E2E_MODULE = "test_deployments_e2e.py"
_E2E_SERVER = pytest.StashKey["PrefectServer"]()


def pytest_collection_modifyitems(config, items):
    """Start the end-to-end test's Prefect server now if that test will run: its database
    migration then overlaps the tests before it."""
    if any(item.path.name == E2E_MODULE for item in items):
        from prefect_server import PrefectServer

        config.stash[_E2E_SERVER] = PrefectServer()


def pytest_unconfigure(config):
    server = config.stash.get(_E2E_SERVER, None)
    if server is not None:
        server.stop()
    # The temporary servers of flows run in-process stop at interpreter exit and log it to
    # a console handler whose stream, pytest's capture, is closed by then ("--- Logging
    # error --- I/O operation on closed file"): the tests are over, so Prefect is quiet.
    logging.getLogger("prefect").disabled = True


@pytest.fixture(scope="session")
def e2e_prefect_server(request):
    """The server started at collection, healthy."""
    server = request.config.stash[_E2E_SERVER]
    server.wait_until_healthy()
    return server


def latest_flow_run_state():
    """The final state of the newest pipeline run (not one of its layers' subflows) on this
    session's Prefect API."""
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import FlowFilter, FlowFilterName
    from prefect.client.schemas.sorting import FlowRunSort

    from flows.config import FLOW_NAME

    with get_client(sync_client=True) as client:
        (latest,) = client.read_flow_runs(
            flow_filter=FlowFilter(name=FlowFilterName(any_=[FLOW_NAME])),
            sort=FlowRunSort.START_TIME_DESC,
            limit=1,
        )
    assert latest.state is not None and latest.state.is_failed()
    return latest.state
