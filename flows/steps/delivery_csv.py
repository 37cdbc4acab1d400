"""Reading one delivery file: its bytes, its header, and DuckDB's `read_csv` over it.

DuckDB's reader parses the records (no row passes through Python), with every option
explicit so that nothing is sniffed or guessed. Measured on DuckDB 2.0.1, it cannot be
left alone with everything the contract allows or forbids, so this module covers the gaps:

- Strict mode is needed (without it a record with too many fields, or text after a
  closing quote, is cut short without an error), and strict mode refuses any mix of LF
  and CRLF line ends with an "invalid state" error that names no line. A file whose line
  ends are not all of one style is read through a copy whose CRLFs outside quotes are LF:
  the same lines, the same values (a line break inside a quoted value is part of the
  value and kept as delivered). The pass that computes the content hash already sees
  every byte, so it tells which files need the copy; a file of one style is read as is.
- `new_line` is left to DuckDB: set to '\\r\\n' with strict mode and a header, DuckDB
  returns no rows and no error. DuckDB takes the style from the first line break it
  meets, even one inside a quoted header name, and then returns no rows either, so a line
  break in a header name is bad input.
- A record longer than the reader's buffer is dropped without an error (unquoted) or
  reported as an unterminated quote on another line (quoted). The hash pass finds every
  line over the limit, so such a line is named before DuckDB reads the file; a quoted
  record over the limit made of short lines is told apart from a quote that is really
  left open by finding where the quote closes.
- With its default null string (the empty one), DuckDB drops empty fields past the
  header's width without a word (`1,a,b,,,` is read as `1,a,b`), so a record with too
  many fields goes through. The null string is set to NUL, which no accepted file holds:
  such a record is then rejected, and an empty value becomes NULL after the read.
- A NUL byte is kept in the value, and a carriage return (CR) outside quotes that ends no
  CRLF makes the reader fail without a line; a UTF-8 text CSV with LF or CRLF line ends
  has neither, so both are bad input, named with their line.

Every problem becomes an InputError naming the file, the physical line (what an editor
shows) and the problem, whether DuckDB put it in its rejects table or raised it.

A file is bounded before anything whose size follows it is built (flows/config.py): its
header's width, a record's length (found by the hash pass) and a value's length (checked
as the reader's rows are written). The header's names never become SQL: DuckDB reads the
columns under positional names (`c1`, `c2`, ...), and a name travels as a parameter.
"""

from __future__ import annotations

import codecs
import csv
import hashlib
import io
import mmap
import os
import re
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

import duckdb

from flows.config import (
    CSV_BUFFER_BYTES,
    CSV_MAX_COLUMNS,
    CSV_MAX_COLUMNS_VAR,
    CSV_MAX_FIELD_BYTES,
    CSV_MAX_FIELD_BYTES_VAR,
    CSV_MAX_LINE_BYTES,
    CSV_MAX_LINE_BYTES_VAR,
)
from flows.errors import InputError
from flows.runtime.warehouse import connect

READ_CHUNK_BYTES = 1 << 20

# scan_file measures only lines that cross a chunk boundary; that finds every line over
# the limit only while the limit is above the chunk size.
if CSV_MAX_LINE_BYTES <= READ_CHUNK_BYTES:
    raise ValueError(f"{CSV_MAX_LINE_BYTES_VAR} must be above {READ_CHUNK_BYTES}")

TOO_LONG = (
    f"longer than the reader's limit of {CSV_MAX_LINE_BYTES} bytes ({CSV_MAX_LINE_BYTES_VAR})"
)
TOO_WIDE = "the header has {columns} columns, more than the limit of {limit} ({var})"
FIELD_TOO_LONG = "a value is longer than the limit of {limit} bytes ({var})"
# What the row-writing statement raises for a value over the limit, followed by the
# record's number (DuckDB's error() carries no structure of its own).
_FIELD_TOO_LONG_MARKER = "ledgerflow-field-over-limit:"
_FIELD_TOO_LONG_RECORD = re.compile(re.escape(_FIELD_TOO_LONG_MARKER) + r"(\d+)")
NUL_BYTE = "not a text CSV: a NUL byte (0x00), which UTF-8 text never contains"
STRAY_CR = (
    "not CSV: a carriage return (CR) outside quotes that does not end a CRLF line end "
    "(line ends must be LF or CRLF)"
)
MISPLACED_QUOTE = (
    "not CSV: a quote that neither opens nor closes a whole value, in a file whose line "
    "ends mix LF and CRLF (RFC 4180: a quote inside a value is doubled, in a quoted value)"
)

