"""Ingestion with change capture: a delivery's CSV files into the warehouse's raw schema,
every value as text, and what changed since the last delivery.

A record is identified by its content: the fingerprint (128-bit md5) of its business
values, never its line, which shifts between deliveries. For each delivery table
(customers, accounts) the warehouse keeps

    raw._records_<table>   one row per distinct content, with how many `_copies` of it the
                           file holds; versioned (valid_from / valid_to = the run that added
                           or removed it), so a run's change set is the rows it stamped
    raw._lines_<table>     every row of the current file: its fingerprint and `_source_line`
                           (the record's position, header = 1, empty lines not counted);
                           replaced whole by a run that reads a changed file
    raw.<table>            the contract's raw table, a view: each delivered row's values,
                           `_extra_columns`, `_source_file`, `_source_line` and `_loaded_at`

Extra columns (any beyond the contract's) are kept under one fixed column,
`_extra_columns`, a MAP from the column's name (trimmed, lower-cased) to its value: a
header's text is data and never becomes SQL (not here, not in dbt, which introspects the
raw tables), and a wide file widens no table.

and, for all tables, `raw._files` (versioned: which content each table holds now),
`raw._file_loads` (when each file content was first ingested: `_loaded_at`, in the
warehouse itself so a new Prefect home does not reset it), `raw.delivered_files` (a view
of the current files with their load time) and `raw._deliveries` (every run that read a
delivery, changed or not: the runs that "saw" a record).

DuckDB's CSV reader does the reading (no row passes through Python, flows/steps/
delivery_csv.py). A changed file costs two scans: one writes every row's fingerprint and
line, the second reads only the rows of new content. An unchanged file (same sha256) costs
nothing but its hash. Both files load in one transaction: a broken file leaves the raw
tables exactly as they were.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

import duckdb
from prefect import task

from flows.config import RAW_SCHEMA
from flows.contract import DELIVERY_FILES
from flows.errors import InputError
from flows.runtime import wap
from flows.runtime.log import step_logger
from flows.runtime.step_cache_policy import STEP_CACHE
from flows.runtime.warehouse import connect
from flows.steps.delivery_csv import (
    DeliveryCsv,
    DeliveryHeader,
    FileScan,
    check_file,
    open_delivery_csv,
    scan_file,
)

FILES = f"{RAW_SCHEMA}._files"
FILE_LOADS = f"{RAW_SCHEMA}._file_loads"
DELIVERIES = f"{RAW_SCHEMA}._deliveries"
DELIVERED_FILES = f"{RAW_SCHEMA}.delivered_files"
EXTRA_COLUMNS = "_extra_columns"
# Columns the warehouse adds to a delivered record; a delivered column may not be named so.
LINEAGE_COLUMNS = (
    "_source_file",
    "_source_line",
    "_loaded_at",
    "_fingerprint",
    "_copies",
    EXTRA_COLUMNS,
)


@dataclass(frozen=True)
class IngestedFile:
    """What ingestion did with one delivery file."""

    table: str
    file_name: str
    sha256: str
    rows: int
    columns: tuple[str, ...]  # the header, as delivered
    extra_columns: tuple[str, ...]
    changed: bool  # False when the warehouse already held this exact content
    new_records: int  # contents added (or whose number of copies changed)
    removed_records: int  # contents no longer delivered (or whose number of copies changed)


def records_table(table: str) -> str:
    return f"{RAW_SCHEMA}._records_{table}"


def lines_table(table: str) -> str:
    return f"{RAW_SCHEMA}._lines_{table}"


@task(name="ingest-delivery", cache_policy=STEP_CACHE)
def ingest_delivery(
    input_dir: Path,
    warehouse: Path,
    run_at: datetime,
    known_scans: dict[str, FileScan] | None = None,
    cache_key: str | None = None,
) -> list[IngestedFile]:
    """Capture what the delivery's files change in the warehouse, stamped with `run_at`.

    `known_scans`: the files' scans (content hash and what the reader needs to know) if the
    caller has just made them (reading a large file once is enough). Never retried: every
    failure here is the data's, and the same bytes fail the same way.
    """
    files = delivery_paths(input_dir)
    for path in files.values():
        if not path.is_file():
            raise InputError(path.name, f"file not found in {input_dir}")
    scans = known_scans or {table: scan_file(path) for table, path in files.items()}
    headers = {table: _checked_header(path, table, scans[table]) for table, path in files.items()}

    warehouse.parent.mkdir(parents=True, exist_ok=True)
    with connect(warehouse) as con:
        ensure_raw_schema(con)
        con.execute("begin transaction")
        try:
            results = [
                _capture(con, table, files[table], headers[table], scans[table], run_at)
                for table in files
            ]
            con.execute(f"insert into {DELIVERIES} values (?)", [run_at])
            con.execute("commit")
        except BaseException:
            con.execute("rollback")
            raise
    _log_ingested(results)
    return results


def delivery_paths(input_dir: Path) -> dict[str, Path]:
    """Each raw table and the delivery file it is loaded from."""
    return {table: input_dir / f"{table}.csv" for table in DELIVERY_FILES}


def ensure_raw_schema(con: duckdb.DuckDBPyConnection) -> None:
    con.execute(f"create schema if not exists {RAW_SCHEMA}")
    con.execute(
        f"""
        create table if not exists {FILE_LOADS} (
            file_name varchar not null,
            sha256 varchar not null,
            first_loaded_at timestamp not null,
            primary key (file_name, sha256)
        )
        """
    )
    con.execute(
        f"""
        create table if not exists {FILES} (
            table_name varchar not null,
            file_name varchar not null,
            sha256 varchar not null,
            row_count bigint not null,
            columns varchar[] not null,
            valid_from timestamp not null,
            valid_to timestamp
        )
        """
    )
    con.execute(f"create table if not exists {DELIVERIES} (seen_at timestamp not null)")
    con.execute(
        f"""
        create or replace view {DELIVERED_FILES} as
        select
            files.table_name,
            files.file_name,
            files.sha256,
            files.row_count,
            -- A header-only file has no data, so no load time: its freshness fails.
            case when files.row_count > 0 then loads.first_loaded_at end as loaded_at
        from {FILES} as files
        inner join {FILE_LOADS} as loads
            on files.file_name = loads.file_name and files.sha256 = loads.sha256
        where files.valid_to is null
        """
    )

    for table, required in DELIVERY_FILES.items():
        values = ", ".join(f"{quote_identifier(name.lower())} varchar" for name in required)
        con.execute(
            f"""
            create table if not exists {records_table(table)} (
                _fingerprint uhugeint not null,
                _copies integer not null,
                {values},
                {EXTRA_COLUMNS} map(varchar, varchar),
                _source_file varchar not null,
                valid_from timestamp not null,
                valid_to timestamp
            )
            """
        )
        # A warehouse from before extra columns were kept in a map gains the column.
        con.execute(
            f"alter table {records_table(table)} "
            f"add column if not exists {EXTRA_COLUMNS} map(varchar, varchar)"
        )
        con.execute(
            f"create table if not exists {lines_table(table)} "
            "(_fingerprint uhugeint not null, _source_line bigint not null)"
        )
        _create_raw_view(con, table)


def _checked_header(path: Path, table: str, scan: FileScan) -> DeliveryHeader:
    header = check_file(path, DELIVERY_FILES[table], scan)
    clashing = [name for name in header.columns if name in LINEAGE_COLUMNS]
    if clashing:
        raise InputError(
            path.name,
            f"column {clashing[0]!r} is a name the warehouse keeps for a record's lineage",
            line=header.line,
        )
    return header


def _capture(
    con: duckdb.DuckDBPyConnection,
    table: str,
    path: Path,
    header: DeliveryHeader,
    scan: FileScan,
    run_at: datetime,
) -> IngestedFile:
    sha256 = scan.sha256
    extras = _extra_columns(table, header)
    current = con.execute(
        f"select sha256, row_count, columns from {FILES} where table_name = ? and valid_to is null",
        [table],
    ).fetchone()
    if current is not None and current[0] == sha256 and tuple(current[2]) == header.columns:
        return IngestedFile(
            table, path.name, sha256, current[1], header.columns, extras, False, 0, 0
        )

    with open_delivery_csv(path, header, scan, rejects_table=f"_rejects_{table}") as delivery:
        rows = _write_lines(con, table, delivery, run_at)
        removed, added = _apply_changes(con, table, delivery, run_at)
    if current is not None:
        con.execute(
            f"update {FILES} set valid_to = ? where table_name = ? and valid_to is null",
            [run_at, table],
        )
    con.execute(
        f"insert into {FILES} values (?, ?, ?, ?, ?, ?, null)",
        [table, path.name, sha256, rows, list(header.columns), run_at],
    )
    con.execute(f"insert or ignore into {FILE_LOADS} values (?, ?, ?)", [path.name, sha256, run_at])
    return IngestedFile(
        table, path.name, sha256, rows, header.columns, extras, True, added, removed
    )


def _extra_columns(table: str, header: DeliveryHeader) -> tuple[str, ...]:
    required = {name.lower() for name in DELIVERY_FILES[table]}
    return tuple(name for name in header.columns if name not in required)


def _required_columns(table: str) -> list[str]:
    return [name.lower() for name in DELIVERY_FILES[table]]


def _values_sql(table: str, delivery: DeliveryCsv) -> dict[str, str]:
    """The record's business values as stored, each the SQL over a row of
    `delivery.scanned()`: the contract's columns, then the extra ones as one map whose
    names come from the `$extra_names` parameter, in name order."""
    header = delivery.header
    values = {name: f"delivered.{header.column(name)}" for name in _required_columns(table)}
    extras = sorted(_extra_columns(table, header))
    if extras:
        positions = ", ".join(f"delivered.{header.column(name)}" for name in extras)
        values[EXTRA_COLUMNS] = f"map($extra_names::varchar[], [{positions}])"
    else:
        values[EXTRA_COLUMNS] = "null::map(varchar, varchar)"
    return values


def _parameters(table: str, delivery: DeliveryCsv, **others: object) -> dict[str, object]:
    extras = sorted(_extra_columns(table, delivery.header))
    return {**others, **({"extra_names": extras} if extras else {})}


def _fingerprint_sql(values: dict[str, str]) -> str:
    """md5 over each value prefixed by its length (NULL as '-'), so no two different
    records can encode alike; then the extra columns, if any, as JSON (names and values,
    in name order), which no length-prefixed encoding can be confused with."""
    required = [
        f"coalesce(length({sql})::varchar || ':' || {sql}, '-')"
        for name, sql in values.items()
        if name != EXTRA_COLUMNS
    ]
    extras = f"coalesce(to_json({values[EXTRA_COLUMNS]})::varchar, '')"
    return f"md5_number({' || '.join([*required, extras])})"


def _write_lines(
    con: duckdb.DuckDBPyConnection, table: str, delivery: DeliveryCsv, run_at: datetime
) -> int:
    """First scan: every row's fingerprint and line, replacing the last file's lines."""
    wap.replace_table(con, lines_table(table), run_at)
    fingerprint = _fingerprint_sql(_values_sql(table, delivery))
    delivery.execute(
        con,
        f"""
        create table {lines_table(table)} as
        select
            {delivery.within_field_limit(fingerprint)} as _fingerprint,
            cast(record_number + 1 as bigint) as _source_line
        from {delivery.scanned()}
        """,
        _parameters(table, delivery),
    )
    (rows,) = con.execute(f"select count(*) from {lines_table(table)}").fetchone()
    return rows


def _apply_changes(
    con: duckdb.DuckDBPyConnection, table: str, delivery: DeliveryCsv, run_at: datetime
) -> tuple[int, int]:
    """Close the records this file no longer holds (as many copies), and add its new
    ones, read by the second scan; returns (closed, added)."""
    records = records_table(table)
    delivered = f"_delivered_{table}"
    con.execute(
        f"""
        create or replace temp table {delivered} as
        select _fingerprint, cast(count(*) as integer) as _copies, min(_source_line) as _line
        from {lines_table(table)}
        group by _fingerprint
        """
    )
    (closed,) = con.execute(
        f"""
        update {records} set valid_to = ?
        where valid_to is null
            and not exists (
                select 1 from {delivered}
                where {delivered}._fingerprint = {records}._fingerprint
                    and {delivered}._copies = {records}._copies
            )
        """,
        [run_at],
    ).fetchone()
    values = _values_sql(table, delivery)
    before = _open_records(con, records)
    delivery.execute(
        con,
        f"""
        insert into {records} (_fingerprint, _copies, {", ".join(values)}, _source_file,
                               valid_from, valid_to)
        with new_records as (
            select {delivered}._fingerprint, {delivered}._copies, {delivered}._line
            from {delivered}
            anti join (select _fingerprint, _copies from {records} where valid_to is null) as kept
                on {delivered}._fingerprint = kept._fingerprint
                and {delivered}._copies = kept._copies
        )
        select
            new_records._fingerprint,
            new_records._copies,
            {", ".join(values.values())},
            $source_file,
            $run_at,
            null
        from {delivery.scanned()}
        inner join new_records on delivered.record_number + 1 = new_records._line
        """,
        _parameters(table, delivery, source_file=delivery.file_name, run_at=run_at),
    )
    added = _open_records(con, records) - before
    con.execute(f"drop table {delivered}")
    return int(closed), added


def _open_records(con: duckdb.DuckDBPyConnection, records: str) -> int:
    (count,) = con.execute(f"select count(*) from {records} where valid_to is null").fetchone()
    return int(count)


def _create_raw_view(con: duckdb.DuckDBPyConnection, table: str) -> None:
    """raw.<table>: the current delivery as delivered, one row per line: the contract's
    columns, the extra ones (a map) and where the row came from."""
    values = ", ".join(f"records.{name}" for name in _required_columns(table))
    con.execute(
        f"""
        create or replace view {RAW_SCHEMA}.{quote_identifier(table)} as
        select
            {values},
            records.{EXTRA_COLUMNS},
            records._source_file,
            lines._source_line,
            files.loaded_at as _loaded_at,
            records._fingerprint
        from {lines_table(table)} as lines
        inner join {records_table(table)} as records
            on lines._fingerprint = records._fingerprint and records.valid_to is null
        cross join (
            select loaded_at from {DELIVERED_FILES} where table_name = {quote_literal(table)}
        ) as files
        """
    )


def _log_ingested(files: list[IngestedFile]) -> None:
    logger = step_logger(__name__)
    for loaded in files:
        if loaded.changed:
            logger.info(
                "%s: %s rows, %s new and %s removed contents (sha256 %s)",
                loaded.file_name,
                loaded.rows,
                loaded.new_records,
                loaded.removed_records,
                loaded.sha256[:12],
            )
        else:
            logger.info("%s: unchanged (sha256 %s)", loaded.file_name, loaded.sha256[:12])
        if loaded.extra_columns:
            logger.warning(
                "%s has extra columns, kept in raw: %s",
                loaded.file_name,
                ", ".join(loaded.extra_columns),
            )


def quote_identifier(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


def quote_literal(value: str) -> str:
    return "'" + value.replace("'", "''") + "'"
