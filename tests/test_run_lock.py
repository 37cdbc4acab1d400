"""One run at a time per warehouse and per output folder, across processes: the second
waits, or gives up with a message naming the holder; a crashed holder never leaves either
locked. (test_cli_runs.py runs two whole `ledgerflow run`s against each other.)"""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

import pytest

from flows.errors import EXIT_WAREHOUSE_BUSY, WarehouseBusy
from flows.runtime.run_lock import exclusive_run

HOLDER = """
import os, sys, time
from pathlib import Path
from flows.runtime.run_lock import exclusive_run
warehouse, output, ready, mode = Path(sys.argv[1]), Path(sys.argv[2]), Path(sys.argv[3]), sys.argv[4]
with exclusive_run(warehouse, output, "run-A", timeout_seconds=5):
    ready.write_text("held")
    if mode == "crash":
        time.sleep(0.5)
        os._exit(1)
    time.sleep(float(mode))
    # Written while the locks are still held: whoever gets them after must see it.
    ready.write_text("done")
"""


def _hold(tmp_path: Path, mode: str, warehouse: str = "wh.duckdb") -> subprocess.Popen:
    ready = tmp_path / "ready"
    holder = subprocess.Popen(
        [
            sys.executable,
            "-c",
            HOLDER,
            str(tmp_path / warehouse),
            str(tmp_path / "output"),
            str(ready),
            mode,
        ]
    )
    deadline = time.monotonic() + 30
    while not ready.exists():
        assert time.monotonic() < deadline and holder.poll() is None, "holder never got the lock"
        time.sleep(0.05)
    return holder


@pytest.mark.parametrize("warehouse", ["wh.duckdb", "another-warehouse.duckdb"])
def test_a_second_run_waits_for_the_first(tmp_path, warehouse):
    """On the same warehouse, or on another one publishing into the same folder."""
    holder = _hold(tmp_path, "2")
    try:
        with exclusive_run(tmp_path / warehouse, tmp_path / "output", "run-B", timeout_seconds=60):
            # Got the locks only once the holder had finished its work and let them go (the
            # holder's process may still be shutting down, so its exit is not the signal).
            assert (tmp_path / "ready").read_text() == "done"
    finally:
        assert holder.wait(timeout=30) == 0


def test_a_run_on_another_warehouse_and_folder_does_not_wait(tmp_path):
    holder = _hold(tmp_path, "10")
    try:
        other = tmp_path / "other"
        with exclusive_run(other / "wh.duckdb", other / "output", "run-B", timeout_seconds=1):
            assert holder.poll() is None
    finally:
        holder.kill()
        holder.wait()


def test_a_second_run_gives_up_naming_the_holder(tmp_path):
    holder = _hold(tmp_path, "10")
    try:
        busy = pytest.raises(WarehouseBusy, match=r"in use by run run-A \(pid \d+, since .*\)")
        with (
            busy,
            exclusive_run(tmp_path / "wh.duckdb", tmp_path / "output", "run-B", timeout_seconds=1),
        ):
            pytest.fail("got the lock while run-A held it")
    finally:
        holder.kill()
        holder.wait()
    assert WarehouseBusy.exit_code == EXIT_WAREHOUSE_BUSY == 5


def test_a_crashed_holder_leaves_both_free(tmp_path):
    holder = _hold(tmp_path, "crash")
    assert holder.wait(timeout=30) == 1
    with exclusive_run(tmp_path / "wh.duckdb", tmp_path / "output", "run-B", timeout_seconds=1):
        pass
