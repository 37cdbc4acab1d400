"""One run at a time per warehouse and per output folder, for the whole run.

DuckDB never waits for a lock: a second writer fails at once, in the middle of whatever
step it reached. So a run takes an exclusive lock on `<warehouse>.lock`, then on
`<output folder>.lock`, before it first touches either, and holds both until its last
warehouse handle (dbt's in-process connection included) is closed and its last file is
written. A second run of any kind (the CLI, any deployment) waits for them, logging which
run it waits for, and gives up with WarehouseBusy (exit 5) after the configured wait.
Two runs that publish into one folder from different warehouses wait for each other on
the folder's lock. Every run takes the warehouse first, so two runs never hold one lock
each while waiting for the other's.

An operating-system lock rather than a Prefect concurrency slot: it is released when the
holding process dies, whatever API the run uses (a temporary local one or a server), so a
crashed run never leaves the warehouse locked.
"""

from __future__ import annotations

import fcntl
import json
import logging
import os
import time
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import IO

from flows.errors import WarehouseBusy

POLL_SECONDS = 0.5
LOG_EVERY_SECONDS = 30
TIMEOUT_SETTING = "LEDGERFLOW_WAREHOUSE_LOCK_TIMEOUT_SECONDS"


def lock_path(guarded: Path) -> Path:
    """The lock file beside a warehouse file or an output folder (never inside the folder,
    whose files are all published)."""
    return guarded.with_name(guarded.name + ".lock")


@contextmanager
def exclusive_run(
    warehouse: Path,
    output_dir: Path,
    holder: str,
    timeout_seconds: float,
    logger: logging.Logger | logging.LoggerAdapter | None = None,
) -> Iterator[None]:
    """Hold the warehouse's and the output folder's locks for the block; wait up to
    `timeout_seconds` in all for both."""
    deadline = time.monotonic() + timeout_seconds
    with ExitStack() as held:
        for what, guarded in (("warehouse", warehouse), ("output folder", output_dir)):
            held.enter_context(_exclusive(guarded, f"{what} {guarded}", holder, deadline, logger))
        yield


@contextmanager
def _exclusive(
    guarded: Path,
    what: str,
    holder: str,
    deadline: float,
    logger: logging.Logger | logging.LoggerAdapter | None,
) -> Iterator[None]:
    path = lock_path(guarded)
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "a+") as handle:
        _acquire(handle, what, deadline, logger)
        try:
            handle.seek(0)
            handle.truncate()
            since = datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
            handle.write(json.dumps({"holder": holder, "pid": os.getpid(), "since": since}))
            handle.flush()
            yield
        finally:
            handle.seek(0)
            handle.truncate()
            fcntl.flock(handle, fcntl.LOCK_UN)


def _acquire(
    handle: IO[str],
    what: str,
    deadline: float,
    logger: logging.Logger | logging.LoggerAdapter | None,
) -> None:
    started = time.monotonic()
    last_logged = None
    while True:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
            return
        except BlockingIOError:
            pass
        now = time.monotonic()
        if now >= deadline:
            raise WarehouseBusy(what, describe_holder(handle), now - started, TIMEOUT_SETTING)
        waited = now - started
        if logger and (last_logged is None or waited - last_logged >= LOG_EVERY_SECONDS):
            logger.warning(
                "%s is in use by %s; waiting (up to %.0f s more)",
                what,
                describe_holder(handle),
                deadline - now,
            )
            last_logged = waited
        time.sleep(min(POLL_SECONDS, max(deadline - now, 0.01)))


def describe_holder(handle: IO[str]) -> str:
    handle.seek(0)
    try:
        held = json.loads(handle.read() or "{}")
    except json.JSONDecodeError:
        held = {}
    if not held:
        return "another run"
    return f"run {held.get('holder')} (pid {held.get('pid')}, since {held.get('since')})"
