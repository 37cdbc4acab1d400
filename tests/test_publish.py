"""Write–audit–publish: all files replaced together, or none."""

from __future__ import annotations

import duckdb
import pytest
from conftest import CONTRACT_DATA_FILES, copy_warehouse

from flows.contract import mart_columns
from flows.steps import publish
from flows.steps.start import start_run


def test_the_published_files_are_the_contracts():
    assert sorted(publish.PUBLISHED_DATA_FILES) == sorted(CONTRACT_DATA_FILES)


def test_a_mart_file_holds_the_dbt_contracts_columns_in_order(sample_run):
    """The published columns are read from the dbt marts contract, not written again."""
    import pyarrow.parquet as pq

    for mart in ("account_summary", "customer_profile"):
        parquet = pq.read_schema(sample_run.output_dir / f"{mart}.parquet")
        assert parquet.names == list(mart_columns(mart))
        header = (sample_run.output_dir / f"{mart}.csv").read_text().splitlines()[0]
        assert header.split(",") == list(mart_columns(mart))


def test_a_failed_export_leaves_published_files_and_no_leftovers(sample_run, tmp_path, monkeypatch):
    output = tmp_path / "output"
    warehouse = copy_warehouse(sample_run.warehouse, tmp_path)
    run_at = start_run.fn(warehouse, output)
    publish.publish_outputs.fn(warehouse, output, "run-1", run_at, {"run_id": "run-1"})
    before = {p.name: p.read_bytes() for p in output.iterdir()}

    monkeypatch.setitem(
        publish.PUBLISHED_FILES, "account_summary.csv", ("csv", "select * from marts.no_such_table")
    )
    with pytest.raises(duckdb.Error, match="no_such_table"):
        publish.publish_outputs.fn(
            warehouse, output, "run-2", start_run.fn(warehouse, output), {"run_id": "run-2"}
        )

    assert {p.name: p.read_bytes() for p in output.iterdir()} == before


def test_csv_text_escaping_rule(sample_run):
    values = ["=SUM(A1)", "+1", "-12.5", "+x", "@me", "\tx", "\rx", "plain", "-", "1e5"]
    with duckdb.connect() as con:
        escaped = [
            con.execute(
                f"select {publish._csv_text('v')} from (select ?::varchar as v)", [value]
            ).fetchone()[0]
            for value in values
        ]
    assert escaped == [
        "'=SUM(A1)",
        "+1",
        "-12.5",
        "'+x",
        "'@me",
        "'\tx",
        "'\rx",
        "plain",
        "'-",
        "1e5",
    ]


def test_totals_are_wide_enough_for_every_delivery_the_contract_allows(tmp_path):
    """Eleven savings accounts at the contract's largest balance, one customer: its totals
    (11 x 10^15) are past DECIMAL(18,2) and must neither overflow nor round."""
    import pyarrow.parquet as pq
    from conftest import run_steps, write_delivery

    accounts = "".join(f"A{n:02},1,1000000000000000.00,savings\n" for n in range(11))
    run = run_steps(
        write_delivery(
            tmp_path / "d",
            "CustomerID,Name,HasLoan\n1,Ann,no\n",
            "AccountID,CustomerID,Balance,AccountType\n" + accounts,
        ),
        tmp_path / "w.duckdb",
        tmp_path / "out",
    )
    profile = (run.output_dir / "customer_profile.csv").read_text().splitlines()[1]
    assert profile == "1,Ann,false,11,0,11000000000000000.00,220000000000000.00"
    schema = pq.read_schema(run.output_dir / "customer_profile.parquet")
    assert str(schema.field("total_savings_balance_amount").type) == "decimal128(38, 2)"
