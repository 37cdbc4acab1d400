"""Null and duplicate counts of key columns, for the report's metrics.

Nothing is counted twice. In a delivery, a missing or shared id is exactly what staging's
quarantine reasons decide (`missing_customer_id`, `duplicate_customer_id`, ...: empty after
trimming, or shared among the rows that passed every earlier rule), so the raw columns'
counts are those reasons' counts. A model's key is tested `not_null` and `unique` by dbt,
and the counts are those tests' failing rows. Both count rows: a NULL key, or a key that
another row also has.
"""

from __future__ import annotations

from flows.quality.checks import CheckResult

# Each delivered key column and the quarantine reasons that count its missing and shared ids.
RAW_KEY_REASONS: dict[str, tuple[str, str, str]] = {
    "raw.customers.customerid": ("customers", "missing_customer_id", "duplicate_customer_id"),
    "raw.accounts.accountid": ("accounts", "missing_account_id", "duplicate_account_id"),
}


def key_column_profile(
    quarantine: dict[str, dict[str, int]], checks: list[CheckResult]
) -> dict[str, dict[str, int]]:
    """{column: {"nulls": n, "duplicates": n}} for the delivery's ids and every model key
    (a column with a dbt `unique` test) whose tests ran."""
    profile = {
        column: {
            "nulls": quarantine[table].get(missing, 0),
            "duplicates": quarantine[table].get(shared, 0),
        }
        for column, (table, missing, shared) in RAW_KEY_REASONS.items()
        if table in quarantine
    }
    tests = {check.name: check for check in checks if check.kind == "dbt_test"}
    for check in tests.values():
        prefix = f"unique_{check.model}_"
        if not check.name.startswith(prefix):
            continue
        column = check.name.removeprefix(prefix)
        counts = {"duplicates": _failing_rows(check)}
        not_null = tests.get(f"not_null_{check.model}_{column}")
        if not_null is not None:
            counts = {"nulls": _failing_rows(not_null), **counts}
        profile[f"{check.model}.{column}"] = counts
    return profile


def _failing_rows(check: CheckResult) -> int | None:
    """0 for a passing test; else its failing rows (None if it could not count them)."""
    return 0 if check.status == "pass" else check.failures
