"""The bundled sample delivery gives exactly what the contract says.

The expected values come from tests/contract_oracle.py, an independent Python
implementation of the contract; a few are also pinned literally, so an error shared by
the oracle and the SQL would still show.
"""

from __future__ import annotations

import csv
from decimal import Decimal

import pyarrow.parquet as pq
import pytest
from conftest import SAMPLE_DIR
from contract_oracle import ACCOUNT_REASONS, CUSTOMER_REASONS, expected_outputs

EXPECTED = expected_outputs(SAMPLE_DIR / "customers.csv", SAMPLE_DIR / "accounts.csv")


def read_csv(path):
    with path.open(newline="", encoding="utf-8") as handle:
        return list(csv.DictReader(handle))


def test_account_summary_equals_the_contract(sample_run):
    rows = sample_run.query(
        "select account_id, customer_id, original_balance_amount, interest_rate_pct, "
        "annual_interest_amount, new_balance_amount from marts.account_summary order by account_id"
    )
    expected = [tuple(row.values()) for row in EXPECTED.account_summary]
    assert rows == expected
    assert len(rows) == 32


def test_customer_profile_equals_the_contract(sample_run):
    rows = sample_run.query("select * from marts.customer_profile order by customer_id")
    assert rows == [tuple(row.values()) for row in EXPECTED.customer_profile]
    assert len(rows) == 21


@pytest.mark.parametrize(
    ("balance", "has_loan", "rate", "interest"),
    [
        # Float arithmetic gives 0.14 here; DECIMAL with half away from zero gives 0.15.
        ("14.50", False, "0.0100", "0.15"),
        ("9999.99", False, "0.0100", "100.00"),
        ("10000.00", False, "0.0150", "150.00"),
        ("19999.99", True, "0.0200", "400.00"),
        ("20000.00", False, "0.0200", "400.00"),
        ("20000.00", True, "0.0250", "500.00"),
        ("0.00", False, "0.0100", "0.00"),
    ],
)
def test_interest_rules_pinned_literally(sample_run, balance, has_loan, rate, interest):
    rows = sample_run.query(
        f"""
        select summary.interest_rate_pct, summary.annual_interest_amount
        from marts.account_summary as summary
        inner join marts.customer_profile as profile using (customer_id)
        where summary.original_balance_amount = {balance} and profile.has_loan = {has_loan}
        """
    )
    assert rows, f"the sample has no savings account of {balance} with has_loan={has_loan}"
    assert set(rows) == {(Decimal(rate), Decimal(interest))}


def test_every_quarantine_reason_at_its_source_line(sample_run):
    customers = read_csv(sample_run.output_dir / "quarantine_customers.csv")
    accounts = read_csv(sample_run.output_dir / "quarantine_accounts.csv")
    assert [(int(r["_source_line"]), r["quarantine_reason"]) for r in customers] == [
        (q.source_line, q.reason) for q in EXPECTED.quarantine_customers
    ]
    assert [(int(r["_source_line"]), r["quarantine_reason"]) for r in accounts] == [
        (q.source_line, q.reason) for q in EXPECTED.quarantine_accounts
    ]
    assert {r["quarantine_reason"] for r in customers} == set(CUSTOMER_REASONS)
    assert {r["quarantine_reason"] for r in accounts} == set(ACCOUNT_REASONS)


def test_quarantine_rows_keep_raw_values_as_delivered(sample_run):
    customers = read_csv(sample_run.output_dir / "quarantine_customers.csv")
    by_line = {int(r["_source_line"]): r for r in customers}
    for expected in EXPECTED.quarantine_customers:
        row = by_line[expected.source_line]
        assert row["CustomerID"] == expected.raw["customerid"]
        assert row["HasLoan"] == expected.raw["hasloan"]
        assert row["_source_file"] == "customers.csv"
    assert list(customers[0]) == [
        "CustomerID",
        "Name",
        "HasLoan",
        "quarantine_reason",
        "_source_file",
        "_source_line",
        "first_quarantined_at",
    ]


def test_lineage_columns(sample_run):
    # Record 8 spans two physical lines and one empty line is skipped: _source_line is
    # the record's position, not the physical line.
    rows = sample_run.query(
        "select _source_file, min(_source_line), max(_source_line), count(*), "
        "count(distinct _loaded_at) from raw.customers group by all"
    )
    assert rows == [("customers.csv", 2, 41, 40, 1)]


def test_account_summary_csv_format(sample_run):
    text = (sample_run.output_dir / "account_summary.csv").read_text(encoding="utf-8")
    header, *lines = text.splitlines()
    assert header == (
        "account_id,customer_id,original_balance_amount,interest_rate_pct,"
        "annual_interest_amount,new_balance_amount,calculated_at"
    )
    rows = list(csv.reader(lines))
    for row in rows:
        for amount in (row[2], row[4], row[5]):
            assert amount.split(".")[1].__len__() == 2, row
        assert len(row[3].split(".")[1]) == 4, row
        assert row[6].endswith("Z")
    # Sorted by the byte order of the value before escaping.
    unescaped = [row[0].removeprefix("'") for row in rows]
    assert unescaped == sorted(unescaped, key=lambda v: v.encode("utf-8"))


def test_formula_injection_is_escaped(sample_run):
    summary = read_csv(sample_run.output_dir / "account_summary.csv")
    profile = read_csv(sample_run.output_dir / "customer_profile.csv")
    assert "'@A900" in {r["account_id"] for r in summary}
    assert "'=Gus Formula" in {r["customer_name"] for r in profile}
    # Plain numbers, even signed ones, are not text to escape.
    quarantined = read_csv(sample_run.output_dir / "quarantine_accounts.csv")
    assert any(r["Balance"].startswith("-") for r in quarantined)


def test_parquet_has_the_typed_schema(sample_run):
    schema = pq.read_schema(sample_run.output_dir / "account_summary.parquet")
    types = {field.name: str(field.type) for field in schema}
    assert types == {
        "account_id": "string",
        "customer_id": "int64",
        "original_balance_amount": "decimal128(18, 2)",
        "interest_rate_pct": "decimal128(6, 4)",
        "annual_interest_amount": "decimal128(18, 2)",
        "new_balance_amount": "decimal128(18, 2)",
        "calculated_at": "timestamp[us, tz=UTC]",
    }
    table = pq.read_table(sample_run.output_dir / "account_summary.parquet")
    assert table.column("account_id").to_pylist() == [
        r["account_id"] for r in EXPECTED.account_summary
    ]
