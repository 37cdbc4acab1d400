"""One run at a time per warehouse.

DuckDB never waits for a lock: a second writer fails at once, in the middle of whatever
step it reached. So a run takes an exclusive lock on `<warehouse>.lock` before its first
write and holds it until it has published. A second run against the same warehouse waits
for it (logging who holds it) and gives up with a clear error after a timeout.

An operating-system lock rather than a Prefect concurrency slot: it is released when the
holding process dies, whatever API the run uses (a temporary local one or a server), so a
crashed run can never leave the warehouse locked.
"""

from __future__ import annotations

import fcntl
import json
import logging
import os
import time
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path

from flows.errors import WarehouseBusy

POLL_SECONDS = 0.5
LOG_EVERY_SECONDS = 30


def lock_path(warehouse: Path) -> Path:
    return warehouse.with_name(warehouse.name + ".lock")


@contextmanager
def exclusive_warehouse(
    warehouse: Path, holder: str, timeout_seconds: float, logger: logging.Logger | None = None
) -> Iterator[None]:
    """Hold the warehouse's lock for the block; wait up to `timeout_seconds` for it."""
    path = lock_path(warehouse)
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "a+") as handle:
        _acquire(handle, warehouse, timeout_seconds, logger)
        try:
            handle.seek(0)
            handle.truncate()
            handle.write(
                json.dumps(
                    {
                        "holder": holder,
                        "pid": os.getpid(),
                        "since": datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
                    }
                )
            )
            handle.flush()
            yield
        finally:
            handle.seek(0)
            handle.truncate()
            fcntl.flock(handle, fcntl.LOCK_UN)


def _acquire(
    handle, warehouse: Path, timeout_seconds: float, logger: logging.Logger | None
) -> None:
    started = time.monotonic()
    last_logged = None
    while True:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
            return
        except BlockingIOError:
            pass
        waited = time.monotonic() - started
        if waited >= timeout_seconds:
            raise WarehouseBusy(str(warehouse), _describe_holder(handle), waited)
        if logger and (last_logged is None or waited - last_logged >= LOG_EVERY_SECONDS):
            logger.warning(
                "warehouse %s is in use by %s; waiting (up to %.0f s)",
                warehouse,
                _describe_holder(handle),
                timeout_seconds,
            )
            last_logged = waited
        time.sleep(POLL_SECONDS)


def _describe_holder(handle) -> str:
    handle.seek(0)
    try:
        held = json.loads(handle.read() or "{}")
    except json.JSONDecodeError:
        held = {}
    if not held:
        return "another run"
    return f"run {held.get('holder')} (pid {held.get('pid')}, since {held.get('since')})"
