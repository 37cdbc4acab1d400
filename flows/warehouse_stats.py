"""Counts read back from the warehouse for the report: quarantine per reason, rows per layer."""

from __future__ import annotations

from pathlib import Path

import duckdb

from flows.config import DELIVERY_FILES


def quarantine_counts(warehouse: Path) -> dict[str, tuple[int, dict[str, int]]]:
    """Per delivery table: rows delivered, and quarantined rows per reason."""
    counts = {}
    with duckdb.connect(str(warehouse)) as con:
        for table in DELIVERY_FILES:
            rows = con.execute(
                f"select quarantine_reason, count(*) from staging.base_{table}_validated group by all"
            ).fetchall()
            by_reason = {reason: n for reason, n in rows if reason is not None}
            counts[table] = (sum(n for _, n in rows), by_reason)
    return counts


def layer_row_counts(warehouse: Path) -> dict[str, dict[str, int]]:
    """Rows in each layer's main relations, for the metrics."""
    relations = {
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
    with duckdb.connect(str(warehouse)) as con:
        existing = {
            f"{schema}.{name}"
            for schema, name in con.execute(
                "select table_schema, table_name from information_schema.tables"
            ).fetchall()
        }
        return {
            table: {
                label: con.execute(f"select count(*) from {relation}").fetchone()[0]
                for label, relation in layers.items()
                if relation in existing
            }
            for table, layers in relations.items()
        }
