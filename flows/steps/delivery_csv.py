"""Reading one delivery file with DuckDB's CSV reader: its header, the scan, and what a
broken file gets told.

Every reader option is explicit (the sniffer must never guess a dialect or a type), and
every problem the reader finds becomes an InputError naming the file, the physical line
(what an editor shows) and the problem.
"""

from __future__ import annotations

import csv
import hashlib
import io
from dataclasses import dataclass
from pathlib import Path

import duckdb

from flows.errors import InputError

HASH_CHUNK_BYTES = 1 << 20


@dataclass(frozen=True)
class Header:
    columns: tuple[str, ...]  # lower-cased, trimmed, in the file's order
    line: int  # physical line of the header record


def file_sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        while chunk := handle.read(HASH_CHUNK_BYTES):
            digest.update(chunk)
    return digest.hexdigest()


def read_header(path: Path, required: tuple[str, ...]) -> Header:
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
    return Header(columns=columns, line=line)


def scan_sql(path: Path, header: Header, rejects: str) -> str:
    """`read_csv(...) with ordinality as delivered(<columns>, record_number)`: the file's
    records, every value as text; record_number counts records as read (empty lines
    skipped), so the header is 0 and the first data record 1. Problems go to the tables
    `<rejects>` and `<rejects>_scan`, read by `raise_for_rejects`."""
    column_types = ", ".join(f"{quote_literal(name)}: 'VARCHAR'" for name in header.columns)
    selected = ", ".join(quote_identifier(name) for name in header.columns)
    return f"""
        read_csv(
            {quote_literal(str(path))},
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
    """


def drop_rejects(con: duckdb.DuckDBPyConnection, rejects: str) -> None:
    con.execute(f"drop table if exists {rejects}")
    con.execute(f"drop table if exists {rejects}_scan")


def raise_for_rejects(con: duckdb.DuckDBPyConnection, rejects: str, path: Path) -> None:
    """The first problem the reader stored, as an InputError; nothing if there was none."""
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


def quote_identifier(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


def quote_literal(value: str) -> str:
    return "'" + value.replace("'", "''") + "'"
