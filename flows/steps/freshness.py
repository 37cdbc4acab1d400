"""Source freshness: the age of the newest data in each raw table, against the thresholds of
the dbt source definition (`dbt_project/models/staging/_ledgerflow__sources.yml`).

The thresholds are written once, in that YAML, where `dbt source freshness` reads them too;
the measurement is written once, here, and is dbt's: the newest `loaded_at_field` against
now, in UTC; past `error_after` is an error, else past `warn_after` a warning. Measured
here rather than through dbt because it is one query per source, and a run whose delivery
did not change needs no dbt at all.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from functools import cache
from pathlib import Path
from typing import Any

import yaml
from prefect import task

from flows.config import DBT_PROJECT_DIR
from flows.quality.checks import CheckResult
from flows.runtime.warehouse import connect

SOURCES_YAML = DBT_PROJECT_DIR / "models" / "staging" / "_ledgerflow__sources.yml"
_PERIODS = {"minute": timedelta(minutes=1), "hour": timedelta(hours=1), "day": timedelta(days=1)}


@cache
def freshness_rules() -> tuple[tuple[str, str, str, dict[str, Any]], ...]:
    """(source table, relation, loaded_at column, thresholds) of every source table that
    has a freshness rule, a table's own settings overriding its source's."""
    rules = []
    for source in yaml.safe_load(SOURCES_YAML.read_text(encoding="utf-8"))["sources"]:
        for table in source.get("tables") or []:
            column = table.get("loaded_at_field") or source.get("loaded_at_field")
            thresholds = (table.get("config") or {}).get("freshness") or (
                source.get("config") or {}
            ).get("freshness")
            if column and thresholds:
                relation = f"{source.get('schema') or source['name']}.{table['name']}"
                rules.append((table["name"], relation, column, thresholds))
    return tuple(sorted(rules))


@task(name="source-freshness")
def check_source_freshness(warehouse: Path) -> list[CheckResult]:
    """One check per source table: pass, warn (past warn_after) or fail (past error_after)."""
    now = datetime.now(UTC).replace(tzinfo=None)
    checks = []
    with connect(warehouse) as con:
        for name, relation, column, thresholds in freshness_rules():
            (newest,) = con.execute(f'select max("{column}") from {relation}').fetchone()
            checks.append(freshness_check(name, newest, now, thresholds))
    return checks


def freshness_check(
    source: str, newest: datetime | None, now: datetime, thresholds: dict[str, Any]
) -> CheckResult:
    """The verdict for a source whose newest row was loaded at `newest` (None: no rows)."""

    def exceeded(threshold: dict | None) -> bool:
        if not threshold or not threshold.get("count"):
            return False
        return now - newest > threshold["count"] * _PERIODS[threshold["period"]]

    if newest is None:
        status, message = "error", f"{source} holds no rows, so it has no load time (error)"
    else:
        status = "pass"
        if exceeded(thresholds.get("error_after")):
            status = "error"
        elif exceeded(thresholds.get("warn_after")):
            status = "warn"
        age_hours = (now - newest).total_seconds() / 3600
        message = f"newest data in {source} is {age_hours:.1f} h old ({status})"
    outcome = {"pass": "pass", "warn": "warn"}.get(status, "fail")
    return CheckResult(
        name=f"source_freshness_{source}",
        model=f"source:{source}",
        kind="source_freshness",
        status=outcome,
        severity="warn" if outcome == "warn" else "error",
        message="" if outcome == "pass" else message,
    )
