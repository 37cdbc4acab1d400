"""Ingestion: every broken file the contract describes fails with a message naming the
file, the line and the problem, and leaves the raw tables as they were; change capture
keeps one record per distinct content and knows what each delivery adds and removes."""

from __future__ import annotations

import dataclasses
from datetime import UTC, datetime, timedelta
from itertools import count

import duckdb
import pytest
from conftest import write_delivery

from flows.config import CSV_MAX_LINE_BYTES
from flows.errors import InputError
from flows.steps.delivery_csv import (
    READ_CHUNK_BYTES,
    _describe_rejected,
    check_file,
    open_delivery_csv,
    scan_file,
)
from flows.steps.ingest import ingest_delivery as ingest_task

_RUNS = count()


def ingest_delivery(input_dir, warehouse):
    """One ingestion, stamped like a run a day after the previous one."""
    run_at = datetime(2026, 1, 1, tzinfo=UTC).replace(tzinfo=None) + timedelta(days=next(_RUNS))
    return ingest_task.fn(input_dir, warehouse, run_at)


def loaded_at(warehouse, table):
    with duckdb.connect(str(warehouse)) as con:
        return con.execute(
            "select loaded_at from raw.delivered_files where table_name = ?", [table]
        ).fetchone()[0]


GOOD_CUSTOMERS = "CustomerID,Name,HasLoan\n1,Ann,yes\n2,Bob,no\n"
GOOD_ACCOUNTS = (
    "AccountID,CustomerID,Balance,AccountType\nA1,1,10.00,savings\nA2,2,20.00,checking\n"
)


def raw_rows(warehouse, table):
    with duckdb.connect(str(warehouse)) as con:
        return con.execute(
            f"select * exclude (_loaded_at, _fingerprint) from raw.{table} order by _source_line"
        ).fetchall()


def ingest_error(tmp_path, customers, accounts=GOOD_ACCOUNTS) -> InputError:
    with pytest.raises(InputError) as raised:
        ingest_delivery(write_delivery(tmp_path / "d", customers, accounts), tmp_path / "w.duckdb")
    assert raised.value.exit_code == 2
    return raised.value


@pytest.mark.parametrize(
    ("customers", "file", "line", "problem"),
    [
        (b"", "customers.csv", None, "empty file"),
        (b"\n\n", "customers.csv", None, "empty file"),
        (b"CustomerID,Name\n1,Ann\n", "customers.csv", 1, "missing required column(s) HasLoan"),
        (b"CustomerID,Name,HasLoan\n1,Ann,yes\n2,Bob\n", "customers.csv", 3, "field count"),
        (b"CustomerID,Name,HasLoan\n1,Ann,yes,extra\n", "customers.csv", 2, "field count"),
        (b'CustomerID,Name,HasLoan\n1,Ann,yes\n2,"Bob,no\n3,Cy,no\n', "customers.csv", 3, "quote"),
        (b"CustomerID,Name,HasLoan\n1,Ann,yes\n\n2,B\xffb,no\n", "customers.csv", 4, "UTF-8"),
        (
            b"CustomerID,Name,HasLoan\r\n1,Ann,yes\r\n\r\n2,Bob\r\n",
            "customers.csv",
            4,
            "field count",
        ),
        (b"Customer\xffID,Name,HasLoan\n", "customers.csv", 1, "UTF-8"),
        (b"CustomerID,Name,HasLoan,name\n1,a,y,b\n", "customers.csv", 1, "twice"),
        # A quoted value spanning lines: the error's line is the physical one.
        (b'CustomerID,Name,HasLoan\n1,"A\nB",yes\n2,Bob\n', "customers.csv", 4, "field count"),
        # A one-byte record is named at its own line, not the next.
        (b"CustomerID,Name,HasLoan\n1\n", "customers.csv", 2, "the record has 1 field"),
        (b'CustomerID,"Name,HasLoan\n1,Ann,yes\n', "customers.csv", 1, "unterminated quote"),
    ],
)
def test_broken_customers_file_names_file_line_and_problem(
    tmp_path, customers, file, line, problem
):
    warehouse = tmp_path / "warehouse.duckdb"
    ingest_delivery(write_delivery(tmp_path / "good", GOOD_CUSTOMERS, GOOD_ACCOUNTS), warehouse)
    before = raw_rows(warehouse, "customers")

    with pytest.raises(InputError) as raised:
        ingest_delivery(write_delivery(tmp_path / "bad", customers, GOOD_ACCOUNTS), warehouse)

    error = raised.value
    assert (error.file, error.line) == (file, line)
    assert problem in error.problem
    assert str(error).startswith(f"{file} line {line}:" if line else f"{file}:")
    assert raw_rows(warehouse, "customers") == before


