"""Checks that must fail loud: planted defects and aged deliveries.

Each test builds the sample into its own warehouse, plants one defect where the check
looks, and runs that layer's tests: the named check fails at the right severity and its
message names the offending keys.
"""

from __future__ import annotations

import shutil
from datetime import UTC, datetime, timedelta

import duckdb
import pytest
from conftest import SAMPLE_DIR, StepsRun, run_steps

from flows.dbt_layers import DbtProject
from flows.errors import LayerFailed


@pytest.fixture(scope="module")
def sample_warehouse(tmp_path_factory):
    root = tmp_path_factory.mktemp("quality")
    return run_steps(SAMPLE_DIR, root / "warehouse.duckdb", root / "output")


@pytest.fixture
def built(sample_warehouse, tmp_path):
    """A private copy of the built sample warehouse, to plant defects in."""
    warehouse = tmp_path / "warehouse.duckdb"
    # The newest data may still be in the write-ahead log: fold it in before copying.
    with duckdb.connect(str(sample_warehouse.warehouse)) as con:
        con.execute("checkpoint")
    shutil.copy(sample_warehouse.warehouse, warehouse)
    run = StepsRun(warehouse, tmp_path / "output", sample_warehouse.run_at)
    return run, DbtProject(warehouse, run.run_at.strftime("%Y-%m-%d %H:%M:%S.%f"))


def plant(warehouse, sql):
    with duckdb.connect(str(warehouse)) as con:
        con.execute(sql)


def failing_checks(project, layer):
    with pytest.raises(LayerFailed) as raised:
        project.test_layer(layer)
    assert raised.value.layer == layer
    return {check.name: check for check in raised.value.result.checks if check.status != "pass"}


def test_duplicate_key_in_a_mart_fails_unique_and_names_the_key(built):
    run, project = built
    plant(
        run.warehouse,
        "insert into marts.account_summary select * from marts.account_summary where account_id = 'A001'",
    )
    failures = failing_checks(project, "marts")
    check = failures["unique_account_summary_account_id"]
    assert (check.severity, check.model) == ("error", "account_summary")
    assert "A001" in check.message and "Found 1 failing rows" in check.message


@pytest.mark.parametrize(
    ("age_hours", "status", "severity"), [(30, "warn", "warn"), (50, "fail", "error")]
)
def test_an_aged_delivery_warns_after_24_hours_and_errors_after_48(
    built, age_hours, status, severity
):
    run, project = built
    aged = datetime.now(UTC).replace(tzinfo=None) - timedelta(hours=age_hours)
    for table in ("customers", "accounts"):
        plant(run.warehouse, f"update raw.{table} set _loaded_at = '{aged}'")
    checks = {check.name: check for check in project.source_freshness()}
    assert {(c.status, c.severity) for c in checks.values()} == {(status, severity)}
    assert (
        f"{age_hours - 1}." in checks["source_freshness_accounts"].message
        or f"{age_hours}." in checks["source_freshness_accounts"].message
    )


def test_a_fresh_delivery_passes_freshness(built):
    _, project = built
    assert {check.status for check in project.source_freshness()} == {"pass"}