_QUOTED = re.compile(rb'"[^"]*"')
# In the outside pieces joined by NUL (see _lf_chunk) each NUL is a quoted value, which
# must be followed by a comma, a line end or "" and (searched in the reversed string, so
# that both patterns start with the NUL and are found at memchr speed) follow a comma, a
# line start or "".
_TEXT_AFTER_QUOTED = re.compile(rb"\0[^,\r\n\0]")
_TEXT_BEFORE_QUOTED_REVERSED = re.compile(rb"\0[^,\n\0]")
_READER_ERROR_LINE = re.compile(r"CSV Error on Line: (\d+)")
_FIELD_COUNT_ERROR = "Expected Number of Columns"
REJECTS_LIMIT = 100


@dataclass(frozen=True)
class FileScan:
    """What one pass over a delivery file's bytes found: its content hash, and what the
    CSV reader must not be left to find (or to miss)."""

    sha256: str
    one_line_end_style: bool  # only LF or only CRLF line ends: DuckDB reads it as is
    first_nul_at: int | None  # byte offset
    first_long_line_at: int | None  # byte offset where the first line over the limit starts


@dataclass(frozen=True)
class DeliveryHeader:
    columns: tuple[str, ...]  # lower-cased, trimmed
    line: int  # physical line of the header record

    def column(self, name: str) -> str:
        """The SQL identifier DuckDB reads the column `name` under: its position, never
        its name as delivered."""
        return f"c{self.columns.index(name) + 1}"

    def identifiers(self) -> list[str]:
        return [f"c{position}" for position in range(1, len(self.columns) + 1)]


def scan_file(path: Path) -> FileScan:
    """Hash the file, and note its line-end styles, first NUL byte and first too-long line."""
    digest = hashlib.sha256()
    styles: set[str] = set()
    long_lines = _LongLineFinder()
    first_nul_at = None
    offset = 0
    with path.open("rb") as handle:
        for chunk in _chunks(handle):
            digest.update(chunk)
            styles |= _line_end_styles(chunk)
            if first_nul_at is None and (nul := chunk.find(b"\0")) >= 0:
                first_nul_at = offset + nul
            long_lines.feed(chunk, offset)
            offset += len(chunk)
    return FileScan(
        sha256=digest.hexdigest(),
        one_line_end_style=styles in ({"LF"}, {"CRLF"}, set()),
        first_nul_at=first_nul_at,
        first_long_line_at=long_lines.finish(offset),
    )


def _chunks(handle: BinaryIO) -> Iterator[bytes]:
    """The file in chunks that end on neither a CR nor a quote (but at the end of the file),
    so that no CRLF and no "" is split and each chunk can be judged alone."""
    while chunk := handle.read(READ_CHUNK_BYTES):
        while chunk.endswith((b"\r", b'"')) and (after := handle.read(1)):
            chunk += after
        yield chunk


def _line_end_styles(chunk: bytes) -> set[str]:
    # `in` is a memchr: a file without CR (the usual one) costs no counting.
    if b"\r" not in chunk:
        return {"LF"} if b"\n" in chunk else set()
    # A CR that ends no CRLF needs no copy: inside quotes DuckDB keeps it in the value,
    # outside it raises, and _reader_exception_error then finds the line.
    crlf = chunk.count(b"\r\n")
    styles = {"CRLF"} if crlf else set()
    if chunk.count(b"\n") > crlf:
        styles.add("LF")
    return styles


class _LongLineFinder:
    """Where the first line over the limit starts, from the chunks in order.

    A line within one chunk is shorter than a chunk, hence than the limit; only a line that
    ends in a later chunk than it starts can be longer, and it ends at that chunk's first LF.
    """

    def __init__(self) -> None:
        self.line_start = 0
        self.found: int | None = None

    def feed(self, chunk: bytes, offset: int) -> None:
        first_lf = chunk.find(b"\n")
        if first_lf < 0:
            return
        self._measure(offset + first_lf)
        self.line_start = offset + chunk.rfind(b"\n") + 1

    def finish(self, end: int) -> int | None:
        self._measure(end)
        return self.found

    def _measure(self, line_end: int) -> None:
        if self.found is None and line_end - self.line_start > CSV_MAX_LINE_BYTES:
            self.found = self.line_start


