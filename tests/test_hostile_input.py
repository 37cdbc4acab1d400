"""Hostile deliveries cost an error message, never the machine, and their header text is
data, never SQL.

Each delivery goes through `ledgerflow run` in a process of its own under a 1 GB memory
ceiling (tests/memory_ceiling.py), on the session's Prefect test server. Past a limit on a
file's width, a record's length or a value's length, the run fails at ingestion with exit
2 naming the file, the line and the limit, and publishes nothing. A file at the width
limit whose extra columns carry quotes, semicolons, comment markers and SQL keywords in
their names loads, publishes, warns about them and keeps their values.
"""

from __future__ import annotations

import csv
import io
import json
import os
import sys

import duckdb
import pytest
from conftest import CONTRACT_DATA_FILES, SAMPLE_DIR, copy_sample
from memory_ceiling import run_under_ceiling

from flows.config import CSV_MAX_COLUMNS, CSV_MAX_FIELD_BYTES, CSV_MAX_LINE_BYTES

CEILING_BYTES = 1 << 30
HOSTILE_NAMES = [
    'x");drop table raw._files;--',
    "x');drop table raw._files;--",
    "a'b",
    'q"q""',
    "semi;colon",
    "-- comment",
    "/* block */",
    "select",
    "DROP TABLE raw._files",
    "{{ ref('x') }}",
    "$extra_names",
    "c1",
]


@pytest.fixture(scope="module")
def api_url(prefect_harness) -> str:
    from prefect.settings import get_current_settings

    return str(get_current_settings().api.url)


def ledgerflow_run(delivery, tmp_path, api_url):
    """`ledgerflow run` on `delivery` in its own process, under the ceiling."""
    env = {**os.environ, "PREFECT_API_URL": api_url}
    command = [sys.executable, "-m", "flows.cli", "run", "--input-dir", str(delivery),
               "--output-dir", str(tmp_path / "output"),
               "--warehouse", str(tmp_path / "warehouse.duckdb")]  # fmt: skip
    bounded = run_under_ceiling(command, CEILING_BYTES, env)
    assert not bounded.over_ceiling, (
        f"went over {CEILING_BYTES} bytes ({bounded.enforced_by}); peak resident "
        f"{bounded.peak_rss_bytes} bytes\n{bounded.stderr[-3000:]}"
    )
    return bounded


def customers_with(header: list[str], rows: list[list[str]]) -> str:
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(header)
    writer.writerows(rows)
    return out.getvalue()


def sample_customers() -> tuple[list[str], list[list[str]]]:
    with (SAMPLE_DIR / "customers.csv").open(newline="", encoding="utf-8-sig") as handle:
        header, *rows = [row for row in csv.reader(handle) if row]
    return header, rows


def wide(columns: int, rows: int) -> str:
    header = ["CustomerID", "Name", "HasLoan", *(f"extra{n}" for n in range(columns - 3))]
    return customers_with(
        header, [[str(r), f"N{r}", "yes", *["v"] * (columns - 3)] for r in range(1, rows + 1)]
    )


HEADER = "CustomerID,Name,HasLoan\n1,Ann,yes\n"
REFUSED = {
    # The case that once took 19 GB: 40 rows, 10,000 extra columns.
    "ten-thousand-columns": (
        wide(10_003, 40),
        1,
        (
            f"the header has 10003 columns, more than the limit of {CSV_MAX_COLUMNS} "
            "(LEDGERFLOW_CSV_MAX_COLUMNS)"
        ),
    ),
    # A short header, then a record of a million empty fields (1 MB, within the line limit).
    "a-million-fields": (
        HEADER + "2" + "," * 999_999 + "\n",
        3,
        "not CSV: the record has 1000000 fields, the header 3",
    ),
    # One value past the field limit, on a line within the line limit.
    "a-huge-value": (
        HEADER + f'2,"{"x" * (CSV_MAX_FIELD_BYTES + 1)}",no\n',
        3,
        (
            f"a value is longer than the limit of {CSV_MAX_FIELD_BYTES} bytes "
            "(LEDGERFLOW_CSV_MAX_FIELD_BYTES)"
        ),
    ),
    # 256 MB without a line break.
    "an-endless-line": (
        HEADER + "2," + "x" * (256 << 20),
        3,
        (
            f"longer than the reader's limit of {CSV_MAX_LINE_BYTES} bytes "
            "(LEDGERFLOW_CSV_MAX_LINE_BYTES)"
        ),
    ),
    # The hostile names in the required column's place: that column is missing.
    "hostile-name-for-a-required-column": (
        customers_with([HOSTILE_NAMES[0], "Name", "HasLoan"], [["1", "Ann", "yes"]]),
        1,
        "missing required column(s) CustomerID",
    ),
}


@pytest.mark.parametrize("case", list(REFUSED))
def test_a_file_past_a_limit_is_refused_at_ingestion(case, tmp_path, api_url):
    customers, line, problem = REFUSED[case]
    delivery = copy_sample(tmp_path / "delivery")
    (delivery / "customers.csv").write_text(customers, encoding="utf-8")

    bounded = ledgerflow_run(delivery, tmp_path, api_url)

    assert bounded.returncode == 2, bounded.stderr[-3000:]
    assert f"ledgerflow: customers.csv line {line}: " in bounded.stderr
    assert problem in bounded.stderr
    assert not any((tmp_path / "output" / name).exists() for name in CONTRACT_DATA_FILES)
    failed = json.loads((tmp_path / "output" / "failed" / "quality_report.json").read_text())
    assert failed["metrics"]["stopped_at"]["step"] == "ingest"


def test_hostile_extra_column_names_at_the_width_limit_publish_and_are_kept(tmp_path, api_url):
    header, rows = sample_customers()
    fillers = [f"filler{n}" for n in range(CSV_MAX_COLUMNS - len(header) - len(HOSTILE_NAMES))]
    extras = [*HOSTILE_NAMES, *fillers]
    delivery = copy_sample(tmp_path / "delivery")
    (delivery / "customers.csv").write_text(
        customers_with(
            [*header, *extras],
            [[*row, *(f"{name}={number}" for name in extras)] for number, row in enumerate(rows)],
        ),
        encoding="utf-8",
    )

    bounded = ledgerflow_run(delivery, tmp_path, api_url)

    assert bounded.returncode == 0, bounded.stderr[-3000:]
    report = json.loads((tmp_path / "output" / "quality_report.json").read_text())
    warning = next(f for f in report["failures"] if f["test"] == "no_extra_columns_customers")
    assert warning["severity"] == "warn"
    assert f"customers.csv has {len(extras)} column(s) beyond the contract's" in warning["message"]
    assert repr(HOSTILE_NAMES[0]) in warning["message"]
    with duckdb.connect(str(tmp_path / "warehouse.duckdb"), read_only=True) as con:
        kept = con.execute(
            "select _source_line, _extra_columns from raw.customers order by _source_line"
        ).fetchall()
        files = con.execute("select count(*) from raw._files").fetchone()[0]
    assert len(kept) == len(rows)
    assert kept[0][1] == {name.lower(): f"{name}=0" for name in extras}
    assert files == 2  # no name ran as SQL
    assert all((tmp_path / "output" / name).exists() for name in CONTRACT_DATA_FILES)
