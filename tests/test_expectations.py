"""Great Expectations suites (flows/expectations.py, expectations/*.json).

The bundled sample passes every expectation; planted defects on a copy of its warehouse
fail the named expectation at error severity, with the offending key or value in the
message. The runs share one GX import and one validation per warehouse.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import duckdb
import pytest

from flows.checks import CheckResult
from flows.expectations import EXPECTATIONS_DIR, RELATIONS, run_expectation_suites


def by_name(results: list[CheckResult]) -> dict[tuple[str, str], CheckResult]:
    return {(r.model, r.name): r for r in results}


def failing(results: list[CheckResult]) -> set[tuple[str, str]]:
    return {(r.model, r.name) for r in results if r.status != "pass"}


@pytest.fixture(scope="module")
def sample_results(sample_run) -> list[CheckResult]:
    # A default-config connection stays open meanwhile, as dbt's may in the flow's process.
    with duckdb.connect(str(sample_run.warehouse)) as held:
        results = run_expectation_suites(sample_run.warehouse)
        held.execute("select 1").fetchall()
    return results


def test_suites_are_gx_json_one_per_relation():
    import great_expectations as gx

    gx.get_context(mode="ephemeral")
    names = set()
    for path in EXPECTATIONS_DIR.glob("*.json"):
        data = json.loads(path.read_text())
        suite = gx.ExpectationSuite(**data)
        assert suite.to_json_dict() == data, path.name
        assert suite.name == path.stem
        names.add(suite.name)
    assert names == set(RELATIONS)


def test_sample_passes_every_expectation(sample_results):
    assert len(sample_results) >= 20
    assert [r for r in sample_results if r.status != "pass"] == []
    assert {r.kind for r in sample_results} == {"expectation"}
    assert {r.severity for r in sample_results} == {"error"}
    assert {r.model for r in sample_results} == set(RELATIONS)
    # One name per expectation of a model: the report tells them apart by name.
    assert len(by_name(sample_results)) == len(sample_results)
    names = by_name(sample_results)
    for key in [
        ("account_summary", "expect_column_values_to_be_unique_account_id"),
        ("account_summary", "expect_column_values_to_be_between_interest_rate_pct"),
        ("account_summary", "expect_table_row_count_to_be_between"),
        ("customer_profile", "expect_table_row_count_to_equal"),
        ("stg_accounts", "expect_column_values_to_be_in_set_account_type"),
        ("stg_customers", "expect_column_values_to_be_in_set_has_loan"),
        ("raw_accounts", "expect_table_columns_to_match_set"),
        ("raw_customers", "expect_column_values_to_be_unique__source_line"),
    ]:
        assert key in names


def plant_defects(warehouse: Path) -> dict[str, object]:
    """Defects in marts, staging's base table and raw; returns the planted keys."""
    with duckdb.connect(str(warehouse)) as con:
        (rate_account,) = con.execute(
            "select min(account_id) from marts.account_summary"
        ).fetchone()
        con.execute(
            "update marts.account_summary set interest_rate_pct = 0.03 where account_id = ?",
            [rate_account],
        )
        duplicate, null_loan = con.execute(
            "select min(customer_id), max(customer_id) from marts.customer_profile"
        ).fetchone()
        con.execute(
            "insert into marts.customer_profile select * from marts.customer_profile "
            "where customer_id = ?",
            [duplicate],
        )
        con.execute(
            "update marts.customer_profile set has_loan = null where customer_id = ?", [null_loan]
        )
        # stg_accounts is a view over this table's rows without a quarantine reason.
        (bad_type_account,) = con.execute(
            "select min(account_id) from staging.base_accounts_validated "
            "where quarantine_reason is null"
        ).fetchone()
        con.execute(
            "update staging.base_accounts_validated set account_type = 'loan' where account_id = ? "
            "and quarantine_reason is null",
            [bad_type_account],
        )
        con.execute("delete from raw.accounts")
    return {
        "rate_account": rate_account,
        "duplicate": duplicate,
        "null_loan": null_loan,
        "bad_type_account": bad_type_account,
    }


@pytest.fixture(scope="module")
def defects(sample_run, tmp_path_factory):
    warehouse = tmp_path_factory.mktemp("expectations") / "warehouse.duckdb"
    # dbt's connection may still be open in this process with the newest data in the WAL.
    with duckdb.connect(str(sample_run.warehouse)) as con:
        con.execute("checkpoint")
    shutil.copy(sample_run.warehouse, warehouse)
    planted = plant_defects(warehouse)
    return warehouse, planted, run_expectation_suites(warehouse)


def test_planted_defects_fail_exactly_their_expectations(defects):
    _, _, results = defects
    assert failing(results) == {
        ("account_summary", "expect_column_values_to_be_between_interest_rate_pct"),
        ("customer_profile", "expect_column_values_to_be_unique_customer_id"),
        ("customer_profile", "expect_table_row_count_to_equal"),
        ("customer_profile", "expect_column_values_to_not_be_null_has_loan"),
        ("stg_accounts", "expect_column_values_to_be_in_set_account_type"),
        ("raw_accounts", "expect_table_row_count_to_be_between"),
    }
    for result in results:
        if result.status != "pass":
            assert (result.status, result.severity, result.blocking) == ("fail", "error", True)
            assert result.message


