"""Which earlier results a run may reuse: the one cache key its steps share.

The run's steps carry Prefect's cache policy (`STEP_CACHE`,
flows/runtime/step_cache_policy.py) keyed on the run's key, so a run given the key of an
earlier run finds each step's result in Prefect's result storage: the step shows as
Cached in the UI and the API, its result (rows, checks) goes into the report, its work is
not done again.

Results are only worth reusing when the warehouse holds what they describe. So a run gets
an earlier run's key in one case: the delivery is one the warehouse already holds (the
empty change set). That is the same content with the same code and settings, after a
publish that is still the warehouse's last, into the same output folder, whose data files
are as it left them; such a run changes nothing and shares that publish's key. Source
freshness is never cached: it depends on the clock. Any other run gets a key of its own
(its run id is part of it): the results of a run that stopped and was undone can never be
found again, and a key whose results Prefect no longer holds simply runs the steps (the
warehouse, not the cache, is the source of truth). Runs asked to recompute or re-check
everything get a key of their own too, and runs of a subset of layers get none.

A layer's unit tests are keyed on the code alone (their fixtures are part of it): code
whose unit tests passed once, in any run, finds them Cached; a run asked to re-check
everything runs them again.

The record of the last publish lives in the warehouse (`raw._published_run`), like the
load times, so a new Prefect home loses the cached results but not what they describe.
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
from flows.runtime.wap import JOURNAL_NAME, RUNS
from flows.runtime.warehouse import connect
from flows.steps.delivery_csv import FileScan, scan_file
from flows.steps.expectations import EXPECTATIONS_DIR
from flows.steps.ingest import delivery_paths
from flows.steps.publish import PUBLISHED_DATA_FILES

RECORD_TABLE = f"{RAW_SCHEMA}._published_run"

# What decides a step's result besides the data: the code that computes it.
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
class PublishedState:
    """What the last publish into an output folder was made of, and the key it used."""

    run_id: str
    cache_key: str
    output_dir: str
    input_sha256: dict[str, str]
    code_fingerprint: str
    files: dict[str, list[int]]  # published data file -> [size, mtime_ns]


@dataclass(frozen=True)
class RunKey:
    """The run's cache key (None: nothing cached), the run whose results it reuses if the
    delivery is one the warehouse already holds, and the key of the code alone (for the
    unit tests, whose verdicts depend on nothing else; None: run them)."""

    key: str | None
    same_as_run: str | None = None
    code: str | None = None


@task(name="scan-delivery")
def scan_delivery(
    input_dir: Path,
    output_dir: Path,
    warehouse: Path,
    select: tuple[str, ...],
    recompute: bool,
    run_id: str,
) -> tuple[dict[str, FileScan] | None, RunKey]:
    """The delivery's scans (content hash and what ingestion needs to know of the bytes),
    and the run's key. Scans are None for a run of a subset of layers (it publishes what
    the warehouse holds, not what a delivery gives) or a missing file (ingestion reports
    it); such a run gets no key. A run asked to `recompute` (or re-check) everything gets
    a key of its own and no code key."""
    code = code_fingerprint()
    code_key = None if recompute else code
    if not set(LAYERS) <= set(select):
        return None, RunKey(None, code=code_key)
    paths = delivery_paths(input_dir)
    if not all(path.is_file() for path in paths.values()):
        return None, RunKey(None, code=code_key)
    scans = {table: scan_file(path) for table, path in paths.items()}
    sha256 = content_sha256(scans)
    published = None if recompute else read_published_state(warehouse)
    last_committed = _last_committed_run(warehouse)
    if published is not None and (
        published.run_id == last_committed
        and published.output_dir == str(output_dir.resolve())
        and published.input_sha256 == sha256
        and published.code_fingerprint == code
        and not (output_dir / JOURNAL_NAME).exists()
        and published.files == published_files_state(output_dir)
        and len(published.files) == len(PUBLISHED_DATA_FILES)
    ):
        return scans, RunKey(published.cache_key, published.run_id, code_key)
    parts = [sha256, code, str(output_dir.resolve()), last_committed, run_id]
    key = hashlib.sha256(json.dumps(parts, sort_keys=True).encode()).hexdigest()
    return scans, RunKey(key, None, code_key)


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


@task(name="remember-published-state")
def remember_published_state(
    warehouse: Path, run_id: str, output_dir: Path, input_sha256: dict[str, str], key: str
) -> None:
    """The publish just made, for the next run's key."""
    state = PublishedState(
        run_id=run_id,
        cache_key=key,
        output_dir=str(output_dir.resolve()),
        input_sha256=input_sha256,
        code_fingerprint=code_fingerprint(),
        files=published_files_state(output_dir),
    )
    with connect(warehouse) as con:
        con.execute(f"create or replace table {RECORD_TABLE} (record json not null)")
        con.execute(f"insert into {RECORD_TABLE} values (?)", [json.dumps(asdict(state))])


def read_published_state(warehouse: Path) -> PublishedState | None:
    if not warehouse.exists():
        return None
    with connect(warehouse) as con:
        (exists,) = con.execute(
            "select count(*) from information_schema.tables "
            "where table_schema = ? and table_name = ?",
            RECORD_TABLE.split("."),
        ).fetchone()
        if not exists:
            return None
        row = con.execute(f"select record from {RECORD_TABLE}").fetchone()
    if row is None:
        return None
    try:
        return PublishedState(**json.loads(row[0]))
    except TypeError:  # a record written by an older version: no key to share
        return None


def _last_committed_run(warehouse: Path) -> str | None:
    if not warehouse.exists():
        return None
    with connect(warehouse) as con:
        (exists,) = con.execute(
            "select count(*) from information_schema.tables "
            "where table_schema || '.' || table_name = ?",
            [RUNS],
        ).fetchone()
        if not exists:
            return None
        (run_id,) = con.execute(
            f"select max_by(run_id, run_at) from {RUNS} where state = 'committed'"
        ).fetchone()
    return run_id


def code_changed_since_last_publish(warehouse: Path) -> bool:
    """Whether the code that decides the checks differs from the last publish's (or no
    publish is on record): its checks on a change set would then rest on rows that code
    never judged, so every check reads whole tables once."""
    published = read_published_state(warehouse)
    return published is None or published.code_fingerprint != code_fingerprint()