def check_file(path: Path, required: tuple[str, ...], scan: FileScan) -> DeliveryHeader:
    """The file's header, once its bytes hold nothing the reader would keep or mishandle."""
    problems = []
    if scan.first_nul_at is not None:
        problems.append((scan.first_nul_at, NUL_BYTE))
    if scan.first_long_line_at is not None:
        problems.append((scan.first_long_line_at, f"the line is {TOO_LONG}"))
    if problems:
        at, problem = min(problems)
        raise InputError(path.name, problem, line=_physical_line(path, at))
    return _read_header(path, required)


def _read_header(path: Path, required: tuple[str, ...]) -> DeliveryHeader:
    """The first non-empty record, checked against the required columns.

    Read as bytes up to the end of that record, so a problem further down the file is
    reported by the CSV reader at its own line, not blamed on the header.
    """
    record, line, start_line, quotes = b"", 0, 0, 0
    with path.open("rb") as handle:
        for raw_line in handle:
            line += 1
            if not record and not raw_line.strip(b"\r\n"):
                continue  # empty lines before the header
            start_line = start_line or line
            record += raw_line
            quotes += raw_line.count(b'"')
            if quotes % 2 == 0 or len(record) > CSV_MAX_LINE_BYTES:
                break
    if not record:
        raise InputError(path.name, "empty file: no header row")
    if quotes % 2:
        raise InputError(path.name, "not CSV: unterminated quote in the header", line=start_line)
    # A CR inside a quoted name is the name's line break, named as such below.
    if re.search(rb"\r(?!\n)", _QUOTED.sub(b"", record)):
        raise InputError(
            path.name,
            "not CSV: a carriage return (CR) in the header that does not end a CRLF line end",
            line=start_line,
        )
    try:
        header = next(csv.reader(io.StringIO(record.decode("utf-8-sig")), strict=True))
    except UnicodeDecodeError as exc:
        raise InputError(path.name, f"not valid UTF-8 ({exc.reason})", line=start_line) from exc
    except (csv.Error, StopIteration) as exc:
        raise InputError(path.name, f"not CSV: unreadable header ({exc})", line=start_line) from exc
    return _checked_header(path.name, header, required, start_line)


def _checked_header(
    file: str, header: list[str], required: tuple[str, ...], line: int
) -> DeliveryHeader:
    if len(header) > CSV_MAX_COLUMNS:
        problem = TOO_WIDE.format(
            columns=len(header), limit=CSV_MAX_COLUMNS, var=CSV_MAX_COLUMNS_VAR
        )
        raise InputError(file, problem, line=line)
    columns = tuple(name.strip().lower() for name in header)
    seen: set[str] = set()
    for index, (name, as_delivered) in enumerate(zip(columns, header, strict=True), start=1):
        if not name:
            raise InputError(file, f"header column {index} has no name", line=line)
        if "\n" in as_delivered or "\r" in as_delivered:
            raise InputError(file, f"header column {index} has a line break in its name", line=line)
        if name in seen:
            raise InputError(file, f"header names column '{name}' twice", line=line)
        seen.add(name)
    missing = [name for name in required if name.lower() not in seen]
    if missing:
        raise InputError(
            file,
            f"missing required column(s) {', '.join(missing)} (header: {', '.join(header)})",
            line=line,
        )
    return DeliveryHeader(columns=columns, line=line)


