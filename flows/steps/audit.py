"""The audit: what the warehouse holds after the build, read back for the report.

Quarantine counts per reason (right after staging, where the quarantine rates are decided)
and row counts per layer (after every check ran). Nothing here judges: the checks did.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import duckdb
from prefect import task

from flows.contract import DELIVERY_FILES
from flows.runtime.step_cache_policy import STEP_CACHE
from flows.runtime.text import plain_text
from flows.runtime.warehouse import connect

# The main relation of each layer, per delivery table, whose rows the report counts.
LAYER_RELATIONS: dict[str, dict[str, str]] = {
    "customers": {
        "raw": "raw.customers",
        "staging": "staging.stg_customers",
        "snapshot_versions": "snapshots.customers_snapshot",
        "customer_profile": "marts.customer_profile",
    },
    "accounts": {
        "raw": "raw.accounts",
        "staging": "staging.stg_accounts",
        "snapshot_versions": "snapshots.accounts_snapshot",
        "account_summary": "marts.account_summary",
    },
}


# Offending ids shown per quarantine reason (the dashboard's), as delivered.
QUARANTINE_KEYS_SHOWN = 10


@dataclass(frozen=True)
class QuarantineCount:
    rows_in: int
    by_reason: dict[str, int]
    # The smallest delivered ids of each reason, as plain text: the dashboard shows them,
    # and a delivered id is anyone's text.
    keys_by_reason: dict[str, list[str]]


@task(name="count-quarantine", cache_policy=STEP_CACHE)
def count_quarantine(warehouse: Path, cache_key: str | None = None) -> dict[str, QuarantineCount]:
    """Per delivery table: rows delivered, and quarantined rows and ids per reason."""
    counts = {}
    with connect(warehouse) as con:
        for table in DELIVERY_FILES:
            # A record delivered twice is two rows of the file.
            rows = con.execute(
                f"select quarantine_reason, sum(_copies), "
                f"min(raw_{table.removesuffix('s')}_id, {QUARANTINE_KEYS_SHOWN}) "
                f"from staging.base_{table}_validated__current group by all"
            ).fetchall()
            counts[table] = QuarantineCount(
                rows_in=sum(n for _, n, _ in rows),
                by_reason={reason: n for reason, n, _ in rows if reason is not None},
                keys_by_reason={
                    reason: [plain_text(key) for key in keys or []]
                    for reason, _, keys in rows
                    if reason is not None
                },
            )
    return counts


@task(name="count-rows", cache_policy=STEP_CACHE)
def count_rows(warehouse: Path, cache_key: str | None = None) -> dict[str, dict[str, int]]:
    """Rows in each layer's main relation, for the metrics."""
    with connect(warehouse) as con:
        existing = _existing_relations(con)
        return {
            table: {
                label: con.execute(f"select count(*) from {relation}").fetchone()[0]
                for label, relation in layers.items()
                if relation in existing
            }
            for table, layers in LAYER_RELATIONS.items()
        }


def _existing_relations(con: duckdb.DuckDBPyConnection) -> set[str]:
    return {
        f"{schema}.{name}"
        for schema, name in con.execute(
            "select table_schema, table_name from information_schema.tables"
        ).fetchall()
    }
