"""Ingestion: a delivery's CSV files into the warehouse's raw schema, as text.

DuckDB's own CSV reader does the reading (no row passes through Python). Python reads
only each file's header, to match the required columns, and streams the bytes once for
the content hash. Both files load in one transaction: a broken file leaves the raw
tables exactly as they were.

Each raw row keeps `_source_file` (the name), `_source_line` (the record's position, the
header being 1, empty lines not counted) and `_loaded_at` (UTC, when this file's content
first reached this warehouse, recorded in `raw._file_loads` so a new orchestrator home
does not reset it).
"""

from __future__ import annotations

import csv
import hashlib
import io
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

HASH_CHUNK_BYTES = 1 << 20


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


@dataclass(frozen=True)
class _Header:
    columns: tuple[str, ...]  # lower-cased, trimmed
    line: int  # physical line of the header record


@task(name="ingest-delivery")
def ingest_delivery(
    input_dir: Path, warehouse: Path, known_sha256: dict[str, str] | None = None
) -> list[IngestedFile]:
    """Load every delivery file whose content the warehouse does not hold yet.

    `known_sha256`: the files' hashes if the caller has just computed them (reading a large
    file once is enough). Never retried: every failure here is the data's, and the same
    bytes fail the same way.
    """
    files = delivery_paths(input_dir)
    for path in files.values():
        if not path.is_file():
            raise InputError(path.name, f"file not found in {input_dir}")
    headers = {table: _read_header(path, DELIVERY_FILES[table]) for table, path in files.items()}
    hashes = known_sha256 or {table: file_sha256(path) for table, path in files.items()}

    warehouse.parent.mkdir(parents=True, exist_ok=True)
    with connect(warehouse) as con:
        _ensure_bookkeeping(con)
        con.execute("begin transaction")
        try:
            results = [
                _load_file(con, table, files[table], headers[table], hashes[table])
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
        while chunk := handle.read(HASH_CHUNK_BYTES):
            digest.update(chunk)
    return digest.hexdigest()


def _read_header(path: Path, required: tuple[str, ...]) -> _Header:
    """The first non-empty record, checked against the required columns.

    Read as bytes up to the end of that record, so a problem further down the file is
    reported by the CSV reader at its own line, not blamed on the header.
    """
    record, line = b"", 0
    with path.open("rb") as handle:
        for raw_line in handle:
            line += 1
            if not record and not raw_line.strip(b"\r\n"):
                continue  # empty lines before the header
            record += raw_line
            if record.count(b'"') % 2 == 0:
                break
    if not record:
        raise InputError(path.name, "empty file: no header row")
    start_line = line - record.count(b"\n") + (1 if record.endswith(b"\n") else 0)
    try:
        text = record.decode("utf-8-sig")
        header = next(csv.reader(io.StringIO(text), strict=True))
    except UnicodeDecodeError as exc:
        raise InputError(path.name, f"not valid UTF-8 ({exc.reason})", line=start_line) from exc
    except (csv.Error, StopIteration) as exc:
        raise InputError(path.name, f"not CSV: unreadable header ({exc})", line=start_line) from exc
    line = start_line

    columns = tuple(name.strip().lower() for name in header)
    seen: set[str] = set()
    for index, name in enumerate(columns, start=1):
        if not name:
            raise InputError(path.name, f"header column {index} has no name", line=line)
        if name in seen:
            raise InputError(path.name, f"header names column '{name}' twice", line=line)
        seen.add(name)
    missing = [name for name in required if name.lower() not in seen]
    if missing:
        raise InputError(
            path.name,
            f"missing required column(s) {', '.join(missing)} (header: {', '.join(header)})",
            line=line,
        )
    return _Header(columns=columns, line=line)


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
    con: duckdb.DuckDBPyConnection, table: str, path: Path, header: _Header, sha256: str
) -> IngestedFile:
    required = {name.lower() for name in DELIVERY_FILES[table]}
    extras = tuple(name for name in header.columns if name not in required)
    loaded_at = _first_loaded_at(con, path.name, sha256)

    current = con.execute(
        f"select sha256, row_count from {RAW_SCHEMA}._current_files where table_name = ?",
        [table],
    ).fetchone()
    if current is not None and current[0] == sha256 and raw_table_exists(con, table):
        return IngestedFile(table, path.name, sha256, current[1], loaded_at, extras, False)

    rows = _copy_csv_into_raw(con, table, path, header, loaded_at)
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
    con: duckdb.DuckDBPyConnection, table: str, path: Path, header: _Header, loaded_at: datetime
) -> int:
    """Replace raw.<table> with the file's records, every value as text."""
    column_types = ", ".join(f"{_quote_literal(name)}: 'VARCHAR'" for name in header.columns)
    selected = ", ".join(_quote_identifier(name) for name in header.columns)
    rejects = f"_rejects_{table}"
    con.execute(f"drop table if exists {rejects}")
    con.execute(f"drop table if exists {rejects}_scan")
    # Every option explicit: the sniffer must never guess a dialect or a type. Ordinality
    # numbers records as read (empty lines skipped), so the header is 1 and data starts at 2.
    con.execute(
        f"""
        create or replace table {RAW_SCHEMA}.{_quote_identifier(table)} as
        select
            {selected},
            ? as _source_file,
            cast(record_number + 1 as bigint) as _source_line,
            cast(? as timestamp) as _loaded_at
        from read_csv(
            ?,
            columns = {{{column_types}}},
            header = true,
            skip = {header.line - 1},
            auto_detect = false,
            delim = ',',
            quote = '"',
            escape = '"',
            encoding = 'utf-8',
            strict_mode = true,
            allow_quoted_nulls = false,
            store_rejects = true,
            rejects_table = '{rejects}',
            rejects_scan = '{rejects}_scan'
        ) with ordinality as delivered({selected}, record_number)
        """,
        [path.name, loaded_at, str(path)],
    )
    first_error = con.execute(
        f"select byte_position, line_byte_position, error_type, error_message from {rejects} "
        "order by line_byte_position, byte_position limit 1"
    ).fetchone()
    if first_error is not None:
        _, record_start, error_type, message = first_error
        # DuckDB's record start can sit on the line end before the record (or a skipped
        # empty line); the record itself begins at the next byte that is not a line end.
        # For an unterminated quote this is where the quote opened, not the end of file.
        raise InputError(
            path.name,
            _describe_csv_error(error_type, message),
            line=_physical_line(path, _skip_newlines(path, record_start)),
        )
    (rows,) = con.execute(
        f"select count(*) from {RAW_SCHEMA}.{_quote_identifier(table)}"
    ).fetchone()
    return rows


def _describe_csv_error(error_type: str, message: str) -> str:
    if error_type == "INVALID ENCODING":
        return "not valid UTF-8"
    if error_type == "UNQUOTED VALUE":
        return "not CSV: unterminated or misplaced quote"
    if error_type in ("TOO MANY COLUMNS", "MISSING COLUMNS"):
        return f"not CSV: the record's field count does not match the header ({message})"
    return f"not CSV: {error_type.lower()} ({message})"


def _skip_newlines(path: Path, position: int) -> int:
    """The first byte at or after `position` that is not part of a line end."""
    with path.open("rb") as handle:
        handle.seek(position)
        while handle.read(1) in (b"\r", b"\n"):
            position += 1
    return position


def _physical_line(path: Path, byte_position: int) -> int:
    """1-based line number of a byte offset, counting every newline before it."""
    newlines = 0
    remaining = byte_position
    with path.open("rb") as handle:
        while remaining > 0 and (chunk := handle.read(min(HASH_CHUNK_BYTES, remaining))):
            newlines += chunk.count(b"\n")
            remaining -= len(chunk)
    return newlines + 1


def _quote_identifier(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


def _quote_literal(value: str) -> str:
    return "'" + value.replace("'", "''") + "'"