@dataclass(frozen=True)
class DeliveryCsv:
    """One delivery file ready for DuckDB: the `read_csv(...)` fragment to select from,
    and the statement runner that turns the reader's errors into InputErrors."""

    file_name: str  # the delivery's name, for messages
    source: Path  # what DuckDB reads: the delivery itself, or its LF copy (same lines)
    header: DeliveryHeader
    rejects_table: str

    def scanned(self) -> str:
        """The file's records as `delivered`, each column under its positional name
        (`DeliveryHeader.column`), numbered as read (empty lines skipped): the header is 0,
        so a record's `_source_line` is `record_number + 1`."""
        columns = self.header.identifiers()
        # An empty value is missing, quoted or not (see `table_function`).
        values = ", ".join(f"nullif({name}, '') as {name}" for name in columns)
        return (
            f"(select {values}, record_number from {self.table_function()} "
            f"with ordinality as read({', '.join(columns)}, record_number)) as delivered"
        )

    def within_field_limit(self, expression: str) -> str:
        """`expression` over a row of `scanned()`, or, for a record holding a value longer
        than the limit, an error that `execute` names with the record's line."""
        lengths = ", ".join(f"strlen(delivered.{name})" for name in self.header.identifiers())
        return (
            f"case when greatest({lengths}) > {CSV_MAX_FIELD_BYTES} "
            f"then error('{_FIELD_TOO_LONG_MARKER}' || delivered.record_number) "
            f"else {expression} end"
        )

    def table_function(self, source: Path | None = None, keep_rejects: bool = False) -> str:
        """`read_csv(...)` over the file (or `source`, a copy of part of it), every value
        as text; reusable in any statement run through `execute`."""
        columns = ", ".join(f"'{name}': 'VARCHAR'" for name in self.header.identifiers())
        # Every option explicit: the sniffer must never guess a dialect or a type.
        # `new_line` is the exception (see the module docstring).
        return f"""read_csv(
            {_quote_literal(str(source or self.source))},
            columns = {{{columns}}},
            header = true,
            skip = {self.header.line - 1},
            auto_detect = false,
            delim = ',',
            quote = '"',
            escape = '"',
            encoding = 'utf-8',
            strict_mode = true,
            allow_quoted_nulls = false,
            nullstr = chr(0),
            max_line_size = {CSV_MAX_LINE_BYTES},
            buffer_size = {CSV_BUFFER_BYTES},
            {self._rejects_options() if keep_rejects else "store_rejects = false"}
        )"""

    def _rejects_options(self) -> str:
        return f"""store_rejects = true,
            rejects_limit = {REJECTS_LIMIT},
            rejects_table = '{self.rejects_table}',
            rejects_scan = '{self.rejects_table}_scan'"""

    def execute(
        self,
        con: duckdb.DuckDBPyConnection,
        statement: str,
        parameters: list | dict | None = None,
    ) -> None:
        """Run a statement that reads `scanned()` or `table_function()` to the end (`create
        table ... as select`, `insert ... select`); any error of the reader is an InputError
        naming the file, the line and the problem.

        The reader raises at the first bad record (DuckDB names the earliest one, whatever
        thread found it). Its rejects table, which says where in the record and what, is
        not kept on this read: DuckDB writes a row, with the whole line, per field too many,
        so a line of a million commas cost minutes and gigabytes. `_input_error` finds the
        rest once a record is known to be bad.
        """
        try:
            con.execute(statement, parameters)
        except duckdb.InterruptException:
            raise
        except duckdb.Error as exc:
            raise self._input_error(exc) from exc

    def _input_error(self, exc: duckdb.Error) -> InputError:
        text = str(exc)
        if found := _FIELD_TOO_LONG_RECORD.search(text):
            line = _record_start_line(self.source, self.header.line, int(found.group(1)))
            problem = FIELD_TOO_LONG.format(limit=CSV_MAX_FIELD_BYTES, var=CSV_MAX_FIELD_BYTES_VAR)
            return InputError(self.file_name, problem, line)
        if (reader_line := _READER_ERROR_LINE.search(text)) is None:
            return self._reader_exception_error(exc)
        start, end = _reader_line_span(self.source, int(reader_line.group(1)))
        if _FIELD_COUNT_ERROR in text:
            return self._field_count_error(start, end)
        return self._rejected_in_prefix(end) or InputError(
            self.file_name, _describe_reader_exception(exc), _physical_line(self.source, start)
        )

    def _field_count_error(self, start: int, end: int) -> InputError:
        fields = _field_count(self.source, start, end)
        return InputError(
            self.file_name,
            f"not CSV: the record has {fields} field{'' if fields == 1 else 's'}, the "
            f"header {len(self.header.columns)} (field count does not match)",
            line=_physical_line(self.source, start),
        )

    def _rejected_in_prefix(self, end: int) -> InputError | None:
        """The file up to the end of the bad record read again, keeping the reader's
        rejects: the records before it are good, so only that one is rejected (a few rows,
        which `rejects_limit` bounds anyway). A prefix has the file's bytes at the file's
        offsets, so positions found in it are the file's. Read in a DuckDB of its own: the
        caller's transaction is aborted by the error."""
        with (
            tempfile.TemporaryDirectory(prefix="ledgerflow-csv-") as folder,
            connect() as con,
        ):
            prefix = Path(folder) / self.source.name
            _copy_prefix(self.source, prefix, end)
            try:
                # Every value used: DuckDB checks the encoding of the columns it reads only.
                lengths = ", ".join(f"sum(strlen({c}))" for c in self.header.identifiers())
                con.execute(
                    f"create temp table _prefix as select {lengths} "
                    f"from {self.table_function(prefix, keep_rejects=True)}"
                )
            except duckdb.Error as exc:
                return self._reader_exception_error(exc)
            first = con.execute(
                f"select line_byte_position, byte_position, error_type, error_message "
                f"from {self.rejects_table} order by line_byte_position, byte_position limit 1"
            ).fetchone()
        return None if first is None else self._rejected_record_error(*first)

    def _reader_exception_error(self, exc: duckdb.Error) -> InputError:
        """A failure DuckDB raised that names no line: the bytes are searched for what makes
        its parser fail (a CR that ends no CRLF, a misplaced quote), the way the LF copy
        searches them."""
        if "state machine reached an invalid state" in str(exc) and self.source.is_file():
            try:
                _write_lf_copy(self.source, Path(os.devnull))
            except InputError as located:
                return InputError(self.file_name, located.problem, located.line)
        return InputError(self.file_name, _describe_reader_exception(exc))

    def _rejected_record_error(
        self, record_at: int, error_at: int | None, error_type: str, message: str
    ) -> InputError:
        # DuckDB's record start (1-based) can sit on the line end before the record, or on
        # a skipped empty line; the record begins at the next byte that is not a line end.
        record_start = _skip_newlines(self.source, record_at - 1)
        line = _physical_line(self.source, record_start)
        if error_type == "UNQUOTED VALUE":
            return self._quote_error(error_at, line)
        if error_type in ("MISSING COLUMNS", "TOO MANY COLUMNS"):
            return self._field_count_error(record_start, _record_end(self.source, record_start))
        return InputError(self.file_name, _describe_rejected(error_type, message), line=line)

    def _quote_error(self, error_at: int | None, line: int) -> InputError:
        """An "unquoted value": a quote left open, text after a closing quote, or (DuckDB's
        report for a quoted record longer than its buffer) a value that is only too long.
        Named at the line where the quote opens: for a record longer than the buffer,
        DuckDB's record start is wrong."""
        quote_at = None if error_at is None else error_at - 1  # 1-based in the rejects table
        if quote_at is None or _byte_at(self.source, quote_at) != b'"':
            return InputError(self.file_name, "not CSV: unterminated or misplaced quote", line)
        quote_line = _physical_line(self.source, quote_at)
        close_at = _closing_quote(self.source, quote_at)
        if close_at is None:
            return InputError(
                self.file_name, "not CSV: unterminated quote (it is never closed)", quote_line
            )
        if _byte_at(self.source, close_at + 1) not in (b",", b"\r", b"\n", b""):
            return InputError(
                self.file_name,
                "not CSV: unterminated or misplaced quote (text follows the closing quote on "
                f"line {_physical_line(self.source, close_at)})",
                quote_line,
            )
        if close_at - _line_start(self.source, quote_at) > CSV_MAX_LINE_BYTES:
            return InputError(
                self.file_name, f"the record starting on this line is {TOO_LONG}", quote_line
            )
        return InputError(self.file_name, "not CSV: unterminated or misplaced quote", quote_line)


