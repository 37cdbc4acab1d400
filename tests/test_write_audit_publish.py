"""Write–audit–publish of the warehouse and the output folder: a run that does not publish
leaves every table a later run builds on, and every published file, exactly as the last
published run left them, however it stopped.

For each step of the pipeline, a real `ledgerflow run` of a changed delivery is stopped
there twice: by a blocking check (in this process), and by SIGKILL (in a process of its
own, started against this session's Prefect server). Afterwards (for a killed run, once
the next start's recovery has run) a full dump of the warehouse equals the dump before the
run, the published files are byte for byte the same, and the next good delivery publishes
what it publishes on a warehouse that never saw the failed run.
"""

from __future__ import annotations

import csv
import json
import logging
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import duckdb
import pytest
from conftest import CONTRACT_DATA_FILES, SAMPLE_DIR, copy_sample, copy_warehouse, run_steps

from flows.cli import main
from flows.config import PROJECT_ROOT
from flows.runtime import wap
from flows.runtime.failpoints import ENV as FAILPOINTS

PUBLISHED = [*CONTRACT_DATA_FILES, "quality_report.json"]
# Where a run can be stopped, in the order the pipeline reaches them.
STEPS = (
    "ingest",
    "source_freshness",
    "staging",
    "snapshots",
    "intermediate",
    "marts",
    "expectations",
    "audit",
)
# Rewritten by every dbt invocation, read by no later run: not part of what must be kept.
TRANSIENT_TABLES = {("ledgerflow", "run_context")}
# The run history records every run, a failed one too, on purpose (asserted below): it is
# an observation of runs, not state a run builds on.
RUN_HISTORY_SCHEMA = "history"
TIMESTAMP = re.compile(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?Z")


def changed_delivery(folder: Path) -> Path:
    """The sample's next night: a loan flip, a new balance, an account gone, one new."""
    copy_sample(folder)
    customers = (folder / "customers.csv").read_text()
    (folder / "customers.csv").write_text(customers.replace("Bob Chen,No,2", "Bob Chen,Yes,2"))
    accounts = (folder / "accounts.csv").read_text()
    accounts = accounts.replace("A001,1,BR01,5000.00,Savings", "A001,1,BR01,5100.00,Savings")
    accounts = accounts.replace("A004,4,BR02,9999.99,savings\n", "")
    (folder / "accounts.csv").write_text(accounts + "A950,1,BR09,250.00,savings\n")
    return folder


def dump(warehouse: Path) -> dict[str, list[tuple]]:
    """Every base table, every row, in a stable order."""
    with duckdb.connect(str(warehouse)) as con:
        tables = con.execute(
            "select table_schema, table_name from information_schema.tables "
            "where table_type = 'BASE TABLE' order by all"
        ).fetchall()
        return {
            f"{schema}.{table}": con.execute(
                f'select * from "{schema}"."{table}" order by all'
            ).fetchall()
            for schema, table in tables
            if (schema, table) not in TRANSIENT_TABLES and schema != RUN_HISTORY_SCHEMA
        }


def file_bytes(output: Path) -> dict[str, bytes]:
    return {name: (output / name).read_bytes() for name in PUBLISHED}


def data_without_run_times(output: Path) -> dict[str, list[list[str]]]:
    """The published CSV files with this run's own timestamps masked (calculated_at of the
    rows it changed, first_quarantined_at of what it quarantined first)."""
    masked = {}
    for name in CONTRACT_DATA_FILES:
        if name.endswith(".csv"):
            with (output / name).open(newline="", encoding="utf-8") as handle:
                masked[name] = [
                    [TIMESTAMP.sub("<time>", cell) for cell in row] for row in csv.reader(handle)
                ]
    return masked


@pytest.fixture(scope="module")
def lab(prefect_harness, tmp_path_factory):
    """A published baseline (the sample), the changed delivery, and what that delivery
    publishes on the baseline: the reference for every case."""
    root = tmp_path_factory.mktemp("wap")
    baseline = {
        "warehouse": root / "baseline" / "warehouse.duckdb",
        "output": root / "baseline" / "output",
    }
    assert cli_run(SAMPLE_DIR, baseline["warehouse"], baseline["output"]) == 0
    delivery = changed_delivery(root / "changed")
    reference = root / "reference"
    copy_warehouse(baseline["warehouse"], reference)
    shutil.copytree(baseline["output"], reference / "output")
    run_steps(delivery, reference / "warehouse.duckdb", reference / "output")
    return {
        **baseline,
        "root": root,
        "delivery": delivery,
        "dump": dump(baseline["warehouse"]),
        "files": file_bytes(baseline["output"]),
        "reference": data_without_run_times(reference / "output"),
    }


def cli_run(input_dir: Path, warehouse: Path, output: Path) -> int:
    return main(
        [
            "run",
            "--input-dir",
            str(input_dir),
            "--output-dir",
            str(output),
            "--warehouse",
            str(warehouse),
        ]
    )


@pytest.fixture
def case(lab):
    """The baseline's warehouse and outputs, copied to the one place every case uses (one
    warehouse path, so dbt parses the project once for all cases)."""
    place = lab["root"] / "case"
    shutil.rmtree(place, ignore_errors=True)
    copy_warehouse(lab["warehouse"], place)
    shutil.copytree(lab["output"], place / "output")
    return place / "warehouse.duckdb", place / "output"


def assert_as_before_and_next_delivery_is_clean(lab, warehouse: Path, output: Path) -> None:
    assert dump(warehouse) == lab["dump"], "the warehouse is not as the last publish left it"
    assert file_bytes(output) == lab["files"], "a published file changed"
    assert not [p.name for p in output.iterdir() if p.name.startswith(".")]
    run_steps(lab["delivery"], warehouse, output)
    assert data_without_run_times(output) == lab["reference"]


@pytest.mark.parametrize("step", STEPS)
def test_a_run_blocked_at_any_step_changes_nothing(lab, case, step, monkeypatch):
    warehouse, output = case
    monkeypatch.setenv(FAILPOINTS, f"{step}=block")
    assert cli_run(lab["delivery"], warehouse, output) == 1
    failed = json.loads((output / "failed" / "quality_report.json").read_text())
    assert failed["metrics"]["stopped_at"]["step"] == step
    with duckdb.connect(str(warehouse)) as con:
        recorded = con.execute(
            "select outcome, published, stopped_at from history.runs where run_id = ?",
            [failed["run_id"]],
        ).fetchall()
    assert recorded == [("failed", False, step)]
    shutil.rmtree(output / "failed")
    monkeypatch.delenv(FAILPOINTS)
    assert_as_before_and_next_delivery_is_clean(lab, warehouse, output)


def killed_run(warehouse: Path, output: Path, delivery: Path, failpoint: str) -> int:
    """`ledgerflow run` in a process of its own, on this session's Prefect server, told to
    kill itself with SIGKILL at `failpoint`."""
    from prefect.settings import get_current_settings

    env = {
        **os.environ,
        "PREFECT_API_URL": str(get_current_settings().api.url),
        FAILPOINTS: f"{failpoint}=kill",
    }
    done = subprocess.run(
        [sys.executable, "-m", "flows.cli", "run", "--input-dir", str(delivery),
         "--output-dir", str(output), "--warehouse", str(warehouse)],
        env=env,
        cwd=PROJECT_ROOT,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )  # fmt: skip
    return done.returncode


def recover(warehouse: Path, output: Path) -> None:
    """What the next run's start does first."""
    wap.recover(warehouse, output, logging.getLogger("next-start"))


@pytest.mark.parametrize("failpoint", [*STEPS, "publish-prepared"])
def test_a_run_killed_at_any_step_is_undone_at_the_next_start(lab, case, failpoint):
    warehouse, output = case
    assert killed_run(warehouse, output, lab["delivery"], failpoint) == -9
    recover(warehouse, output)
    assert_as_before_and_next_delivery_is_clean(lab, warehouse, output)


def test_a_run_killed_once_its_publish_was_decided_is_finished_at_the_next_start(lab, case):
    warehouse, output = case
    assert killed_run(warehouse, output, lab["delivery"], "publish-decided") == -9
    assert (output / wap.JOURNAL_NAME).exists()
    recover(warehouse, output)
    assert not (output / wap.JOURNAL_NAME).exists()
    assert data_without_run_times(output) == lab["reference"]
    with duckdb.connect(str(warehouse)) as con:
        (state,) = con.execute(
            f"select state from {wap.RUNS} order by run_at desc limit 1"
        ).fetchone()
    assert state == "committed"


def test_a_torn_or_foreign_journal_never_blocks_a_publish(lab, case):
    warehouse, output = case
    (output / wap.JOURNAL_NAME).write_text('{"run_id": "half-writ')
    (output / ".publish-someone").mkdir()
    assert cli_run(lab["delivery"], warehouse, output) == 0
    assert data_without_run_times(output) == lab["reference"]
    assert not [p.name for p in output.iterdir() if p.name.startswith(".")]