def test_missing_file(tmp_path):
    folder = write_delivery(tmp_path / "d", GOOD_CUSTOMERS, GOOD_ACCOUNTS)
    (folder / "accounts.csv").unlink()
    with pytest.raises(InputError, match=r"^accounts.csv: file not found"):
        ingest_delivery(folder, tmp_path / "w.duckdb")


def test_broken_second_file_leaves_first_unloaded(tmp_path):
    warehouse = tmp_path / "warehouse.duckdb"
    ingest_delivery(write_delivery(tmp_path / "good", GOOD_CUSTOMERS, GOOD_ACCOUNTS), warehouse)
    changed_customers = GOOD_CUSTOMERS + "3,Cy,no\n"
    with pytest.raises(InputError, match="accounts.csv line 3"):
        ingest_delivery(
            write_delivery(
                tmp_path / "bad",
                changed_customers,
                "AccountID,CustomerID,Balance,AccountType\nA1,1,1,savings\nA2\n",
            ),
            warehouse,
        )
    assert len(raw_rows(warehouse, "customers")) == 2


def test_headers_match_case_insensitively_in_any_order_with_extras_kept(tmp_path):
    folder = write_delivery(
        tmp_path / "d",
        '\ufeff hasloan ,NAME,customerid\r\n\r\nyes,"Ann, A",1\r\n',
        "Balance,accountTYPE,AccountID,CustomerID,BranchCode\n10.00,savings,A1,1,B7\n",
    )
    results = {r.table: r for r in ingest_delivery(folder, tmp_path / "w.duckdb")}
    assert results["accounts"].extra_columns == ("branchcode",)
    # The contract's columns in its order, then the extra ones by name; then where the row
    # came from.
    assert raw_rows(tmp_path / "w.duckdb", "customers") == [
        ("1", "Ann, A", "yes", None, "customers.csv", 2)
    ]
    assert raw_rows(tmp_path / "w.duckdb", "accounts") == [
        ("A1", "1", "10.00", "savings", {"branchcode": "B7"}, "accounts.csv", 2)
    ]


def test_values_are_kept_as_text(tmp_path):
    folder = write_delivery(
        tmp_path / "d",
        'CustomerID,Name,HasLoan\n0042,"  Ann\t",""\n1e3,x,NULL\n',
        GOOD_ACCOUNTS,
    )
    ingest_delivery(folder, tmp_path / "w.duckdb")
    rows = raw_rows(tmp_path / "w.duckdb", "customers")
    # An empty field is missing whether quoted or not: RFC 4180's quotes carry no meaning.
    assert [row[:3] for row in rows] == [("0042", "  Ann\t", None), ("1e3", "x", "NULL")]


@pytest.mark.parametrize("surplus", [",", ",,", ',""', ",,,,,,,,"])
def test_a_record_with_empty_fields_past_the_header_is_not_csv(tmp_path, surplus):
    """DuckDB's default reading drops empty fields past the header's width."""
    fields = 3 + surplus.count(",")
    error = ingest_error(tmp_path, f"CustomerID,Name,HasLoan\n1,Ann,yes\n2,Bob,no{surplus}\n")
    assert (error.file, error.line) == ("customers.csv", 3)
    assert f"the record has {fields} fields, the header 3" in error.problem