@contextmanager
def open_delivery_csv(
    path: Path, header: DeliveryHeader, scan: FileScan, rejects_table: str
) -> Iterator[DeliveryCsv]:
    """The file for DuckDB, valid inside the `with`: the file itself if its line ends are of
    one style, else an LF copy (removed on exit)."""
    if scan.one_line_end_style:
        yield DeliveryCsv(path.name, path, header, rejects_table)
        return
    with tempfile.TemporaryDirectory(prefix="ledgerflow-csv-") as folder:
        copy = Path(folder) / path.name
        _write_lf_copy(path, copy)
        yield DeliveryCsv(path.name, copy, header, rejects_table)


def _write_lf_copy(source: Path, target: Path) -> None:
    """Copy `source` with each CRLF outside quotes made LF; quoted values stay as they are.

    Lines keep their numbers, so a line found in the copy is the delivery's line. Which
    bytes are quoted is told by counting quotes, which holds for RFC 4180 quoting only: a
    quote that does not open or close a whole value (DuckDB keeps `ab"c` as text) is bad
    input here, since guessing wrong would turn a quoted CRLF into LF. A CR outside quotes
    that ends no CRLF is bad input too.
    """
    in_quotes, before, offset = False, b"\n", 0  # the file starts as a line does
    with source.open("rb") as src, target.open("wb") as dst:
        for chunk in _chunks(src):
            if offset == 0 and chunk.startswith(codecs.BOM_UTF8):
                dst.write(codecs.BOM_UTF8)
                chunk, offset = chunk[len(codecs.BOM_UTF8) :], len(codecs.BOM_UTF8)
            try:
                dst.write(_lf_chunk(chunk, in_quotes, before))
            except _Unreadable as problem:
                line = _physical_line(source, offset + problem.index)
                raise InputError(source.name, problem.what, line=line) from None
            in_quotes ^= chunk.count(b'"') % 2 == 1
            before = chunk[-1:]
            offset += len(chunk)


