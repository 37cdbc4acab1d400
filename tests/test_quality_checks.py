"""Checks that must fail loud: planted defects and aged deliveries.

Each test builds the sample into its own warehouse, plants one defect where the check
looks, and runs that layer's tests: the named check fails at the right severity and its
message names the offending keys.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import duckdb
import pytest
from conftest import SAMPLE_DIR, StepsRun, copy_warehouse, run_steps, write_delivery

from flows.errors import LayerFailed
from flows.quality.key_columns import key_column_profile
from flows.steps.dbt_layers import DbtProject
from flows.steps.freshness import check_source_freshness


@pytest.fixture(scope="module")
def sample_warehouse(tmp_path_factory):
    root = tmp_path_factory.mktemp("quality")
    return run_steps(SAMPLE_DIR, root / "warehouse.duckdb", root / "output")


@pytest.fixture
def built(sample_warehouse, tmp_path):
    """A private copy of the built sample warehouse, to plant defects in."""
    warehouse = copy_warehouse(sample_warehouse.warehouse, tmp_path)
    run = StepsRun(warehouse, tmp_path / "output", sample_warehouse.run_at)
    return run, DbtProject(warehouse, run.run_at.replace(tzinfo=None))


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
        "insert into marts.account_summary_history__current "
        "select * from marts.account_summary_history__current where account_id = 'A001'",
    )
    failures = failing_checks(project, "marts")
    check = failures["unique_account_summary_account_id"]
    assert (check.severity, check.model) == ("error", "account_summary")
    # Both rows holding the key fail; the key is named once, and the report's profile
    # counts the rows from the test, not from a count of its own.
    assert check.message == "Found 2 failing rows in account_summary: account_id [A001]"
    profile = key_column_profile({}, list(failures.values()))
    assert profile["account_summary.account_id"]["duplicates"] == 2


@pytest.mark.parametrize(
    ("age_hours", "status", "severity"), [(30, "warn", "warn"), (50, "fail", "error")]
)
def test_an_aged_delivery_warns_after_24_hours_and_errors_after_48(
    built, age_hours, status, severity
):
    run, _ = built
    aged = datetime.now(UTC).replace(tzinfo=None) - timedelta(hours=age_hours)
    plant(run.warehouse, f"update raw._file_loads set first_loaded_at = '{aged}'")
    checks = {check.name: check for check in check_source_freshness.fn(run.warehouse)}
    assert {(c.status, c.severity) for c in checks.values()} == {(status, severity)}
    assert (
        f"{age_hours - 1}." in checks["source_freshness_accounts"].message
        or f"{age_hours}." in checks["source_freshness_accounts"].message
    )


def test_a_fresh_delivery_passes_freshness(built):
    run, _ = built
    assert {check.status for check in check_source_freshness.fn(run.warehouse)} == {"pass"}


# Each defect the issue names, planted where its check looks: (layer, defect, check, key).
PLANTED_DEFECTS = {
    "orphan_account": (
        "marts",
        (
            "update marts.account_summary_history__current set customer_id = 424242 "
            "where account_id = 'A001'"
        ),
        "relationships_account_summary_customer_id__customer_id__ref_customer_profile_",
        "424242",
    ),
    "out_of_range_rate": (
        "marts",
        (
            "update marts.account_summary_history__current set interest_rate_pct = 0.0300 "
            "where account_id = 'A002'"
        ),
        "accepted_range_interest_rate_pct",
        "A002",
    ),
    "wrong_arithmetic": (
        "marts",
        (
            "update marts.account_summary_history__current "
            "set new_balance_amount = new_balance_amount + 0.01 where account_id = 'A003'"
        ),
        "new_balance_equals_original_plus_interest",
        "A003",
    ),
    "overlapping_scd2_versions": (
        "snapshots",
        """insert into snapshots.accounts_snapshot__history by name
           select * replace (valid_from - interval 1 day as valid_from),
               valid_from + interval 1 hour as valid_to
           from snapshots.accounts_snapshot__current where account_id = 'A004'""",
        "scd2_versions_do_not_overlap_accounts_snapshot_account_id",
        "A004",
    ),
    "has_loan_slipped_through": (
        "marts",
        (
            "update marts.customer_profile_history__current set has_loan = null "
            "where customer_id = 5"
        ),
        "not_null_customer_profile_has_loan",
        "5",
    ),
}


@pytest.mark.parametrize("defect", list(PLANTED_DEFECTS))
def test_planted_defect_fails_its_named_check_with_the_offending_key(built, defect):
    layer, sql, check_name, key = PLANTED_DEFECTS[defect]
    run, project = built
    plant(run.warehouse, sql)
    failures = failing_checks(project, layer)
    assert check_name in failures, sorted(failures)
    check = failures[check_name]
    assert check.severity == "error" and check.blocking
    assert key in check.message, check.message


def test_a_fixed_record_is_resolved_not_deleted(tmp_path):
    customers = "CustomerID,Name,HasLoan\n1,Ann,yes\n2,Bob,maybe\n"
    accounts = "AccountID,CustomerID,Balance,AccountType\nA1,1,10.00,savings\n"
    first = run_steps(
        write_delivery(tmp_path / "d1", customers, accounts), tmp_path / "w.duckdb", tmp_path / "o1"
    )
    fixed = run_steps(
        write_delivery(tmp_path / "d2", customers.replace("maybe", "no"), accounts),
        tmp_path / "w.duckdb",
        tmp_path / "o2",
        run_at=first.run_at + timedelta(days=1),
    )
    history = fixed.query(
        "select raw_customer_id, quarantine_reason, first_quarantined_at, resolved_at from staging.quarantine_customers"
    )
    assert history == [
        (
            "2",
            "invalid_has_loan",
            first.run_at.replace(tzinfo=None),
            fixed.run_at.replace(tzinfo=None),
        )
    ]
    assert fixed.query("select customer_id from staging.stg_customers order by 1") == [(1,), (2,)]
    # The review CSV shows only this run's quarantined rows: none.
    assert (tmp_path / "o2" / "quarantine_customers.csv").read_text().count("\n") == 1
