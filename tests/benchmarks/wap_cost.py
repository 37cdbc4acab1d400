"""What write–audit–publish of the warehouse costs, at a given size (`make bench-wap`).

    python tests/benchmarks/wap_cost.py [--accounts N] [--change-rate R]

On the deliveries `make bench` generates (cached under .bench/), it publishes the base
delivery into a fresh warehouse, then measures:

- the check every run makes at its start on a warehouse a publish left clean
  (`wap.recover`: nothing to finish, nothing to undo);
- the undo of a whole unpublished run: the changed delivery's run killed with SIGKILL
  after its audit (every table it writes already written), then `wap.recover` at the next
  start puts the warehouse back;
- what the undo is measured against: copying the warehouse file, the other mechanism
  (a copy per run before it writes), and the file's size before and during such a run.

It also checks that the undo restored the warehouse: every table's row count and a
checksum of every row equal those before the killed run. Results go to
.bench/wap-<N>.json. A benchmark, not a test: nothing here is collected by pytest.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import logging
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import duckdb
from run_bench import PROJECT_ROOT, parse_args, prepare_deliveries

from flows.runtime import wap
from flows.runtime.failpoints import ENV as FAILPOINTS


def table_fingerprints(warehouse: Path) -> dict[str, tuple[int, int]]:
    """(rows, order-free checksum of every row) of every base table."""
    with duckdb.connect(str(warehouse), read_only=True) as con:
        tables = con.execute(
            "select table_schema, table_name from information_schema.tables "
            "where table_type = 'BASE TABLE' and table_name <> 'run_context' order by all"
        ).fetchall()
        return {
            f"{schema}.{table}": con.execute(
                f'select count(*), coalesce(sum(hash(t)), 0) from "{schema}"."{table}" as t'
            ).fetchone()
            for schema, table in tables
        }


def cli_run(delivery: Path, warehouse: Path, output: Path, env: dict[str, str]) -> int:
    """`ledgerflow run` in a session of its own: a run killed by a failpoint leaves its
    ephemeral Prefect server behind, which is then stopped with the session."""
    process = subprocess.Popen(
        [sys.executable, "-m", "flows.cli", "run", "--input-dir", str(delivery),
         "--output-dir", str(output), "--warehouse", str(warehouse)],
        cwd=PROJECT_ROOT, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        start_new_session=True,
    )  # fmt: skip
    returncode = process.wait()
    with contextlib.suppress(ProcessLookupError):
        os.killpg(process.pid, signal.SIGTERM)
    return returncode


def timed(action) -> float:
    started = time.perf_counter()
    action()
    return time.perf_counter() - started


def main(argv: list[str] | None = None) -> int:
    args: argparse.Namespace = parse_args(argv)
    deliveries = prepare_deliveries(args)
    root = args.scratch / f"wap-{args.accounts}"
    shutil.rmtree(root, ignore_errors=True)
    warehouse, output = root / "warehouse.duckdb", root / "output"
    env = {**os.environ}
    env.pop(FAILPOINTS, None)
    logger = logging.getLogger("wap-cost")

    assert cli_run(deliveries["base"], warehouse, output, env) == 0, "the base run failed"
    published_size = warehouse.stat().st_size
    before = table_fingerprints(warehouse)
    recover_clean = [timed(lambda: wap.recover(warehouse, output, logger)) for _ in range(3)]
    copy_seconds = timed(lambda: shutil.copyfile(warehouse, root / "copy.duckdb"))
    (root / "copy.duckdb").unlink()

    killed = cli_run(deliveries["changed"], warehouse, output, {**env, FAILPOINTS: "audit=kill"})
    assert killed == -9, f"the killed run ended {killed}, not by SIGKILL"
    unpublished_size = warehouse.stat().st_size
    undo_seconds = timed(lambda: wap.recover(warehouse, output, logger))
    restored = table_fingerprints(warehouse) == before

    results = {
        "accounts": args.accounts,
        "change_rate": args.change_rate,
        "recover_clean_seconds": recover_clean,
        "undo_unpublished_run_seconds": undo_seconds,
        "copy_warehouse_file_seconds": copy_seconds,
        "warehouse_bytes_published": published_size,
        "warehouse_bytes_with_unpublished_run": unpublished_size,
        "restored_exactly": restored,
    }
    print(json.dumps(results, indent=2))
    (args.scratch / f"wap-{args.accounts}.json").write_text(json.dumps(results, indent=2))
    return 0 if restored else 1


if __name__ == "__main__":
    sys.exit(main())
