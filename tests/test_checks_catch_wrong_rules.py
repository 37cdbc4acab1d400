"""A check that reuses the model's own macro can only catch tampering: if the rule itself is
coded wrong, model and check agree. The project's business-rule checks restate each rule
on their own (a literal tier table, whole-number arithmetic, patterns), so a wrong rule
fails them.

Shown by mutation: a copy of the dbt project with the loan bonus, the rounding and the
trim each coded wrong, built on the bundled sample. The unit tests (literal expected
values) fail first and would stop the models; built without them, each restated data test
fails too, naming the rows the wrong rule produced.
"""

from __future__ import annotations

import shutil
from datetime import UTC, datetime
from pathlib import Path

import pytest
from conftest import SAMPLE_DIR
from test_plain_messages import CONTROL_BUT_NEWLINE

from flows.config import DBT_LAYERS, DBT_PROJECT_DIR
from flows.errors import LayerFailed
from flows.steps.dbt_layers import DbtProject
from flows.steps.ingest import ingest_delivery

# (file, the rule as the project codes it, the same rule coded wrong). Two groups, each
# built on its own: a failing test on account_summary makes dbt skip customer_profile, and
# the tier check reads the loan flag from there.
MUTATIONS = {
    "loan bonus of 0.0040 and trim of spaces only": [
        (
            "macros/interest.sql",
            "+ case when {{ has_loan }} then 0.0050 else 0.0000 end",
            "+ case when {{ has_loan }} then 0.0040 else 0.0000 end",
        ),
        (
            "macros/text_cleaning.sql",
            "else trim({{ column }}, {{ chars | join(' || ') }})",
            "else trim({{ column }})",
        ),
    ],
    "interest truncated, not rounded": [
        (
            "macros/interest.sql",
            "round(cast({{ balance_amount }} as decimal(38, 2)) * {{ rate }}, 2)",
            "trunc(cast({{ balance_amount }} as decimal(38, 2)) * {{ rate }} * 100) / 100",
        ),
    ],
}


def build_with_wrong_rules(
    root: Path, mutations: list[tuple[str, str, str]]
) -> tuple[dict, list[LayerFailed]]:
    """Every check's result, by name, of the sample built by a mutated copy of the project:
    with unit tests first, then without them (so that the models are built regardless);
    and the errors of the layers that failed."""
    project = root / "dbt_project"
    shutil.copytree(DBT_PROJECT_DIR, project, ignore=shutil.ignore_patterns("target", "logs"))
    for path, right, wrong in mutations:
        source = (project / path).read_text()
        assert right in source, f"{path} no longer holds {right!r}: update the mutation"
        (project / path).write_text(source.replace(right, wrong))

    warehouse = root / "warehouse.duckdb"
    run_at = datetime.now(UTC).replace(tzinfo=None)
    ingest_delivery.fn(SAMPLE_DIR, warehouse, run_at)
    dbt = DbtProject(warehouse, run_at, project_dir=project)
    checks = {}
    errors = []
    for unit_tests in (True, False):
        for layer in DBT_LAYERS:
            try:
                result = dbt.build_layer(layer, unit_tests=unit_tests)
            except LayerFailed as failed:
                errors.append(failed)
                result = failed.result
            checks.update({check.name: check for check in result.checks})
    return checks, errors


@pytest.fixture(scope="module", params=list(MUTATIONS))
def wrong_rules(request, tmp_path_factory) -> tuple[str, dict, list[LayerFailed]]:
    """(mutation group, every check's result by name, the layers' errors) of the sample
    built with it."""
    group = request.param
    root = tmp_path_factory.mktemp("wrong-rules")
    return group, *build_with_wrong_rules(root, MUTATIONS[group])


# What each group of wrong rules must fail: unit tests, then (check, offending key) pairs.
EXPECTED_FAILURES = {
    "loan bonus of 0.0040 and trim of spaces only": (
        {
            "interest_tiers_boundaries_and_loan_bonus",
            "base_customers_validated_standardises_has_loan_and_name",
        },
        [
            # Every savings account of a customer with a loan.
            ("interest_rate_matches_tier_and_loan_flag", "account_id ["),
            ("is_trimmed_text_stg_customers_customer_name", "customer_id"),
        ],
    ),
    "interest truncated, not rounded": (
        {"interest_rounds_half_away_from_zero_exactly"},
        # A011: 14.50 x 0.0100 = 0.145, which rounds to 0.15; truncated it is 0.14.
        [("annual_interest_is_rounded_balance_times_rate", "A011")],
    ),
}


def test_the_unit_tests_catch_the_wrong_rules(wrong_rules):
    group, checks, _ = wrong_rules
    failed = {
        name
        for name, check in checks.items()
        if check.kind == "unit_test" and check.status == "fail"
    }
    unit_tests, _ = EXPECTED_FAILURES[group]
    assert unit_tests <= failed


def test_a_wrong_rule_fails_its_restated_check(wrong_rules):
    group, checks, _ = wrong_rules
    _, data_tests = EXPECTED_FAILURES[group]
    for check_name, offending in data_tests:
        check = checks[check_name]
        assert (check.status, check.severity) == ("fail", "error"), check
        assert check.failures, check
        assert offending in check.message, check.message


def test_what_dbt_says_of_a_wrong_rule_reaches_people_as_plain_text(wrong_rules):
    """dbt colours a failing unit test's diff for a terminal; the check and the layer's
    error, from which the report, Slack, the dashboard and the run's state are written,
    hold the words without the colour codes."""
    _, checks, errors = wrong_rules
    messages = [check.message for check in checks.values()] + [str(e) for e in errors]
    assert [m for m in messages if CONTROL_BUT_NEWLINE.search(m)] == []
    diff = "actual differs from expected: @@ ,"
    assert any(c.kind == "unit_test" and c.message.startswith(diff) for c in checks.values())
    assert any(diff in str(error) for error in errors)


def test_the_runs_unit_test_step_stops_the_run_at_its_layer(tmp_path):
    """A run tests a layer's units on their own once the layer is built (their result is
    cached on the code alone): a wrong rule fails them there, and the error carries only
    unit tests."""
    project = tmp_path / "dbt_project"
    shutil.copytree(DBT_PROJECT_DIR, project, ignore=shutil.ignore_patterns("target", "logs"))
    for path, right, wrong in MUTATIONS["interest truncated, not rounded"]:
        (project / path).write_text((project / path).read_text().replace(right, wrong))
    warehouse = tmp_path / "warehouse.duckdb"
    run_at = datetime.now(UTC).replace(tzinfo=None)
    ingest_delivery.fn(SAMPLE_DIR, warehouse, run_at)
    dbt = DbtProject(warehouse, run_at, project_dir=project)
    try:
        assert [layer for layer in DBT_LAYERS if dbt.has_unit_tests(layer)] == [
            "staging",
            "intermediate",
        ]
        for layer in ("staging", "snapshots", "intermediate"):
            dbt.build_layer(layer, unit_tests=False)
        assert {c.status for c in dbt.unit_test_layer("staging").checks} == {"pass"}
        with pytest.raises(LayerFailed) as failed:
            dbt.unit_test_layer("intermediate")
    finally:
        dbt.close()
    checks = failed.value.result.checks
    assert {check.kind for check in checks} == {"unit_test"}
    assert "interest_rounds_half_away_from_zero_exactly" in {
        check.name for check in checks if check.status == "fail"
    }