def test_header_only_file_is_valid_with_zero_rows(tmp_path):
    folder = write_delivery(tmp_path / "d", "CustomerID,Name,HasLoan\n", GOOD_ACCOUNTS)
    results = {r.table: r for r in ingest_delivery(folder, tmp_path / "w.duckdb")}
    assert results["customers"].rows == 0


def test_loaded_at_is_when_the_content_was_first_ingested(tmp_path):
    warehouse = tmp_path / "w.duckdb"
    first = {
        r.table: r
        for r in ingest_delivery(
            write_delivery(tmp_path / "a", GOOD_CUSTOMERS, GOOD_ACCOUNTS), warehouse
        )
    }
    # Same content in another folder: not re-loaded, same _loaded_at.
    again = {
        r.table: r
        for r in ingest_delivery(
            write_delivery(tmp_path / "b", GOOD_CUSTOMERS, GOOD_ACCOUNTS), warehouse
        )
    }
    assert not again["customers"].changed and not again["accounts"].changed
    first_loaded = {table: loaded_at(warehouse, table) for table in first}
    # Changed accounts: re-loaded with a new _loaded_at; customers untouched.
    changed = {
        r.table: r
        for r in ingest_delivery(
            write_delivery(tmp_path / "c", GOOD_CUSTOMERS, GOOD_ACCOUNTS + "A3,1,5,savings\n"),
            warehouse,
        )
    }
    assert changed["accounts"].changed
    assert (changed["accounts"].new_records, changed["accounts"].removed_records) == (1, 0)
    assert loaded_at(warehouse, "accounts") > first_loaded["accounts"]
    assert loaded_at(warehouse, "customers") == first_loaded["customers"]
    with duckdb.connect(str(warehouse)) as con:
        stored = con.execute("select distinct _loaded_at from raw.customers").fetchall()
    assert stored == [(first_loaded["customers"],)]


def records(warehouse, table):
    """(copies, first value, open?) of every record version, oldest first."""
    with duckdb.connect(str(warehouse)) as con:
        return con.execute(
            f"select _copies, {'customerid' if table == 'customers' else 'accountid'}, "
            f"valid_to is null from raw._records_{table} order by valid_from, 2"
        ).fetchall()


def test_a_record_is_its_content_not_its_line(tmp_path):
    """Lines shift, a row is delivered twice, one is removed: only contents that came or
    went change the records; each row keeps its current line."""
    warehouse = tmp_path / "w.duckdb"
    ingest_delivery(write_delivery(tmp_path / "a", GOOD_CUSTOMERS, GOOD_ACCOUNTS), warehouse)
    shifted = "CustomerID,Name,HasLoan\n\n3,Cy,no\n2,Bob,no\n1,Ann,yes\n2,Bob,no\n"
    results = {
        r.table: r
        for r in ingest_delivery(write_delivery(tmp_path / "b", shifted, GOOD_ACCOUNTS), warehouse)
    }
    # Cy is new; Bob now comes twice (one content, two copies: a new record version).
    assert (results["customers"].new_records, results["customers"].removed_records) == (2, 1)
    assert records(warehouse, "customers") == [
        (1, "1", True),
        (1, "2", False),
        (2, "2", True),
        (1, "3", True),
    ]
    # The empty line is not counted: Cy is the first record after the header, line 2.
    assert [(row[0], row[-1]) for row in raw_rows(warehouse, "customers")] == [
        ("3", 2),
        ("2", 3),
        ("1", 4),
        ("2", 5),
    ]


HEADER = b"CustomerID,Name,HasLoan"


