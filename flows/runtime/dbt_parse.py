"""The dbt project parsed once per process, and off the run's critical path.

Every dbt invocation parses the project unless it is handed a parsed manifest
(`dbtRunner(manifest=…)`). A run invokes dbt once per layer, so the project is parsed here,
once, and every layer reuses the result (flows/runtime/compat.py passes it through
prefect-dbt). `start_parsing` begins that work in a thread, so the command line can do it
while Prefect's API server starts; `parsed_manifest` waits for it.

What dbt hashes for partial parsing includes the profile's resolved connection (the
warehouse path, DuckDB's memory limit), so a new warehouse path would mean a full re-parse
(about 5 s here, against 0.2-1.5 s for a partial one). Only the warehouse's file name
reaches the parsed project (dbt-duckdb names the database after it), so the parse always
sees the same stand-in path with that name and a fixed memory limit: one parse folder per
database name, reused by every run and warehouse folder while the code is unchanged. The
run's own path and settings apply when dbt executes.
"""

from __future__ import annotations

import fcntl
import os
import threading
from collections.abc import Iterator
from concurrent.futures import Future
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING

from flows.config import DBT_PROJECT_DIR

if TYPE_CHECKING:
    from dbt.contracts.graph.manifest import Manifest

# dbt runs one invocation at a time per process (its flags and adapters are global), and a
# parse is one: every invocation of this project's dbt holds this lock.
DBT_INVOCATION_LOCK = threading.RLock()

# The project's files that decide what a parse produces.
_PARSED_FOLDERS = ("models", "macros", "tests", "snapshots", "seeds", "analyses")
_PARSED_FILES = ("dbt_project.yml", "profiles.yml", "packages.yml", "selectors.yml")

_parses: dict[tuple[str, str, tuple], Future] = {}
_parses_lock = threading.Lock()


def parse_target(warehouse: Path, project_dir: Path = DBT_PROJECT_DIR) -> Path:
    """The folder of the parse that serves warehouses named like this one."""
    return project_dir / "target" / f"parse-{warehouse.stem}"


def parsed_manifest_file(warehouse: Path, project_dir: Path = DBT_PROJECT_DIR) -> Path:
    """The manifest.json the parse for this warehouse wrote (the dashboard's lineage)."""
    return parse_target(warehouse, project_dir) / "manifest.json"


def start_parsing(warehouse: Path, project_dir: Path = DBT_PROJECT_DIR) -> Future:
    """Begin parsing the project for this warehouse in a thread, unless this process has
    parsed (or is parsing) the same code for the same database name."""
    key = (str(project_dir.resolve()), warehouse.stem, _code_state(project_dir))
    with _parses_lock:
        future = _parses.get(key)
        if future is None or (future.done() and future.exception() is not None):
            future = Future()
            _parses[key] = future
            threading.Thread(
                target=_parse_into,
                args=(future, warehouse, project_dir),
                name="dbt-parse",
                daemon=True,
            ).start()
    return future


def parsed_manifest(warehouse: Path, project_dir: Path = DBT_PROJECT_DIR) -> Manifest:
    """The parsed project for this warehouse; raises what the parse raised."""
    return start_parsing(warehouse, project_dir).result()


def _parse_into(future: Future, warehouse: Path, project_dir: Path) -> None:
    try:
        future.set_result(_parse(warehouse, project_dir))
    except BaseException as error:  # noqa: BLE001 - handed to whoever waits for the parse
        future.set_exception(error)


def _parse(warehouse: Path, project_dir: Path) -> Manifest:
    from dbt.cli.main import dbtRunner

    target = parse_target(warehouse, project_dir)
    target.mkdir(parents=True, exist_ok=True)
    args = [
        "parse",
        "--project-dir",
        str(project_dir),
        "--profiles-dir",
        str(project_dir),
        "--target-path",
        str(target),
        "--log-path",
        str(target),
        "--log-level",
        "none",
    ]
    # Processes share the parse folder: one writes partial_parse.msgpack at a time.
    with DBT_INVOCATION_LOCK, _folder_lock(target), _stand_in_profile(target / warehouse.name):
        outcome = dbtRunner().invoke(args)
    if not outcome.success or outcome.result is None:
        raise RuntimeError(f"dbt could not parse {project_dir}: {outcome.exception}")
    return outcome.result


@contextmanager
def _stand_in_profile(path: Path) -> Iterator[None]:
    """The profile's environment as every parse sees it (never opened: a parse does not
    connect)."""
    stand_in = {"LEDGERFLOW_WAREHOUSE": str(path), "LEDGERFLOW_DUCKDB_MEMORY_LIMIT": "1GB"}
    saved = {name: os.environ.get(name) for name in stand_in}
    os.environ.update(stand_in)
    try:
        yield
    finally:
        for name, value in saved.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value


@contextmanager
def _folder_lock(folder: Path) -> Iterator[None]:
    with open(folder / ".parse.lock", "w") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def _code_state(project_dir: Path) -> tuple:
    """Name, size and modification time of every file a parse reads: a process that edits
    the project (a test on a copy) parses again."""
    state = []
    for name in _PARSED_FILES:
        path = project_dir / name
        if path.is_file():
            stat = path.stat()
            state.append((name, stat.st_size, stat.st_mtime_ns))
    for folder in _PARSED_FOLDERS:
        for path in sorted((project_dir / folder).rglob("*")):
            if path.is_file():
                stat = path.stat()
                state.append((str(path.relative_to(project_dir)), stat.st_size, stat.st_mtime_ns))
    return tuple(state)
