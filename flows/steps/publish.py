"""Write–audit–publish of the output folder.

The run's files are written by DuckDB into a hidden folder beside the published ones,
then moved into place together with the run's warehouse changes: the moves are journalled
(flows/runtime/wap.py), so if a process dies half-way, the next run completes them, and a
reader sees either every file of a run or every file of the previous one.

What each mart file holds is the dbt marts contract's columns, in its order and types
(`flows/contract.py` reads it); the files are sorted by the mart's key.
"""

from __future__ import annotations

import json
import shutil
from collections.abc import Callable
from datetime import datetime
from pathlib import Path

from prefect import task

from flows.contract import DELIVERY_FILES, PUBLISHED_MARTS, mart_columns, raw_value_column
from flows.runtime import wap
from flows.runtime.step_cache_policy import STEP_CACHE
from flows.runtime.warehouse import connect
from flows.steps.ingest import lines_table

FAILED_DIR_NAME = "failed"
REPORT_NAME = "quality_report.json"

# A CSV text cell that a spreadsheet would run as a formula gets a leading quote,
# unless it is a plain number. The first character is tested first: the regex then runs
# on the few cells that start like a formula, not on every cell.
_FORMULA_START = "('=', '+', '-', '@', chr(9), chr(13))"
_PLAIN_NUMBER = r"[+-]?[0-9]+(\.[0-9]+)?"
_TEXT_TYPES = {"string", "text", "varchar"}


def _csv_text(column: str, alias: str | None = None) -> str:
    return (
        f"case when left({column}, 1) in {_FORMULA_START} "
        f"and not regexp_full_match({column}, '{_PLAIN_NUMBER}') "
        f"then '''' || {column} else {column} end as {alias or column}"
    )


def _csv_timestamp(column: str) -> str:
    return f"strftime({column}, '%Y-%m-%dT%H:%M:%S.%fZ') as {column}"


def _csv_column(name: str, data_type: str) -> str:
    """A mart column as the CSV shows it: text escaped against formulas, timestamps in
    ISO 8601 UTC with a Z, numbers as their type prints them."""
    if data_type in _TEXT_TYPES:
        return _csv_text(name)
    if data_type == "timestamp":
        return _csv_timestamp(name)
    return name


def _parquet_column(name: str, data_type: str) -> str:
    # UTC-adjusted in Parquet, so that no reader takes it for local time.
    return f"cast({name} as timestamptz) as {name}" if data_type == "timestamp" else name


def _sorted_mart(mart: str) -> str:
    return f"publish_sorted_{mart}"


def _sort_mart(mart: str) -> str:
    """The mart sorted once by its key (the byte order of the stored value), for both of
    its files: a temporary table keeps that order for every scan without an ORDER BY
    (DuckDB's preserve_insertion_order, on by default)."""
    return (
        f"create or replace temporary table {_sorted_mart(mart)} as "
        f"select * from marts.{mart} order by {PUBLISHED_MARTS[mart]}"
    )


def _mart_query(mart: str, column_sql: Callable[[str, str], str]) -> str:
    """The mart's contract columns in order, in the order of its sorted copy."""
    columns = ", ".join(column_sql(name, kind) for name, kind in mart_columns(mart).items())
    return f"select {columns} from {_sorted_mart(mart)}"


def _quarantine_query(table: str) -> str:
    """This delivery's quarantined rows, one per line (a record delivered twice is on two
    lines): the raw values as delivered under the contract's header names, the reason,
    where each came from and since when."""
    raw = ", ".join(
        _csv_text(raw_value_column(header), f'"{header}"') for header in DELIVERY_FILES[table]
    )
    return f"""
        select {raw}, quarantine_reason, _source_file, lines._source_line,
               {_csv_timestamp("first_quarantined_at")}
        from staging.quarantine_{table} as quarantined
        inner join {lines_table(table)} as lines
            on quarantined.quarantine_record_id = lines._fingerprint
        where quarantined.resolved_at is null
        order by lines._source_line
    """


# Each published data file, its format and the query that writes it.
PUBLISHED_FILES: dict[str, tuple[str, str]] = {
    **{
        f"{mart}.{file_format}": (file_format, _mart_query(mart, column_sql))
        for mart in PUBLISHED_MARTS
        for file_format, column_sql in (("csv", _csv_column), ("parquet", _parquet_column))
    },
    **{f"quarantine_{table}.csv": ("csv", _quarantine_query(table)) for table in DELIVERY_FILES},
}
PUBLISHED_DATA_FILES: tuple[str, ...] = tuple(PUBLISHED_FILES)

_COPY_OPTIONS = {
    "csv": "format csv, header true, delimiter ',', quote '\"', escape '\"'",
    "parquet": "format parquet, compression zstd",
}


@task(name="publish-outputs", cache_policy=STEP_CACHE)
def publish_outputs(
    warehouse: Path,
    output_dir: Path,
    run_id: str,
    run_at: datetime,
    report: dict,
    cache_key: str | None = None,
) -> list[Path]:
    """Replace every published file with this run's, all together, and make the run's
    warehouse changes the ones later runs build on (flows/runtime/wap.py)."""
    output_dir.mkdir(parents=True, exist_ok=True)
    staging = wap.staging_folder(output_dir, run_id)
    shutil.rmtree(staging, ignore_errors=True)
    staging.mkdir()
    names = [*PUBLISHED_FILES, REPORT_NAME]
    try:
        write_data_files(warehouse, staging)
        _write_json(staging / REPORT_NAME, report)
        for name in names:
            wap.fsync_file(staging / name)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    journal = wap.Journal(run_id, run_at, warehouse, staging.name, tuple(names))
    wap.publish(warehouse, output_dir, journal)
    return [output_dir / name for name in names]


def write_data_files(warehouse: Path, folder: Path) -> None:
    """Every published data file, written from the warehouse into `folder`."""
    # The flow's process may still hold dbt's connection: open with the same (default) config.
    with connect(warehouse) as con:
        con.execute("set TimeZone = 'UTC'")
        con.execute("set preserve_insertion_order = true")
        for mart in PUBLISHED_MARTS:
            con.execute(_sort_mart(mart))
        for name, (file_format, query) in PUBLISHED_FILES.items():
            target = str(folder / name).replace("'", "''")
            con.execute(f"copy ({query}) to '{target}' ({_COPY_OPTIONS[file_format]})")


@task(name="publish-report")
def replace_published_report(output_dir: Path, report: dict) -> Path:
    """Replace the published report in one rename: with a later version of the same run's
    (one that knows how the exports went), or with the report of a run that found the
    published data files already current."""
    path = output_dir / REPORT_NAME
    wap.write_durably(path, _json(report))
    return path


@task(name="write-failed-report")
def write_failed_report(output_dir: Path, report: dict) -> Path:
    """A failed run's report goes beside the outputs, never over the published one."""
    failed_dir = output_dir / FAILED_DIR_NAME
    failed_dir.mkdir(parents=True, exist_ok=True)
    path = failed_dir / REPORT_NAME
    wap.write_durably(path, _json(report))
    return path


def _json(payload: dict) -> str:
    return json.dumps(payload, indent=2, sort_keys=False) + "\n"


def _write_json(path: Path, payload: dict) -> None:
    path.write_text(_json(payload), encoding="utf-8")
