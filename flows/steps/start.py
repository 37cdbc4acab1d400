"""The start of every run, and the undo of one that stopped before publishing.

Both run while the run holds its warehouse and output folder (flows/runtime/run_lock.py).
"""

from __future__ import annotations

from datetime import datetime
from pathlib import Path

from prefect import task

from flows.runtime import wap
from flows.runtime.log import step_logger
from flows.runtime.warehouse import connect


@task(name="start-run")
def start_run(warehouse: Path, output_dir: Path, now: datetime | None = None) -> datetime:
    """Finish or undo whatever an interrupted run left (a publish it decided is finished,
    anything else it wrote is undone), then give this run its timestamp (`now`, UTC, by
    default the clock's)."""
    warehouse.parent.mkdir(parents=True, exist_ok=True)
    output_dir.mkdir(parents=True, exist_ok=True)
    wap.recover(warehouse, output_dir, step_logger(__name__))
    with connect(warehouse) as con:
        return wap.next_run_at(con, now)


@task(name="undo-unpublished-run")
def undo_unpublished_run(warehouse: Path, output_dir: Path, run_at: datetime) -> bool:
    """Put the warehouse back as the last published run left it; True if this run turns
    out to have published after all (it stopped after its publish was decided, which
    recovery then finishes)."""
    wap.recover(warehouse, output_dir, step_logger(__name__))
    with connect(warehouse) as con:
        return wap.last_committed(con) == run_at
