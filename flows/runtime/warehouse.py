"""Connections to the DuckDB warehouse, with the memory ceiling every run keeps to.

DuckDB's buffers may grow to the ceiling (flows/config.py: a fixed default, or 80% of the
memory the process may use where that is less); DuckDB spills to disk where it can.
"""

from __future__ import annotations

from pathlib import Path

import duckdb

from flows.config import DUCKDB_MEMORY_LIMIT


def connect(warehouse: Path | str = ":memory:") -> duckdb.DuckDBPyConnection:
    """The warehouse, or (by default) a DuckDB of its own in memory."""
    # A setting, not a connect-time config: DuckDB refuses a second connection to a file
    # with a different config in one process, and dbt's connection may be open.
    con = duckdb.connect(str(warehouse))
    con.execute(f"set memory_limit = '{DUCKDB_MEMORY_LIMIT}'")
    return con
