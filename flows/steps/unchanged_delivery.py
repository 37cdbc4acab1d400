"""Re-running an unchanged delivery costs reading its files, not a rebuild.

The contract makes such a run a no-op for the data (no snapshot version, the same
`calculated_at`, byte-identical files), and every check but source freshness depends only
on the data and the project's code. So when a run finds all of these exactly as the last
successful publish left them:

- the delivery's content (sha256 of each file),
- the project's code and settings that decide the checks (dbt project, expectation suites,
  flows, quarantine thresholds, dbt/DuckDB/GX versions),
- the output folder's data files (size and modification time),
- and that publish is the last one the warehouse committed (a run that stopped since has
  had its changes undone),

the flow re-measures source freshness (the one check that depends on the clock, with the
same step as every run), carries every other check over from that publish, and replaces
only the quality report. Anything else takes the full path. The record lives in the warehouse (`raw._published_run`), like the
load times, so a new Prefect home does not lose it.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import asdict, dataclass
from importlib.metadata import version
from pathlib import Path

from prefect import task

from flows.config import (
    DBT_PROJECT_DIR,
    LAYERS,
    PROJECT_ROOT,
    QUARANTINE_BLOCK_RATE,
    QUARANTINE_WARN_RATE,
    RAW_SCHEMA,
)
from flows.quality.checks import CheckResult
from flows.runtime.wap import JOURNAL_NAME, RUNS
from flows.runtime.warehouse import connect
from flows.steps.delivery_csv import FileScan, scan_file
from flows.steps.expectations import EXPECTATIONS_DIR
from flows.steps.ingest import delivery_paths
from flows.steps.publish import PUBLISHED_DATA_FILES

RECORD_TABLE = f"{RAW_SCHEMA}._published_run"

# What decides a check's verdict besides the data: the code that computes it.
_CODE_FOLDERS = (
    DBT_PROJECT_DIR / "models",
    DBT_PROJECT_DIR / "macros",
    DBT_PROJECT_DIR / "tests",
    EXPECTATIONS_DIR,
    PROJECT_ROOT / "flows",
)
_CODE_FILES = (DBT_PROJECT_DIR / "dbt_project.yml", DBT_PROJECT_DIR / "profiles.yml")
_CODE_SUFFIXES = {".sql", ".yml", ".yaml", ".json", ".py", ".csv"}
_VERSIONED_PACKAGES = ("dbt-core", "dbt-duckdb", "duckdb", "great_expectations")


@dataclass(frozen=True)
class PublishedRun:
    """What the last successful publish into an output folder was made of."""

    run_id: str
    output_dir: str
    input_sha256: dict[str, str]
    code_fingerprint: str
    files: dict[str, list[int]]  # published data file -> [size, mtime_ns]
    checks: list[dict]  # every check but source freshness
    quarantine: dict[str, dict[str, int]]
    rows: dict[str, dict[str, int]]
    key_columns: dict[str, dict[str, int]]

    def carried_checks(self) -> list[CheckResult]:
        return [CheckResult(**check) for check in self.checks]


@task(name="check-unchanged-delivery")
def check_unchanged_delivery(
    input_dir: Path,
    output_dir: Path,
    warehouse: Path,
    select: tuple[str, ...],
    recompute: bool,
) -> tuple[dict[str, FileScan] | None, PublishedRun | None]:
    """The delivery's scans (content hash and what ingestion needs to know of the bytes),
    and the last publish if this run would only repeat it (never for a run asked to
    recompute or re-check everything: `recompute`).

    Scans are None for a run that does not cover the whole pipeline (it publishes what the
    warehouse holds, not what a delivery gives)."""
    if not covers_whole_pipeline(select):
        return None, None
    scans = delivery_scans(input_dir)
    if recompute:
        return scans, None
    return scans, find_reusable_publish(warehouse, output_dir, content_sha256(scans))


def delivery_scans(input_dir: Path) -> dict[str, FileScan] | None:
    """One pass over each delivery file; None if one is missing (the full path then
    reports it properly)."""
    paths = delivery_paths(input_dir)
    if not all(path.is_file() for path in paths.values()):
        return None
    return {table: scan_file(path) for table, path in paths.items()}


def content_sha256(scans: dict[str, FileScan] | None) -> dict[str, str] | None:
    """The content hash of each delivery file."""
    if scans is None:
        return None
    return {table: scan.sha256 for table, scan in scans.items()}


def code_fingerprint() -> str:
    digest = hashlib.sha256()
    files = [path for path in _CODE_FILES if path.is_file()]
    for folder in _CODE_FOLDERS:
        files += [p for p in folder.rglob("*") if p.is_file() and p.suffix in _CODE_SUFFIXES]
    for path in sorted(files):
        digest.update(str(path.relative_to(PROJECT_ROOT)).encode() + b"\0")
        digest.update(path.read_bytes() + b"\0")
    settings = [QUARANTINE_WARN_RATE, QUARANTINE_BLOCK_RATE]
    settings += [version(package) for package in _VERSIONED_PACKAGES]
    digest.update(json.dumps(settings).encode())
    return digest.hexdigest()


def published_files_state(output_dir: Path) -> dict[str, list[int]]:
    state = {}
    for name in PUBLISHED_DATA_FILES:
        path = output_dir / name
        if path.is_file():
            stat = path.stat()
            state[name] = [stat.st_size, stat.st_mtime_ns]
    return state


def find_reusable_publish(
    warehouse: Path, output_dir: Path, input_sha256: dict[str, str] | None
) -> PublishedRun | None:
    """The last publish, if this run would only reproduce it; else None."""
    if input_sha256 is None or not warehouse.exists():
        return None
    previous = _read_record(warehouse)
    if previous is None:
        return None
    with connect(warehouse) as con:
        # Only while that publish is still the last one the warehouse committed.
        (last_run_id,) = con.execute(
            f"select max_by(run_id, run_at) from {RUNS} where state = 'committed'"
        ).fetchone()
    reusable = (
        last_run_id == previous.run_id
        and previous.output_dir == str(output_dir.resolve())
        and previous.input_sha256 == input_sha256
        and not (output_dir / JOURNAL_NAME).exists()
        and previous.files == published_files_state(output_dir)
        and len(previous.files) == len(PUBLISHED_DATA_FILES)
        and previous.code_fingerprint == code_fingerprint()
    )
    return previous if reusable else None


@task(name="remember-published-run")
def remember_published_run(
    warehouse: Path,
    run_id: str,
    output_dir: Path,
    input_sha256: dict[str, str],
    checks: list[CheckResult],
    report: dict,
    key_columns: dict[str, dict[str, int]],
) -> None:
    record = PublishedRun(
        run_id=run_id,
        output_dir=str(output_dir.resolve()),
        input_sha256=input_sha256,
        code_fingerprint=code_fingerprint(),
        files=published_files_state(output_dir),
        checks=[asdict(check) for check in checks if check.kind != "source_freshness"],
        quarantine=report["quarantine"],
        rows=report["metrics"]["rows"],
        key_columns=key_columns,
    )
    with connect(warehouse) as con:
        con.execute(f"create or replace table {RECORD_TABLE} (record json not null)")
        con.execute(f"insert into {RECORD_TABLE} values (?)", [json.dumps(asdict(record))])


def _read_record(warehouse: Path) -> PublishedRun | None:
    with connect(warehouse) as con:
        (exists,) = con.execute(
            "select count(*) from information_schema.tables "
            "where table_schema = ? and table_name = ?",
            RECORD_TABLE.split("."),
        ).fetchone()
        if not exists:
            return None
        row = con.execute(f"select record from {RECORD_TABLE}").fetchone()
    return PublishedRun(**json.loads(row[0])) if row else None


def code_changed_since_last_publish(warehouse: Path) -> bool:
    """Whether the code that decides the checks differs from the last publish's (or no
    publish is on record): its checks on a change set would then rest on rows that code
    never judged, so every check reads whole tables once."""
    previous = _read_record(warehouse) if warehouse.exists() else None
    return previous is None or previous.code_fingerprint != code_fingerprint()


def covers_whole_pipeline(select: tuple[str, ...]) -> bool:
    """Only a run of every layer, ingestion included, publishes what a delivery gives."""
    return set(LAYERS) <= set(select)
