"""Checks on the change set (dbt_project/macros/change_sets.sql): a nightly run's data tests
read the keys changed tonight, both directions of a relationship included, and say so; a
full check reads whole tables.

One warehouse, two runs: the sample, then the sample with A002's balance changed (so
account A002 and customer 2 change tonight, nothing else does). Defects are then planted
directly in the warehouse, and the layer's tests run again against it.
"""

from __future__ import annotations

import re
import shutil

import duckdb
import pytest
import yaml
from conftest import SAMPLE_DIR, copy_sample, run_dbt, run_steps

from flows.config import DBT_PROJECT_DIR
from flows.errors import LayerFailed
from flows.quality.checks import CHANGE_SET, FIXTURES, WHOLE_TABLE
from flows.steps.dbt_layers import DbtProject

UNCHANGED_ACCOUNT, CHANGED_ACCOUNT = "A001", "A002"


@pytest.fixture(scope="module")
def second_night(tmp_path_factory):
    """A warehouse after two nights; returns (its path, the second night's stamp)."""
    root = tmp_path_factory.mktemp("change-set-checks")
    warehouse = root / "warehouse.duckdb"
    run_steps(SAMPLE_DIR, warehouse, root / "output")
    delivery = copy_sample(root / "second")
    accounts = (delivery / "accounts.csv").read_text()
    (delivery / "accounts.csv").write_text(
        accounts.replace("A002,2,BR01,5000.00,savings", "A002,2,BR01,5100.00,savings")
    )
    night = run_steps(delivery, warehouse, root / "output")
    return warehouse, night.run_at.replace(tzinfo=None)


@pytest.fixture
def warehouse(second_night, tmp_path):
    """A private copy of the second night's warehouse, to plant defects in."""
    source, run_at = second_night
    copy = tmp_path / "warehouse.duckdb"
    shutil.copy(source, copy)
    return copy, run_at


def checks_of(warehouse, run_at, layer, whole_tables=False):
    """The layer's checks run against the warehouse as the night `run_at` sees it."""
    project = DbtProject(warehouse, run_at, check_whole_tables=whole_tables)
    try:
        try:
            result = project.test_layer(layer)
        except LayerFailed as failed:
            result = failed.result
    finally:
        project.close()
    return {check.name: check for check in result.checks}


def plant(warehouse, sql, parameters=()):
    with duckdb.connect(str(warehouse)) as con:
        con.execute(sql, list(parameters))


def test_a_nightly_run_checks_the_change_set_and_says_so(warehouse):
    path, run_at = warehouse
    checks = checks_of(path, run_at, "marts")
    assert {c.status for c in checks.values()} == {"pass"}
    scopes = {name: c.scope for name, c in checks.items()}
    assert scopes["unique_account_summary_account_id"] == CHANGE_SET
    assert scopes["assert_customer_profile_matches_account_summary"] == CHANGE_SET
    whole = checks_of(path, run_at, "marts", whole_tables=True)
    assert {c.scope for c in whole.values()} == {WHOLE_TABLE}
    staging = checks_of(path, run_at, "staging")
    assert {c.scope for c in staging.values() if c.kind == "unit_test"} == {FIXTURES}


def test_a_row_changed_tonight_is_checked_and_an_unchanged_one_by_the_full_check(warehouse):
    path, run_at = warehouse
    for account in (CHANGED_ACCOUNT, UNCHANGED_ACCOUNT):
        plant(
            path,
            "update marts.account_summary_history__current "
            "set interest_rate_pct = 0.0300 where account_id = ?",
            [account],
        )
    name = "accepted_range_interest_rate_pct"
    nightly = checks_of(path, run_at, "marts")[name]
    assert (nightly.status, nightly.scope) == ("fail", CHANGE_SET)
    assert CHANGED_ACCOUNT in nightly.message and UNCHANGED_ACCOUNT not in nightly.message
    full = checks_of(path, run_at, "marts", whole_tables=True)[name]
    assert (full.status, full.scope) == ("fail", WHOLE_TABLE)
    assert CHANGED_ACCOUNT in full.message and UNCHANGED_ACCOUNT in full.message


def test_a_parent_closed_tonight_leaves_no_current_child(warehouse):
    """Customer 1 closed tonight in the profile while account A001 (unchanged tonight)
    still points at it: the child's own change set does not hold A001, the parent's does."""
    path, run_at = warehouse
    plant(
        path,
        "insert into marts.customer_profile_history__history by name "
        "select *, ?::timestamp as valid_to "
        "from marts.customer_profile_history__current where customer_id = 1",
        [run_at],
    )
    plant(path, "delete from marts.customer_profile_history__current where customer_id = 1")
    checks = checks_of(path, run_at, "marts")
    dangling = checks[
        "relationships_account_summary_customer_id__customer_id__ref_customer_profile_"
    ]
    assert (dangling.status, dangling.scope) == ("fail", CHANGE_SET)
    assert "[1]" in dangling.message


def test_a_check_on_the_change_set_builds_its_joins_on_the_change_set(second_night, tmp_path):
    """The staging relationship reaches stg_accounts through the keys changed tonight. DuckDB
    estimates `valid_from = <the run>` from the column's few distinct values as a large
    share of the table and, left to itself, builds the join's hash table on the whole of
    stg_accounts instead (at 10M, on 9.8M rows: out of memory with a second check at once).
    The project's connection settings (profiles.yml) keep the build side where the SQL
    puts it."""
    path, run_at = second_night
    name = "relationships_stg_accounts_customer_id__customer_id__ref_stg_customers_"
    compiled = run_dbt(
        tmp_path,
        "compile",
        "--select",
        name,
        env={
            "LEDGERFLOW_WAREHOUSE": str(path),
            "LEDGERFLOW_RUN_AT": run_at.isoformat(sep=" "),
            "LEDGERFLOW_CHECK_SCOPE": CHANGE_SET,
        },
    )
    assert compiled.returncode == 0, compiled.stdout
    (sql_file,) = (tmp_path / "target" / "compiled").rglob("relationships_stg_accounts_*.sql")
    sql = sql_file.read_text()
    assert "ledgerflow scope: change set" in sql

    profile = yaml.safe_load((DBT_PROJECT_DIR / "profiles.yml").read_text())
    settings = profile["ledgerflow"]["outputs"]["duckdb"]["settings"]
    with duckdb.connect(str(path), read_only=True) as con:
        for setting, value in settings.items():
            if "{{" not in str(value):
                con.execute(f"set {setting} = '{value}'")
        plan = "\n".join(row[1] for row in con.execute(f"explain {sql}").fetchall())
    joins = re.findall(r"Join Type: (\w+)", plan)
    assert "SEMI" in joins, plan
    assert not {"RIGHT_SEMI", "RIGHT_ANTI"} & set(joins), plan
