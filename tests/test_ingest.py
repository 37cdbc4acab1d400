"""Ingestion: every broken file the contract describes fails with a message naming the
file, the line and the problem, and leaves the raw tables as they were."""

from __future__ import annotations

import duckdb
import pytest
from conftest import write_delivery

from flows.errors import InputError
from flows.steps.ingest import ingest_delivery as ingest_task

ingest_delivery = ingest_task.fn

GOOD_CUSTOMERS = "CustomerID,Name,HasLoan\n1,Ann,yes\n2,Bob,no\n"
GOOD_ACCOUNTS = (
    "AccountID,CustomerID,Balance,AccountType\nA1,1,10.00,savings\nA2,2,20.00,checking\n"
)


def raw_rows(warehouse, table):
    with duckdb.connect(str(warehouse)) as con:
        return con.execute(
            f"select * exclude (_loaded_at) from raw.{table} order by _source_line"
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
    assert raw_rows(tmp_path / "w.duckdb", "customers") == [
        ("yes", "Ann, A", "1", "customers.csv", 2)
    ]
    assert raw_rows(tmp_path / "w.duckdb", "accounts") == [
        ("10.00", "savings", "A1", "1", "B7", "accounts.csv", 2)
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
    assert not again["customers"].reloaded and not again["accounts"].reloaded
    assert again["customers"].loaded_at == first["customers"].loaded_at
    # Changed accounts: re-loaded with a new _loaded_at; customers untouched.
    changed = {
        r.table: r
        for r in ingest_delivery(
            write_delivery(tmp_path / "c", GOOD_CUSTOMERS, GOOD_ACCOUNTS + "A3,1,5,savings\n"),
            warehouse,
        )
    }
    assert (
        changed["accounts"].reloaded and changed["accounts"].loaded_at > first["accounts"].loaded_at
    )
    assert changed["customers"].loaded_at == first["customers"].loaded_at
    with duckdb.connect(str(warehouse)) as con:
        stored = con.execute("select distinct _loaded_at from raw.customers").fetchall()
    assert stored == [(first["customers"].loaded_at,)]