class _Unreadable(Exception):
    def __init__(self, what: str, index: int):
        self.what = what
        self.index = index  # in the chunk


def _lf_chunk(chunk: bytes, in_quotes: bool, before: bytes) -> bytes:
    """`chunk` with each CRLF outside quotes as LF. `in_quotes`: the chunk starts inside a
    quoted value; `before`: the byte before the chunk.

    Between quotes, values are inside and outside in turn ("" inside a value only adds an
    empty outside piece). The outside pieces are joined by NUL, which no delivery file holds
    (scan_file rejects it), so that every check and change is one pass over one string.
    """
    pieces = chunk.split(b'"')
    first_outside = 1 if in_quotes else 0
    outside = b"\0".join(pieces[first_outside::2])
    if len(pieces) > 1 or in_quotes:
        ends_inside = (len(pieces) - 1 + first_outside) % 2 == 1
        context = b"\0" if in_quotes else before
        checked = context + outside + (b"\0" if ends_inside else b"")
        if (misplaced := _misplaced_quote(checked)) is not None:
            index = misplaced - len(context)
            raise _Unreadable(MISPLACED_QUOTE, _chunk_index(pieces, first_outside, index))
    lf = outside.replace(b"\r\n", b"\n")
    if b"\r" in lf:
        stray = re.search(rb"\r(?!\n)", outside).start()
        raise _Unreadable(STRAY_CR, _chunk_index(pieces, first_outside, stray))
    if len(pieces) == 1:
        return lf
    pieces[first_outside::2] = lf.split(b"\0")
    return b'"'.join(pieces)


def _misplaced_quote(checked: bytes) -> int | None:
    """The first outside byte next to a quote that neither opens nor closes a value."""
    found = []
    if after := _TEXT_AFTER_QUOTED.search(checked):
        found.append(after.start() + 1)
    before = None
    for before in _TEXT_BEFORE_QUOTED_REVERSED.finditer(checked[::-1]):
        pass  # the last match in the reversed string is the first in the chunk
    if before is not None:
        found.append(len(checked) - 2 - before.start())
    return min(found, default=None)


def _chunk_index(pieces: list[bytes], first_outside: int, outside_index: int) -> int:
    """Where in the chunk the byte at `outside_index` of the joined outside pieces is."""
    chunk_index = 0
    for number, piece in enumerate(pieces):
        if number % 2 == first_outside % 2:
            if outside_index <= len(piece):
                return chunk_index + outside_index
            outside_index -= len(piece) + 1
        chunk_index += len(piece) + 1
    return chunk_index


def _describe_rejected(error_type: str, message: str) -> str:
    first_line = message.splitlines()[0] if message else ""
    if error_type in ("INVALID ENCODING", "INVALID UNICODE"):
        return "not valid UTF-8"
    if error_type == "LINE SIZE OVER MAXIMUM":
        return f"the record starting on this line is {TOO_LONG}"
    if error_type == "CAST":
        return f"a value could not be read as text ({first_line})"
    if error_type == "INVALID STATE":
        return f"not CSV: the record does not follow RFC 4180 ({first_line})"
    return f"not CSV: {error_type.lower()} ({first_line})"


