"""Ingestion: a delivery's CSV files into the warehouse's raw schema, as text.

DuckDB's own CSV reader does the reading (no row passes through Python);
flows/steps/delivery_csv.py reads one file and names each way that can fail. Python reads
each file's header, to match the required columns, and streams the bytes once for the
content hash, a pass that also finds what the reader must be told about the bytes. Both
files load in one transaction: a broken file leaves the raw tables exactly as they were.

Each raw row keeps `_source_file` (the name), `_source_line` (the record's position, the
header being 1, empty lines not counted) and `_loaded_at` (UTC, when this file's content
first reached this warehouse, recorded in `raw._file_loads` so a new orchestrator home
does not reset it).
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import duckdb
from prefect import task

from flows.config import RAW_SCHEMA
from flows.contract import DELIVERY_FILES
from flows.errors import InputError
from flows.runtime.log import step_logger
from flows.runtime.warehouse import connect
from flows.steps.delivery_csv import (
    READ_CHUNK_BYTES,
    DeliveryHeader,
    FileScan,
    check_file,
    open_delivery_csv,
    scan_file,
)


@dataclass(frozen=True)
class IngestedFile:
    """What ingestion did with one delivery file."""

    table: str
    file_name: str
    sha256: str
    rows: int
    loaded_at: datetime
    extra_columns: tuple[str, ...]
    reloaded: bool  # False when the warehouse already held this exact content


@task(name="ingest-delivery")
def ingest_delivery(
    input_dir: Path, warehouse: Path, known_scans: dict[str, FileScan] | None = None
) -> list[IngestedFile]:
    """Load every delivery file whose content the warehouse does not hold yet.

    `known_scans`: the files' scans (content hash and what the reader needs to know) if the
    caller has just made them (reading a large file once is enough). Never retried: every
    failure here is the data's, and the same bytes fail the same way.
    """
    files = delivery_paths(input_dir)
    for path in files.values():
        if not path.is_file():
            raise InputError(path.name, f"file not found in {input_dir}")
    scans = known_scans or {table: scan_file(path) for table, path in files.items()}
    headers = {
        table: check_file(path, DELIVERY_FILES[table], scans[table])
        for table, path in files.items()
    }

    warehouse.parent.mkdir(parents=True, exist_ok=True)
    with connect(warehouse) as con:
        _ensure_bookkeeping(con)
        con.execute("begin transaction")
        try:
            results = [
                _load_file(con, table, files[table], headers[table], scans[table])
                for table in files
            ]
            con.execute("commit")
        except BaseException:
            con.execute("rollback")
            raise
    _log_ingested(results)
    return results


def _log_ingested(files: list[IngestedFile]) -> None:
    logger = step_logger(__name__)
    for loaded in files:
        verb = "loaded" if loaded.reloaded else "unchanged, not re-loaded"
        logger.info(
            "%s: %s rows %s (sha256 %s)", loaded.file_name, loaded.rows, verb, loaded.sha256[:12]
        )
        if loaded.extra_columns:
            logger.warning(
                "%s has extra columns, kept in raw: %s",
                loaded.file_name,
                ", ".join(loaded.extra_columns),
            )


def delivery_paths(input_dir: Path) -> dict[str, Path]:
    """Each raw table and the delivery file it is loaded from."""
    return {table: input_dir / f"{table}.csv" for table in DELIVERY_FILES}


def file_sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        while chunk := handle.read(READ_CHUNK_BYTES):
            digest.update(chunk)
    return digest.hexdigest()


def _ensure_bookkeeping(con: duckdb.DuckDBPyConnection) -> None:
    con.execute(f"create schema if not exists {RAW_SCHEMA}")
    # Which content each file had when first seen, so _loaded_at survives re-runs.
    con.execute(
        f"""
        create table if not exists {RAW_SCHEMA}._file_loads (
            file_name varchar not null,
            sha256 varchar not null,
            first_loaded_at timestamp not null,
            primary key (file_name, sha256)
        )
        """
    )
    # Which content each raw table holds now.
    con.execute(
        f"""
        create table if not exists {RAW_SCHEMA}._current_files (
            table_name varchar primary key,
            file_name varchar not null,
            sha256 varchar not null,
            row_count bigint not null,
            extra_columns varchar[] not null
        )
        """
    )


def _load_file(
    con: duckdb.DuckDBPyConnection,
    table: str,
    path: Path,
    header: DeliveryHeader,
    scan: FileScan,
) -> IngestedFile:
    required = {name.lower() for name in DELIVERY_FILES[table]}
    extras = tuple(name for name in header.columns if name not in required)
    sha256 = scan.sha256
    loaded_at = _first_loaded_at(con, path.name, sha256)

    current = con.execute(
        f"select sha256, row_count from {RAW_SCHEMA}._current_files where table_name = ?",
        [table],
    ).fetchone()
    if current is not None and current[0] == sha256 and raw_table_exists(con, table):
        return IngestedFile(table, path.name, sha256, current[1], loaded_at, extras, False)

    rows = _copy_csv_into_raw(con, table, path, header, scan, loaded_at)
    con.execute(
        f"insert or replace into {RAW_SCHEMA}._current_files values (?, ?, ?, ?, ?)",
        [table, path.name, sha256, rows, list(extras)],
    )
    return IngestedFile(table, path.name, sha256, rows, loaded_at, extras, True)


def _first_loaded_at(con: duckdb.DuckDBPyConnection, file_name: str, sha256: str) -> datetime:
    now = datetime.now(UTC).replace(tzinfo=None)
    con.execute(
        f"insert or ignore into {RAW_SCHEMA}._file_loads values (?, ?, ?)",
        [file_name, sha256, now],
    )
    (loaded_at,) = con.execute(
        f"select first_loaded_at from {RAW_SCHEMA}._file_loads where file_name = ? and sha256 = ?",
        [file_name, sha256],
    ).fetchone()
    return loaded_at


def raw_table_exists(con: duckdb.DuckDBPyConnection, table: str) -> bool:
    return bool(
        con.execute(
            "select count(*) from information_schema.tables where table_schema = ? and table_name = ?",
            [RAW_SCHEMA, table],
        ).fetchone()[0]
    )


def _copy_csv_into_raw(
    con: duckdb.DuckDBPyConnection,
    table: str,
    path: Path,
    header: DeliveryHeader,
    scan: FileScan,
    loaded_at: datetime,
) -> int:
    """Replace raw.<table> with the file's records, every value as text."""
    selected = ", ".join(_quote_identifier(name) for name in header.columns)
    raw_table = f"{RAW_SCHEMA}.{_quote_identifier(table)}"
    with open_delivery_csv(path, header, scan, rejects_table=f"_rejects_{table}") as delivery:
        # Ordinality numbers records as read (empty lines skipped), so the header is 1 and
        # data starts at 2.
        delivery.execute(
            con,
            f"""
            create or replace table {raw_table} as
            select
                {selected},
                ? as _source_file,
                cast(record_number + 1 as bigint) as _source_line,
                cast(? as timestamp) as _loaded_at
            from {delivery.table_function()}
                with ordinality as delivered({selected}, record_number)
            """,
            [path.name, loaded_at],
        )
    (rows,) = con.execute(f"select count(*) from {raw_table}").fetchone()
    return rows


def _quote_identifier(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'
