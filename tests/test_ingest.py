"""Ingestion: every broken file the contract describes fails with a message naming the
file, the line and the problem, and leaves the raw tables as they were; change capture
keeps one record per distinct content and knows what each delivery adds and removes."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from itertools import count

import duckdb
import pytest
from conftest import write_delivery

from flows.errors import InputError
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
    # The contract's columns in its order, then extra ones; then where the row came from.
    assert raw_rows(tmp_path / "w.duckdb", "customers") == [
        ("1", "Ann, A", "yes", "customers.csv", 2)
    ]
    assert raw_rows(tmp_path / "w.duckdb", "accounts") == [
        ("A1", "1", "10.00", "savings", "B7", "accounts.csv", 2)
    ]


def test_values_are_kept_as_text(tmp_path):
    folder = write_delivery(
        tmp_path / "d",
        'CustomerID,Name,HasLoan\n0042,"  Ann\t",""\n1e3,x,NULL\n',
        GOOD_ACCOUNTS,
    )
    ingest_delivery(folder, tmp_path / "w.duckdb")
    rows = raw_rows(tmp_path / "w.duckdb", "customers")
    assert [row[:3] for row in rows] == [("0042", "  Ann\t", ""), ("1e3", "x", "NULL")]


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
