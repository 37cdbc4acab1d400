"""One run at a time per warehouse, across processes: the second waits, or gives up with
a message naming the holder; a crashed holder never leaves the warehouse locked."""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

import pytest

from flows.errors import WarehouseBusy
from flows.runtime.warehouse_lock import exclusive_warehouse

HOLDER = """
import os, sys, time
from pathlib import Path
from flows.runtime.warehouse_lock import exclusive_warehouse
warehouse, ready, mode = Path(sys.argv[1]), Path(sys.argv[2]), sys.argv[3]
with exclusive_warehouse(warehouse, "run-A", timeout_seconds=5):
    ready.write_text("held")
    if mode == "crash":
        time.sleep(0.5)
        os._exit(1)
    time.sleep(float(mode))
"""


def _hold(tmp_path: Path, mode: str) -> subprocess.Popen:
    ready = tmp_path / "ready"
    holder = subprocess.Popen(
        [sys.executable, "-c", HOLDER, str(tmp_path / "wh.duckdb"), str(ready), mode]
    )
    deadline = time.monotonic() + 30
    while not ready.exists():
        assert time.monotonic() < deadline and holder.poll() is None, "holder never got the lock"
        time.sleep(0.05)
    return holder


def test_a_second_run_waits_for_the_first(tmp_path):
    holder = _hold(tmp_path, "2")
    with exclusive_warehouse(tmp_path / "wh.duckdb", "run-B", timeout_seconds=60):
        # The lock came free only because the holder finished.
        assert holder.poll() is not None or holder.wait(timeout=5) == 0


def test_a_second_run_gives_up_naming_the_holder(tmp_path):
    holder = _hold(tmp_path, "10")
    try:
        busy = pytest.raises(WarehouseBusy, match=r"in use by run run-A \(pid \d+, since .*\)")
        with busy, exclusive_warehouse(tmp_path / "wh.duckdb", "run-B", timeout_seconds=1):
            pytest.fail("got the lock while run-A held it")
    finally:
        holder.kill()
        holder.wait()
    assert WarehouseBusy.exit_code == 2


def test_a_crashed_holder_leaves_the_warehouse_free(tmp_path):
    holder = _hold(tmp_path, "crash")
    assert holder.wait(timeout=30) == 1
    with exclusive_warehouse(tmp_path / "wh.duckdb", "run-B", timeout_seconds=1):
        pass
