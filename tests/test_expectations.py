"""Great Expectations suites (flows/steps/expectations.py, expectations/*.json).

The bundled sample passes every expectation; planted defects on a copy of its warehouse
fail the named expectation at error severity, with the offending key or value in the
message. The shipped suites hold only what dbt does not test (the delivery as a whole,
tables against each other); suites an operator adds run the same way. The runs share one GX import and one validation per warehouse.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import duckdb
import pytest

from flows.quality.checks import CheckResult
from flows.steps.expectations import EXPECTATIONS_DIR, RELATIONS, validate_expectations


def by_name(results: list[CheckResult]) -> dict[tuple[str, str], CheckResult]:
    return {(r.model, r.name): r for r in results}


def failing(results: list[CheckResult]) -> set[tuple[str, str]]:
    return {(r.model, r.name) for r in results if r.status != "pass"}


@pytest.fixture(scope="module")
def sample_results(sample_run) -> list[CheckResult]:
    # A default-config connection stays open meanwhile, as dbt's may in the flow's process.
    with duckdb.connect(str(sample_run.warehouse)) as held:
        results = validate_expectations.fn(sample_run.warehouse)
        held.execute("select 1").fetchall()
    return results


# The suites the project ships: the delivery as a whole, and marts against staging.
SHIPPED_SUITES = {"raw_customers", "raw_accounts", "account_summary", "customer_profile"}


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
    assert names == SHIPPED_SUITES
    assert names <= set(RELATIONS)


def test_suites_hold_only_what_dbt_does_not_test():
    """GX checks the delivery as a whole and tables against each other; a rule about one
    model's rows is a dbt test, so no shipped expectation is row-level on a dbt model."""
    row_level = {"expect_column_values_to_be_unique", "expect_column_values_to_not_be_null"}
    for path in EXPECTATIONS_DIR.glob("*.json"):
        for expectation in json.loads(path.read_text())["expectations"]:
            if not path.stem.startswith("raw_"):
                assert expectation["type"].startswith("expect_table_"), (path.name, expectation)
            elif expectation["type"] in row_level:
                assert expectation["kwargs"]["column"] == "_source_line"


def test_sample_passes_every_expectation(sample_results):
    assert len(sample_results) == 10
    assert [r for r in sample_results if r.status != "pass"] == []
    assert {r.kind for r in sample_results} == {"expectation"}
    assert {r.severity for r in sample_results} == {"error"}
    assert {r.model for r in sample_results} == SHIPPED_SUITES
    # One name per expectation of a model: the report tells them apart by name.
    assert len(by_name(sample_results)) == len(sample_results)
    names = by_name(sample_results)
    for key in [
        ("account_summary", "expect_table_row_count_to_be_between"),
        ("customer_profile", "expect_table_row_count_to_equal"),
        ("raw_accounts", "expect_table_columns_to_match_set"),
        ("raw_customers", "expect_column_values_to_be_unique__source_line"),
    ]:
        assert key in names


def plant_defects(warehouse: Path) -> dict[str, object]:
    """Defects in marts, staging's base table and raw; returns the planted keys."""
    with duckdb.connect(str(warehouse)) as con:
        duplicate, null_loan = con.execute(
            "select min(customer_id), max(customer_id) from marts.customer_profile"
        ).fetchone()
        con.execute(
            "insert into marts.customer_profile_history__current select * replace "
            "(valid_from - interval 1 second as valid_from) "
            "from marts.customer_profile_history__current where customer_id = ?",
            [duplicate],
        )
        con.execute(
            "update marts.customer_profile_history__current set has_loan = null "
            "where customer_id = ?",
            [null_loan],
        )
        # stg_accounts is a view over this table's rows without a quarantine reason.
        (bad_type_account,) = con.execute(
            "select min(account_id) from staging.stg_accounts"
        ).fetchone()
        con.execute(
            "update staging.base_accounts_validated__current set account_type = 'loan' "
            "where account_id = ? and quarantine_reason is null",
            [bad_type_account],
        )
        # raw.<table> is the delivery's rows with their lines: one line repeated, none left.
        con.execute("update raw._lines_customers set _source_line = 3 where _source_line = 4")
        con.execute("delete from raw._lines_accounts")
    return {"duplicate": duplicate, "null_loan": null_loan, "bad_type_account": bad_type_account}