@pytest.mark.parametrize(
    ("customers", "expected"),
    [
        (HEADER + b"\n1,Ann,yes\n2,Bob,no\r\n", [("1", "Ann"), ("2", "Bob")]),
        (HEADER + b"\r\n1,Ann,yes\n2,Bob,no\n", [("1", "Ann"), ("2", "Bob")]),
        (HEADER + b"\n1,Ann,yes\r\n2,Bob,no\n3,Cy,no", [("1", "Ann"), ("2", "Bob"), ("3", "Cy")]),
        # A line break inside quotes is part of the value, whichever style it has.
        (HEADER + b'\r\n1,"Ann\nA",yes\r\n2,Bob,no\n', [("1", "Ann\nA"), ("2", "Bob")]),
        (HEADER + b'\n1,"Ann\r\nA",yes\n2,Bob,no\r\n', [("1", "Ann\r\nA"), ("2", "Bob")]),
        (
            HEADER + b'\r\n\n1,"A\rB",yes\r\n\r\n\n2,"x""\r\n""y",no\n',
            [("1", "A\rB"), ("2", 'x"\r\n"y')],
        ),
        # The "" of a quoted value across the boundary of the 1 MiB read chunks.
        (
            HEADER + b'\r\n1,"' + b"x" * (READ_CHUNK_BYTES - 29) + b'""z",yes\n2,Bob,no\r\n',
            [("1", "x" * (READ_CHUNK_BYTES - 29) + '"z'), ("2", "Bob")],
        ),
    ],
    ids=[
        "last-crlf",
        "first-crlf",
        "alternating",
        "quoted-lf",
        "quoted-crlf",
        "empty-lines",
        "split-escape",
    ],
)
def test_mixed_lf_and_crlf_line_ends_are_read_as_delivered(
    tmp_path, monkeypatch, customers, expected
):
    """Values exactly as delivered, no CR of a line end left in them, and `_source_line`
    the record's position (empty lines not counted)."""
    # "split-escape" needs one value as long as a read chunk.
    monkeypatch.setattr("flows.steps.delivery_csv.CSV_MAX_FIELD_BYTES", CSV_MAX_LINE_BYTES)
    warehouse = tmp_path / "w.duckdb"
    ingest_delivery(write_delivery(tmp_path / "d", customers, GOOD_ACCOUNTS), warehouse)
    assert [row[:2] for row in raw_rows(warehouse, "customers")] == expected
    assert [row[-1] for row in raw_rows(warehouse, "customers")] == list(
        range(2, len(expected) + 2)
    )


@pytest.mark.parametrize(
    ("content", "one_style"),
    [
        (b"a\nb\n", True),
        (b'a\r\n"b\r\nc"\r\n', True),
        (b"a", True),
        # A CRLF split by the read chunk is still one CRLF.
        (b"x" * (READ_CHUNK_BYTES - 1) + b"\r\ny\r\n", True),
        (b"a\nb\r\n", False),
        (b'a\n"b\rc"\n', True),  # a CR in a value needs no copy
        (b'a\r\n"b\nc"\r\n', False),
    ],
)
def test_the_hash_pass_tells_which_files_the_reader_needs_an_lf_copy_of(
    tmp_path, content, one_style
):
    path = tmp_path / "customers.csv"
    path.write_bytes(content)
    assert scan_file(path).one_line_end_style is one_style


LONG = CSV_MAX_LINE_BYTES + 1


