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
def freshness_rules() -> tuple[tuple[str, str, dict[str, Any]], ...]:
    """(source table, query of its newest load time, thresholds) of every source table
    with a freshness rule, a table's own settings overriding its source's (a table may
    switch freshness off with `freshness: null`)."""
    rules = []
    for source in yaml.safe_load(SOURCES_YAML.read_text(encoding="utf-8"))["sources"]:
        source_config = source.get("config") or {}
        for table in source.get("tables") or []:
            config = {**source_config, **(table.get("config") or {})}
            thresholds = config.get("freshness")
            query = config.get("loaded_at_query")
            column = config.get("loaded_at_field") or source.get("loaded_at_field")
            if not thresholds or not (query or column):
                continue
            if query is None:
                schema = source.get("schema") or source["name"]
                query = (
                    f'select "{column}" from {schema}.{table.get("identifier") or table["name"]}'
                )
            rules.append((table["name"], query.strip(), thresholds))
    return tuple(sorted(rules, key=lambda rule: rule[0]))


@task(name="source-freshness")
def check_source_freshness(warehouse: Path) -> list[CheckResult]:
    """One check per source table: pass, warn (past warn_after) or fail (past error_after)."""
    now = datetime.now(UTC).replace(tzinfo=None)
    checks = []
    with connect(warehouse) as con:
        for name, query, thresholds in freshness_rules():
            (newest,) = con.execute(
                f"select max(loaded) from ({query}) as loads(loaded)"
            ).fetchone()
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