@pytest.fixture(scope="module")
def defects(sample_run, tmp_path_factory):
    warehouse = tmp_path_factory.mktemp("expectations") / "warehouse.duckdb"
    # dbt's connection may still be open in this process with the newest data in the WAL.
    with duckdb.connect(str(sample_run.warehouse)) as con:
        con.execute("checkpoint")
    shutil.copy(sample_run.warehouse, warehouse)
    planted = plant_defects(warehouse)
    return warehouse, planted, validate_expectations.fn(warehouse)


def test_planted_defects_fail_exactly_their_expectations(defects):
    _, _, results = defects
    assert failing(results) == {
        ("customer_profile", "expect_table_row_count_to_equal"),
        ("raw_customers", "expect_column_values_to_be_unique__source_line"),
        ("raw_accounts", "expect_table_row_count_to_be_between"),
    }
    for result in results:
        if result.status != "pass":
            assert (result.status, result.severity, result.blocking) == ("fail", "error", True)
            assert result.message


def test_a_repeated_line_names_the_value(defects):
    _, _, results = defects
    check = by_name(results)[("raw_customers", "expect_column_values_to_be_unique__source_line")]
    assert check.message == "Found 2 rows in raw_customers: _source_line not unique: [3, 3]"
    assert check.failures == 2


def test_a_duplicate_customer_breaks_the_row_count_against_staging(defects):
    warehouse, _, results = defects
    with duckdb.connect(str(warehouse)) as con:
        (customers,) = con.execute("select count(*) from staging.stg_customers").fetchone()
    row_count = by_name(results)[("customer_profile", "expect_table_row_count_to_equal")]
    assert row_count.message == (
        f"customer_profile has {customers + 1} rows, expected {customers} (rows of stg_customers)"
    )


def test_empty_raw_table_fails_the_row_count(defects):
    _, _, results = defects
    check = by_name(results)[("raw_accounts", "expect_table_row_count_to_be_between")]
    assert check.message == "raw_accounts has 0 rows, expected at least 1"


def write_suite(folder: Path, name: str, expectations: list[dict]) -> None:
    suite = {"name": name, "id": None, "expectations": expectations, "meta": {}, "notes": None}
    (folder / f"{name}.json").write_text(json.dumps(suite))


def test_an_operator_suite_names_values_and_keys(defects, tmp_path):
    """Any suite an operator adds is run the same way; its failures name the offending
    values and the relation's key."""
    warehouse, planted, _ = defects
    write_suite(
        tmp_path,
        "stg_accounts",
        [
            {
                "type": "expect_column_values_to_be_in_set",
                "kwargs": {"column": "account_type", "value_set": ["savings", "checking"]},
            }
        ],
    )
    write_suite(
        tmp_path,
        "customer_profile",
        [{"type": "expect_column_values_to_not_be_null", "kwargs": {"column": "has_loan"}}],
    )
    checks = by_name(validate_expectations.fn(warehouse, suites_dir=tmp_path))
    in_set = checks[("stg_accounts", "expect_column_values_to_be_in_set_account_type")]
    assert in_set.message == (
        "Found 1 row in stg_accounts: account_type not in [savings, checking]: [loan] "
        f"(account_id [{planted['bad_type_account']}])"
    )
    not_null = checks[("customer_profile", "expect_column_values_to_not_be_null_has_loan")]
    assert not_null.message == (
        f"Found 1 row in customer_profile: has_loan is NULL: customer_id [{planted['null_loan']}]"
    )


def test_every_connection_is_closed(defects):
    warehouse, _, _ = defects
    # DuckDB refuses a read-only connection while any default-config one is open in the
    # process: this opens only if the run closed every connection it made.
    duckdb.connect(str(warehouse), read_only=True).close()


def test_a_suite_can_mark_an_expectation_as_warning(defects, tmp_path):
    warehouse, _, _ = defects
    suite = json.loads((EXPECTATIONS_DIR / "raw_accounts.json").read_text())
    for expectation in suite["expectations"]:
        if expectation["type"] == "expect_table_row_count_to_be_between":
            expectation["meta"] = {"severity": "warn"}
    (tmp_path / "raw_accounts.json").write_text(json.dumps(suite))

    results = by_name(validate_expectations.fn(warehouse, suites_dir=tmp_path))

    check = results[("raw_accounts", "expect_table_row_count_to_be_between")]
    assert (check.status, check.severity, check.blocking) == ("warn", "warn", False)
    assert check.message == "raw_accounts has 0 rows, expected at least 1"
    assert results[("raw_accounts", "expect_table_columns_to_match_set")].status == "pass"


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

    results = validate_expectations.fn(warehouse)
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
    duckdb.connect(str(warehouse), read_only=True).close()
