"""Write–audit–publish of the output folder.

The run's files are written by DuckDB into a hidden folder beside the published ones,
then moved into place. The moves are journalled: if a process dies half-way, the next
publish (or read of the folder through `recover_interrupted_publish`) completes them, so
a reader sees either every file of a run or every file of the previous one.

What each mart file holds is the dbt marts contract's columns, in its order and types
(`flows/contract.py` reads it); the files are sorted by the mart's key.
"""

from __future__ import annotations

import json
import os
import shutil
from collections.abc import Callable
from pathlib import Path

from prefect import task

from flows.contract import DELIVERY_FILES, PUBLISHED_MARTS, mart_columns, raw_value_column
from flows.runtime.warehouse import connect

JOURNAL_NAME = ".publish-journal.json"
FAILED_DIR_NAME = "failed"
REPORT_NAME = "quality_report.json"

# A CSV text cell that a spreadsheet would run as a formula gets a leading quote,
# unless it is a plain number.
_FORMULA_START = r"^[=+\-@\t\r]"
_PLAIN_NUMBER = r"[+-]?[0-9]+(\.[0-9]+)?"
_TEXT_TYPES = {"string", "text", "varchar"}


def _csv_text(column: str, alias: str | None = None) -> str:
    return (
        f"case when regexp_matches({column}, '{_FORMULA_START}') "
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


def _mart_query(mart: str, column_sql: Callable[[str, str], str]) -> str:
    """The mart's contract columns in order, sorted by its key: the byte order of the
    stored value (the table's column, not the escaped alias of the select)."""
    columns = ", ".join(column_sql(name, kind) for name, kind in mart_columns(mart).items())
    return f"select {columns} from marts.{mart} order by {mart}.{PUBLISHED_MARTS[mart]}"


def _quarantine_query(table: str) -> str:
    """This delivery's quarantined rows: the raw values as delivered under the contract's
    header names, the reason, where each came from and since when."""
    raw = ", ".join(
        _csv_text(raw_value_column(header), f'"{header}"') for header in DELIVERY_FILES[table]
    )
    return f"""
        select {raw}, quarantine_reason, _source_file, _source_line,
               {_csv_timestamp("first_quarantined_at")}
        from staging.quarantine_{table}
        where resolved_at is null
        order by _source_line
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


@task(name="publish-outputs")
def publish_outputs(warehouse: Path, output_dir: Path, run_id: str, report: dict) -> list[Path]:
    """Replace every published file with this run's, all together."""
    output_dir.mkdir(parents=True, exist_ok=True)
    recover_interrupted_publish(output_dir)
    staging = output_dir / f".publish-{run_id}"
    shutil.rmtree(staging, ignore_errors=True)
    staging.mkdir()
    names = [*PUBLISHED_FILES, REPORT_NAME]
    try:
        write_data_files(warehouse, staging)
        _write_json(staging / REPORT_NAME, report)
        for name in names:
            _fsync(staging / name)
        # From here on the publish is decided: the journal lets a crash roll it forward.
        _write_json(
            output_dir / JOURNAL_NAME, {"run_id": run_id, "staging": staging.name, "files": names}
        )
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    recover_interrupted_publish(output_dir)
    return [output_dir / name for name in names]


def write_data_files(warehouse: Path, folder: Path) -> None:
    """Every published data file, written from the warehouse into `folder`."""
    # The flow's process may still hold dbt's connection: open with the same (default) config.
    with connect(warehouse) as con:
        con.execute("set TimeZone = 'UTC'")
        for name, (file_format, query) in PUBLISHED_FILES.items():
            target = str(folder / name).replace("'", "''")
            con.execute(f"copy ({query}) to '{target}' ({_COPY_OPTIONS[file_format]})")


def recover_interrupted_publish(output_dir: Path) -> None:
    """Finish a publish whose journal was written: move what is left, then forget it."""
    journal_path = output_dir / JOURNAL_NAME
    if not journal_path.exists():
        return
    journal = json.loads(journal_path.read_text())
    staging = output_dir / journal["staging"]
    for name in journal["files"]:
        if (staging / name).exists():
            os.replace(staging / name, output_dir / name)
    _fsync_dir(output_dir)
    journal_path.unlink()
    shutil.rmtree(staging, ignore_errors=True)


@task(name="publish-report")
def replace_published_report(output_dir: Path, report: dict) -> Path:
    """Replace the published report in one rename: with a later version of the same run's
    (one that knows how the exports went), or with the report of a run that found the
    published data files already current."""
    path = output_dir / REPORT_NAME
    tmp = output_dir / f".{REPORT_NAME}.tmp"
    _write_json(tmp, report)
    _fsync(tmp)
    os.replace(tmp, path)
    return path


@task(name="write-failed-report")
def write_failed_report(output_dir: Path, report: dict) -> Path:
    """A failed run's report goes beside the outputs, never over the published one."""
    failed_dir = output_dir / FAILED_DIR_NAME
    failed_dir.mkdir(parents=True, exist_ok=True)
    path = failed_dir / REPORT_NAME
    tmp = path.with_suffix(".json.tmp")
    _write_json(tmp, report)
    os.replace(tmp, path)
    return path


def _write_json(path: Path, payload: dict) -> None:
    path.write_text(json.dumps(payload, indent=2, sort_keys=False) + "\n", encoding="utf-8")


def _fsync(path: Path) -> None:
    with path.open("rb") as handle:
        os.fsync(handle.fileno())


def _fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
