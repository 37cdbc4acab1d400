"""Write–audit–publish of the output folder.

The run's files are written by DuckDB into a hidden folder beside the published ones,
then moved into place. The moves are journalled: if a process dies half-way, the next
publish (or read of the folder through `recover_interrupted_publish`) completes them, so
a reader sees either every file of a run or every file of the previous one.
"""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

from flows.warehouse_connection import connect

JOURNAL_NAME = ".publish-journal.json"
FAILED_DIR_NAME = "failed"
REPORT_NAME = "quality_report.json"

# A CSV text cell that a spreadsheet would run as a formula gets a leading quote,
# unless it is a plain number.
_FORMULA_START = r"^[=+\-@\t\r]"
_PLAIN_NUMBER = r"[+-]?[0-9]+(\.[0-9]+)?"


def _csv_text(column: str, alias: str | None = None) -> str:
    return (
        f"case when regexp_matches({column}, '{_FORMULA_START}') "
        f"and not regexp_full_match({column}, '{_PLAIN_NUMBER}') "
        f"then '''' || {column} else {column} end as {alias or column}"
    )


def _csv_timestamp(column: str) -> str:
    return f"strftime({column}, '%Y-%m-%dT%H:%M:%S.%fZ') as {column}"


_ACCOUNT_SUMMARY_COLUMNS = (
    "customer_id, original_balance_amount, interest_rate_pct, "
    "annual_interest_amount, new_balance_amount"
)
_CUSTOMER_PROFILE_COLUMNS = (
    "has_loan, savings_account_count, checking_account_count, "
    "total_savings_balance_amount, total_annual_interest_amount"
)


def _quarantine_csv(table: str, raw_columns: dict[str, str]) -> str:
    raw = ", ".join(_csv_text(column, f'"{header}"') for column, header in raw_columns.items())
    return f"""
        select {raw}, quarantine_reason, _source_file, _source_line,
               {_csv_timestamp("first_quarantined_at")}
        from staging.{table}
        where resolved_at is null
        order by _source_line
    """


# Each published file and the query that writes it. Sorting is part of the contract:
# byte order of account_id, numeric customer_id, source line for quarantine.
EXPORTS: dict[str, tuple[str, str]] = {
    "account_summary.csv": (
        "csv",
        f"""select {_csv_text("account_id")}, {_ACCOUNT_SUMMARY_COLUMNS},
                   {_csv_timestamp("calculated_at")}
            from marts.account_summary order by account_summary.account_id""",
    ),
    "account_summary.parquet": (
        "parquet",
        f"""select account_id, {_ACCOUNT_SUMMARY_COLUMNS},
                   cast(calculated_at as timestamptz) as calculated_at
            from marts.account_summary order by account_id""",
    ),
    "customer_profile.csv": (
        "csv",
        f"""select customer_id, {_csv_text("customer_name")}, {_CUSTOMER_PROFILE_COLUMNS}
            from marts.customer_profile order by customer_id""",
    ),
    "customer_profile.parquet": (
        "parquet",
        f"""select customer_id, customer_name, {_CUSTOMER_PROFILE_COLUMNS}
            from marts.customer_profile order by customer_id""",
    ),
    "quarantine_customers.csv": (
        "csv",
        _quarantine_csv(
            "quarantine_customers",
            {"raw_customer_id": "CustomerID", "raw_name": "Name", "raw_has_loan": "HasLoan"},
        ),
    ),
    "quarantine_accounts.csv": (
        "csv",
        _quarantine_csv(
            "quarantine_accounts",
            {
                "raw_account_id": "AccountID",
                "raw_customer_id": "CustomerID",
                "raw_balance": "Balance",
                "raw_account_type": "AccountType",
            },
        ),
    ),
}

_COPY_OPTIONS = {
    "csv": "format csv, header true, delimiter ',', quote '\"', escape '\"'",
    "parquet": "format parquet, compression zstd",
}


def publish_outputs(warehouse: Path, output_dir: Path, run_id: str, report: dict) -> list[Path]:
    """Replace every published file with this run's, all together."""
    output_dir.mkdir(parents=True, exist_ok=True)
    recover_interrupted_publish(output_dir)
    staging = output_dir / f".publish-{run_id}"
    shutil.rmtree(staging, ignore_errors=True)
    staging.mkdir()
    try:
        write_exports(warehouse, staging)
        _write_json(staging / REPORT_NAME, report)
        names = [*EXPORTS, REPORT_NAME]
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


def write_exports(warehouse: Path, folder: Path) -> None:
    # The flow's process may still hold dbt's connection: open with the same (default) config.
    with connect(warehouse) as con:
        con.execute("set TimeZone = 'UTC'")
        for name, (file_format, query) in EXPORTS.items():
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
