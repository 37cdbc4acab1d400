"""Counts read back from the warehouse for the report: quarantine per reason, rows per layer."""

from __future__ import annotations

from pathlib import Path

import duckdb

from flows.config import DELIVERY_FILES
from flows.warehouse_connection import connect


def quarantine_counts(warehouse: Path) -> dict[str, tuple[int, dict[str, int]]]:
    """Per delivery table: rows delivered, and quarantined rows per reason."""
    counts = {}
    with connect(warehouse) as con:
        for table in DELIVERY_FILES:
            rows = con.execute(
                f"select quarantine_reason, count(*) from staging.base_{table}_validated group by all"
            ).fetchall()
            by_reason = {reason: n for reason, n in rows if reason is not None}
            counts[table] = (sum(n for _, n in rows), by_reason)
    return counts


# The key column of each relation whose nulls and duplicates the report counts.
KEY_COLUMNS = {
    "raw.customers": "customerid",
    "raw.accounts": "accountid",
    "staging.stg_customers": "customer_id",
    "staging.stg_accounts": "account_id",
    "marts.account_summary": "account_id",
    "marts.customer_profile": "customer_id",
}


def key_column_profile(warehouse: Path) -> dict[str, dict[str, int]]:
    """Null and duplicate counts of each relation's key column, one scan per relation."""
    profile = {}
    with connect(warehouse) as con:
        existing = _existing_relations(con)
        for relation, column in KEY_COLUMNS.items():
            if relation not in existing:
                continue
            nulls, duplicates = con.execute(
                f"select count(*) - count({column}), count({column}) - count(distinct {column}) "
                f"from {relation}"
            ).fetchone()
            profile[f"{relation}.{column}"] = {"nulls": nulls, "duplicates": duplicates}
    return profile


def _existing_relations(con: duckdb.DuckDBPyConnection) -> set[str]:
    return {
        f"{schema}.{name}"
        for schema, name in con.execute(
            "select table_schema, table_name from information_schema.tables"
        ).fetchall()
    }


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
    with connect(warehouse) as con:
        existing = _existing_relations(con)
        return {
            table: {
                label: con.execute(f"select count(*) from {relation}").fetchone()[0]
                for label, relation in layers.items()
                if relation in existing
            }
            for table, layers in relations.items()
        }