def _describe_reader_exception(exc: duckdb.Error) -> str:
    text = str(exc)
    if "state machine reached an invalid state" in text:
        return "not CSV: the reader cannot parse it as RFC 4180 CSV (DuckDB: invalid state)"
    first_line = text.splitlines()[0] if text else type(exc).__name__
    return f"the CSV reader failed: {first_line}"


def _closing_quote(path: Path, quote_at: int) -> int | None:
    """Offset of the quote that closes the value opened at `quote_at` ("" is an escaped
    quote); None if it is never closed."""
    with path.open("rb") as handle, mmap.mmap(handle.fileno(), 0, access=mmap.ACCESS_READ) as m:
        position = quote_at + 1
        while (found := m.find(b'"', position)) >= 0:
            if m[found + 1 : found + 2] != b'"':
                return found
            position = found + 2
    return None


def _line_start(path: Path, position: int) -> int:
    with path.open("rb") as handle, mmap.mmap(handle.fileno(), 0, access=mmap.ACCESS_READ) as m:
        return m.rfind(b"\n", 0, position) + 1


def _byte_at(path: Path, position: int) -> bytes:
    with path.open("rb") as handle:
        handle.seek(position)
        return handle.read(1)


def _skip_newlines(path: Path, position: int) -> int:
    """The first byte at or after `position` that is not part of a line end."""
    with path.open("rb") as handle:
        handle.seek(position)
        while handle.read(1) in (b"\r", b"\n"):
            position += 1
    return position


def _reader_line_span(path: Path, reader_line: int) -> tuple[int, int]:
    """Where the record DuckDB names by its line starts and ends, as byte offsets. DuckDB
    counts line ends outside quotes (empty and skipped lines included), not physical
    lines: a line break inside a quoted value does not count. Read only on an error's
    path, one line at a time (no line is longer than the limit by then)."""
    counted, in_quotes, offset, start = 0, False, 0, None
    with path.open("rb") as handle:
        for raw_line in handle:
            if not in_quotes:
                counted += 1
                if start is not None:
                    return start, offset
                if counted == reader_line:
                    start = offset
            in_quotes ^= raw_line.count(b'"') % 2 == 1
            offset += len(raw_line)
    return (offset if start is None else start), offset


def _record_end(path: Path, record_start: int) -> int:
    """The offset just past the record that starts at `record_start`."""
    in_quotes, offset = False, record_start
    with path.open("rb") as handle:
        handle.seek(record_start)
        for raw_line in handle:
            offset += len(raw_line)
            in_quotes ^= raw_line.count(b'"') % 2 == 1
            if not in_quotes:
                break
    return offset


def _field_count(path: Path, start: int, end: int) -> int:
    """The number of fields of the record at [start, end), read by Python's CSV reader."""
    with path.open("rb") as handle:
        handle.seek(start)
        record = handle.read(end - start).decode("utf-8", errors="replace")
    return len(next(csv.reader(io.StringIO(record)), [""]))


def _copy_prefix(source: Path, target: Path, end: int) -> None:
    with source.open("rb") as src, target.open("wb") as dst:
        remaining = end
        while remaining > 0 and (chunk := src.read(min(READ_CHUNK_BYTES, remaining))):
            dst.write(chunk)
            remaining -= len(chunk)


def _record_start_line(path: Path, header_line: int, record_number: int) -> int:
    """The physical line where record `record_number` starts (the header record is 0;
    empty lines between records are not records), counting quotes to tell a line break
    inside a quoted value from the end of a record. Only an error's path reads it."""
    record, in_quotes = 0, False
    with path.open("rb") as handle:
        for line, raw_line in enumerate(handle, start=1):
            if line > header_line and not in_quotes and raw_line.strip(b"\r\n"):
                record += 1
                if record == record_number:
                    return line
            if line >= header_line:
                in_quotes ^= raw_line.count(b'"') % 2 == 1
    return line


def _physical_line(path: Path, byte_position: int) -> int:
    """1-based line number of a byte offset, counting every LF before it."""
    newlines = 0
    remaining = byte_position
    with path.open("rb") as handle:
        while remaining > 0 and (chunk := handle.read(min(READ_CHUNK_BYTES, remaining))):
            newlines += chunk.count(b"\n")
            remaining -= len(chunk)
    return newlines + 1


def _quote_literal(value: str) -> str:
    return "'" + value.replace("'", "''") + "'"