def test_rate_outside_range_names_the_value_and_account(defects):
    _, planted, results = defects
    check = by_name(results)[
        ("account_summary", "expect_column_values_to_be_between_interest_rate_pct")
    ]
    assert check.message.startswith(
        "Found 1 row in account_summary: interest_rate_pct outside [0.01, 0.025]: [0.03"
    )
    assert f"account_id [{planted['rate_account']}]" in check.message


def test_duplicate_customer_names_the_key_and_breaks_the_row_count(defects):
    warehouse, planted, results = defects
    checks = by_name(results)
    unique = checks[("customer_profile", "expect_column_values_to_be_unique_customer_id")]
    key = planted["duplicate"]
    assert (
        unique.message
        == f"Found 2 rows in customer_profile: customer_id not unique: [{key}, {key}]"
    )
    with duckdb.connect(str(warehouse)) as con:
        (customers,) = con.execute("select count(*) from staging.stg_customers").fetchone()
    row_count = checks[("customer_profile", "expect_table_row_count_to_equal")]
    assert row_count.message == (
        f"customer_profile has {customers + 1} rows, expected {customers} (rows of stg_customers)"
    )


def test_null_has_loan_names_the_customer(defects):
    _, planted, results = defects
    check = by_name(results)[("customer_profile", "expect_column_values_to_not_be_null_has_loan")]
    assert check.message == (
        f"Found 1 row in customer_profile: has_loan is NULL: customer_id [{planted['null_loan']}]"
    )


def test_invalid_account_type_in_staging_names_value_and_account(defects):
    _, planted, results = defects
    check = by_name(results)[("stg_accounts", "expect_column_values_to_be_in_set_account_type")]
    assert check.message == (
        "Found 1 row in stg_accounts: account_type not in [savings, checking]: [loan] "
        f"(account_id [{planted['bad_type_account']}])"
    )


def test_empty_raw_table_fails_the_row_count(defects):
    _, _, results = defects
    check = by_name(results)[("raw_accounts", "expect_table_row_count_to_be_between")]
    assert check.message == "raw_accounts has 0 rows, expected at least 1"


def test_every_connection_is_closed(defects):
    warehouse, _, _ = defects
    # DuckDB refuses a read-only connection while any default-config one is open in the
    # process: this opens only if the run closed every connection it made.
    duckdb.connect(str(warehouse), read_only=True).close()


def test_a_suite_can_mark_an_expectation_as_warning(defects, tmp_path):
    warehouse, _, _ = defects
    suite = json.loads((EXPECTATIONS_DIR / "account_summary.json").read_text())
    for expectation in suite["expectations"]:
        if expectation["kwargs"].get("column") == "interest_rate_pct":
            expectation["meta"] = {"severity": "warn"}
    (tmp_path / "account_summary.json").write_text(json.dumps(suite))

    results = by_name(run_expectation_suites(warehouse, suites_dir=tmp_path))

    check = results[("account_summary", "expect_column_values_to_be_between_interest_rate_pct")]
    assert (check.status, check.severity, check.blocking) == ("warn", "warn", False)
    assert "[0.03" in check.message
    assert (
        results[("account_summary", "expect_column_values_to_not_be_null_interest_rate_pct")].status
        == "pass"
    )


def test_missing_relations_and_columns_fail_with_a_reason(tmp_path):
    """A warehouse without staging, with raw.customers lacking a column: every expectation
    still gets a result, failing with the reason."""
    warehouse = tmp_path / "partial.duckdb"
    with duckdb.connect(str(warehouse)) as con:
        con.execute("create schema raw; create schema marts")
        con.execute(
            "create table raw.customers as select '1' as customerid, 'Ann' as name, "
            "'a.csv' as _source_file, 2::bigint as _source_line, now()::timestamp as _loaded_at"
        )
        con.execute(
            "create table marts.customer_profile as select 1::bigint as customer_id, "
            "'Ann' as customer_name, true as has_loan, 0::bigint as savings_account_count, "
            "0::bigint as checking_account_count, 0.00::decimal(18,2) as total_savings_balance_amount, "
            "0.00::decimal(18,2) as total_annual_interest_amount"
        )

    results = run_expectation_suites(warehouse)
    checks = by_name(results)

    assert checks[("raw_customers", "expect_table_columns_to_match_set")].message == (
        "raw_customers lacks columns [hasloan]"
    )
    assert (
        checks[("raw_customers", "expect_column_values_to_be_unique__source_line")].status == "pass"
    )
    missing = [r for r in results if r.model == "account_summary"]
    assert missing and all(r.status == "fail" for r in missing)
    assert (
        missing[0].message
        == "cannot validate account_summary: marts.account_summary does not exist"
    )
    row_count = checks[("customer_profile", "expect_table_row_count_to_equal")]
    assert row_count.status == "fail"
    assert "staging.stg_customers does not exist" in row_count.message
    assert (
        checks[("customer_profile", "expect_column_values_to_be_unique_customer_id")].status
        == "pass"
    )
    duckdb.connect(str(warehouse), read_only=True).close()