@pytest.mark.parametrize(
    "record",
    [
        # Unquoted and past DuckDB's buffer, DuckDB drops the record without an error.
        b"2," + b"x" * (64 << 20) + b",no\n",
        b"2," + b"x" * LONG + b",no\n",
        # Quoted on one line: DuckDB reported an unterminated quote.
        b'2,"' + b"x" * (64 << 20) + b'",no\n',
        # Quoted over many short lines: DuckDB's own "line size over maximum".
        b'2,"' + b"x\n" * (LONG // 2) + b'",no\n',
        # Quoted over lines, past DuckDB's buffer: DuckDB again reports an unterminated
        # quote, at the line before.
        b'2,"' + (b"x" * 999_999 + b"\n") * 40 + b'",no\n',
    ],
    ids=["unquoted-64MiB", "unquoted-limit+1", "quoted-64MiB", "quoted-lines", "quoted-40MB"],
)
def test_a_record_longer_than_the_line_limit_is_named_as_such(tmp_path, record):
    error = ingest_error(tmp_path, HEADER + b"\n1,Ann,yes\n" + record + b"3,Cy,no\n")
    assert (error.file, error.line) == ("customers.csv", 3)
    assert f"longer than the reader's limit of {CSV_MAX_LINE_BYTES} bytes" in error.problem


def test_a_line_as_long_as_the_limit_is_read(tmp_path, monkeypatch):
    monkeypatch.setattr("flows.steps.delivery_csv.CSV_MAX_FIELD_BYTES", CSV_MAX_LINE_BYTES)
    name = "x" * (CSV_MAX_LINE_BYTES - len("2,,no"))
    folder = write_delivery(tmp_path / "d", f"{HEADER.decode()}\n2,{name},no\n", GOOD_ACCOUNTS)
    ingest_delivery(folder, tmp_path / "w.duckdb")
    assert raw_rows(tmp_path / "w.duckdb", "customers")[0][1] == name


@pytest.mark.parametrize(
    ("customers", "line"),
    [
        (HEADER + b"\n1,Ann,yes\n2,B\x00b,no\n", 3),
        (HEADER + b'\n1,Ann,yes\n2,"B\x00b",no\n', 3),
        # UTF-16 without a BOM decodes as UTF-8 with a NUL after each ASCII character.
        ("CustomerID,Name,HasLoan\n1,Ann,yes\n".encode("utf-16-le"), 1),
    ],
)
def test_a_nul_byte_is_bad_input(tmp_path, customers, line):
    error = ingest_error(tmp_path, customers)
    assert (error.file, error.line) == ("customers.csv", line)
    assert "NUL byte" in error.problem


@pytest.mark.parametrize(
    ("customers", "line"),
    [
        (HEADER + b"\n1,A\rB,yes\n2,Bob,no\n", 2),
        (HEADER + b"\n1,Ann,yes\n2,Bob,no\r", 3),
        (HEADER + b"\n1,Ann,yes\r\r\n2,Bob,no\n", 2),
        (HEADER + b"\r1,Ann,yes\r2,Bob,no\r", 1),  # CR-only line ends
        (HEADER + b'\n1,"A\rB",yes\n2,B\rob,no\n', 3),  # beside a quoted CR (a value's)
    ],
)
def test_a_carriage_return_that_ends_no_crlf_is_bad_input(tmp_path, customers, line):
    error = ingest_error(tmp_path, customers)
    assert (error.file, error.line) == ("customers.csv", line)
    assert "carriage return (CR)" in error.problem


@pytest.mark.parametrize(
    ("customers", "line"),
    [
        (HEADER + b'\n1,x"y,yes\r\n2,"p\r\nq",no\n', 2),
        (HEADER + b'\r\n1,"p\r\nq",no\n2, "x",yes\n', 4),
        (HEADER + b'\r\n1,"p\r\nq"  ,no\n', 3),  # the line of the closing quote
    ],
)
def test_a_quote_that_opens_or_closes_no_value_is_bad_input_in_a_mixed_file(
    tmp_path, customers, line
):
    """Counting quotes tells quoted line breaks from line ends only for RFC 4180 quoting;
    guessing would turn the quoted CRLF of p\r\nq into LF without a word."""
    error = ingest_error(tmp_path, customers)
    assert (error.file, error.line) == ("customers.csv", line)
    assert "a quote that neither opens nor closes a whole value" in error.problem


@pytest.mark.parametrize(
    "name", [b'"Branch\nCode"', b'"Branch\r\nCode"', b'"Branch\rCode"', b'"BranchCode\r"']
)
def test_a_line_break_in_a_header_name_is_bad_input(tmp_path, name):
    """DuckDB takes the file's line end from the first line break, even a quoted one, and
    then reads no rows at all."""
    error = ingest_error(tmp_path, HEADER + b"," + name + b"\n1,Ann,yes,B1\n")
    assert (error.file, error.line) == ("customers.csv", 1)
    assert error.problem == "header column 4 has a line break in its name"


ACCOUNTS_HEADER = b"AccountID,CustomerID,Balance,AccountType\n"


@pytest.mark.parametrize(
    ("accounts", "line", "problem"),
    [
        # DuckDB's rejects table, by error_type: MISSING COLUMNS, TOO MANY COLUMNS,
        (b"A1,1,10.00,savings\nA2,1,10.00\n", 3, "the record has 3 fields, the header 4"),
        (b"A1,1,10.00,savings,x,y\n", 2, "the record has 6 fields, the header 4"),
        # UNQUOTED VALUE (a quote never closed, or text after the closing quote),
        (b'A1,1,"10.00,savings\nA2,1,5,checking\n', 2, "unterminated quote"),
        (b'A1,1,"10"00,savings\n', 2, "text follows the closing quote"),
        # LINE SIZE OVER MAXIMUM,
        (b'A1,1,"' + b"9\n" * (LONG // 2) + b'",savings\n', 2, "longer than the reader's"),
        # INVALID ENCODING.
        (b"A1,1,10.00,savings\nA2,1,10.00,sav\xe9ngs\n", 3, "not valid UTF-8"),
    ],
)
def test_each_error_the_reader_rejects_is_bad_input_naming_file_line_and_problem(
    tmp_path, accounts, line, problem
):
    error = ingest_error(tmp_path, GOOD_CUSTOMERS, ACCOUNTS_HEADER + accounts)
    assert (error.file, error.line) == ("accounts.csv", line)
    assert problem in error.problem


def open_as_one_style(path):
    """The delivery read as is, even if its line ends mix: DuckDB then raises."""
    scan = dataclasses.replace(scan_file(path), one_line_end_style=True)
    return open_delivery_csv(path, check_file(path, ("CustomerID",), scan), scan, "_rejects_t")


def load(con, delivery):
    delivery.execute(con, f"create table t as select * from {delivery.table_function()}")


def test_an_error_the_reader_raises_is_bad_input_naming_the_file(tmp_path):
    path = tmp_path / "customers.csv"
    path.write_bytes(HEADER + b"\n1,Ann,yes\n2,Bob,no\r\n")
    with (
        duckdb.connect() as con,
        open_as_one_style(path) as delivery,
        pytest.raises(InputError) as raised,
    ):
        load(con, delivery)
    assert (raised.value.file, raised.value.exit_code) == ("customers.csv", 2)
    assert "invalid state" in raised.value.problem


def test_any_other_reader_failure_is_bad_input_naming_the_file(tmp_path):
    path = tmp_path / "customers.csv"
    path.write_bytes(HEADER + b"\n1,Ann,yes\n")
    with duckdb.connect() as con, open_as_one_style(path) as delivery:
        path.unlink()  # gone between the checks and the read
        with pytest.raises(InputError) as raised:
            load(con, delivery)
    assert (raised.value.file, raised.value.exit_code) == ("customers.csv", 2)
    assert raised.value.problem.startswith("the CSV reader failed: IO Error")


@pytest.mark.parametrize(
    ("error_type", "message", "problem"),
    [
        # CAST: the delivery is read as text, so only a typed read gives one.
        ("CAST", "Could not convert string 'x' to 'INTEGER'", "could not be read as text"),
        # INVALID STATE: DuckDB 2.0.1 raises it for every file tried.
        (
            "INVALID STATE",
            "The CSV Parser state machine reached an invalid state.",
            "does not follow RFC 4180",
        ),
    ],
    ids=["CAST", "INVALID STATE"],
)
def test_reject_types_a_text_read_cannot_produce_are_still_named(error_type, message, problem):
    assert problem in _describe_rejected(error_type, message)
