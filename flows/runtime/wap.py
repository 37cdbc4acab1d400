"""Write–audit–publish for the warehouse: a run that does not publish leaves every table a
later run builds on exactly as the last published run left it.

Each run has a timestamp, `run_at`, later than every earlier run's, and stamps what it
writes with it. The warehouse's lasting state takes two forms, both undone by the stamp:

- *Versioned models* (the dbt models materialized `versioned`: the SCD2 histories,
  staging's verdicts, the marts' versions) are a current table beside an append-only
  history (`<model>__current`, `<model>__history`). A run inserts the versions it opens
  into current with `valid_from = run_at`, and moves the versions it closes from current
  to history with `valid_to = run_at`. Undoing it is deleting from current what it opened
  and moving what it closed back.
- *Versioned tables* (the other tables with `valid_from` and `valid_to` columns: the raw
  records and files): rows are never deleted. A run adds rows with `valid_from = run_at`
  and closes rows by setting `valid_to = run_at` on rows that were open. Undoing it is
  deleting the rows it opened and reopening the rows it closed.
- *Replaced tables* (rebuilt whole by a run, such as the delivery's line numbers): the
  run first renames the table it replaces to `<name>__before_<stamp>`, an O(1) rename.
  Undoing it is renaming it back; publishing drops it.
- Tables that only ever gain rows (APPEND_ONLY) are undone by deleting the run's rows.

`ledgerflow.runs` records which runs were published. Anything stamped later than the last
published run belongs to a run that stopped: the failure path undoes it at once, and
`recover_warehouse` undoes it at the next start (a run killed with SIGKILL never reached
its failure path). Each undo is one DuckDB transaction, so it too can be interrupted
anywhere and repeated.

Publishing is two-phase, so that the warehouse and the output folder always agree: the
run is `prepare`d here (with its output folder), the output folder's journal records the
decision (flows/steps/publish.py), and only then is the run `commit`ted here. A prepared
run whose decision was never written is undone; one whose journal exists is committed.
"""

from __future__ import annotations

import json
import logging
import os
import re
import shutil
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

import duckdb

from flows.runtime.failpoints import failpoint_action
from flows.runtime.warehouse import connect

SCHEMA = "ledgerflow"
RUNS = f"{SCHEMA}.runs"
BEFORE = "__before_"
# A versioned model's tables (dbt_project/macros/materializations/versioned.sql); `written`
# is the run's versions on their way in, dropped once applied.
CURRENT, HISTORY, WRITTEN = "__current", "__history", "__written"
# Tables that only ever gain rows, with the column that holds the stamp of the run that
# added each row.
APPEND_ONLY: dict[str, str] = {
    "raw._file_loads": "first_loaded_at",
    "raw._deliveries": "seen_at",
}

_STAMP = "%Y%m%d%H%M%S%f"


def ensure_runs_table(con: duckdb.DuckDBPyConnection) -> None:
    con.execute(f"create schema if not exists {SCHEMA}")
    con.execute(
        f"""
        create table if not exists {RUNS} (
            run_at timestamp primary key,
            run_id varchar not null,
            state varchar not null,  -- prepared, committed
            output_dir varchar not null,
            prepared_at timestamp not null,
            committed_at timestamp
        )
        """
    )


def last_committed(con: duckdb.DuckDBPyConnection) -> datetime | None:
    """The stamp of the last published run: anything later is not published."""
    ensure_runs_table(con)
    (stamp,) = con.execute(f"select max(run_at) from {RUNS} where state = 'committed'").fetchone()
    return stamp


def next_run_at(con: duckdb.DuckDBPyConnection, now: datetime | None = None) -> datetime:
    """This run's stamp: now (UTC), but later than the last published run's, so a clock
    that went back can never make one run's rows look like another's. (Called after
    recovery, when nothing later than the last published run is left.)"""
    now = (now or datetime.now(UTC)).replace(tzinfo=None)
    latest = last_committed(con)
    if latest is not None and now <= latest:
        return latest + timedelta(microseconds=1)
    return now


def before_name(table: str, run_at: datetime) -> str:
    """What `table` is renamed to while the run that replaces it may still be undone."""
    return f"{table}{BEFORE}{run_at.strftime(_STAMP)}"


def replace_table(con: duckdb.DuckDBPyConnection, relation: str, run_at: datetime) -> None:
    """Set the run's replacement for `schema.table` aside-able: rename the current table to
    its `__before_` name (if it exists and was not set aside by this run already)."""
    schema, table = relation.split(".", 1)
    if not _table_exists(con, schema, table):
        return
    backup = before_name(table, run_at)
    if _table_exists(con, schema, backup):
        con.execute(f'drop table "{schema}"."{table}"')
    else:
        con.execute(f'alter table "{schema}"."{table}" rename to "{backup}"')


def undo_after(con: duckdb.DuckDBPyConnection, stamp: datetime | None) -> dict[str, int]:
    """Undo every change stamped later than `stamp` (None: every change), in one
    transaction. Returns the rows (or tables) put back, per table."""
    undone: dict[str, int] = {}
    con.execute("begin transaction")
    try:
        for current, history in versioned_models(con):
            opened = _count(con, f"delete from {current} where {_after('valid_from', stamp)}")
            closed = _count(
                con,
                f"insert into {current} by name select * exclude (valid_to) from {history} "
                f"where {_after('valid_to', stamp)} and not {_after('valid_from', stamp)}",
            )
            _count(con, f"delete from {history} where {_after('valid_to', stamp)}")
            if opened or closed:
                undone[current.replace(CURRENT, "")] = opened + closed
        for relation in _tables_named(con, WRITTEN):
            con.execute(f"drop table {relation}")
        for relation in versioned_tables(con):
            opened = _count(con, f"delete from {relation} where {_after('valid_from', stamp)}")
            closed = _count(
                con, f"update {relation} set valid_to = null where {_after('valid_to', stamp)}"
            )
            if opened or closed:
                undone[relation] = opened + closed
        for relation, column in APPEND_ONLY.items():
            schema, table = relation.split(".", 1)
            if _table_exists(con, schema, table):
                added = _count(con, f"delete from {relation} where {_after(column, stamp)}")
                if added:
                    undone[relation] = added
        for schema, table, backup, backup_stamp in _set_aside(con):
            if stamp is None or backup_stamp > stamp:
                con.execute(f'drop table if exists "{schema}"."{table}"')
                con.execute(f'alter table "{schema}"."{backup}" rename to "{table}"')
                undone[f"{schema}.{table}"] = 1
        if stamp is not None:
            con.execute(f"delete from {RUNS} where run_at > ? and state <> 'committed'", [stamp])
        con.execute("commit")
    except BaseException:
        con.execute("rollback")
        raise
    return undone


def prepare(
    con: duckdb.DuckDBPyConnection, run_at: datetime, run_id: str, output_dir: Path
) -> None:
    """The run's changes are audited and about to be published into `output_dir`."""
    ensure_runs_table(con)
    con.execute(
        f"insert or replace into {RUNS} values (?, ?, 'prepared', ?, ?, null)",
        [run_at, run_id, str(output_dir), datetime.now(UTC).replace(tzinfo=None)],
    )


def commit(con: duckdb.DuckDBPyConnection, run_at: datetime) -> None:
    """The run is published: its changes become the state later runs build on, and the
    tables it replaced are dropped. Idempotent."""
    ensure_runs_table(con)
    con.execute("begin transaction")
    try:
        con.execute(
            f"update {RUNS} set state = 'committed', committed_at = ? "
            "where run_at = ? and state <> 'committed'",
            [datetime.now(UTC).replace(tzinfo=None), run_at],
        )
        for schema, _, backup, backup_stamp in _set_aside(con):
            if backup_stamp <= run_at:
                con.execute(f'drop table "{schema}"."{backup}"')
        con.execute("commit")
    except BaseException:
        con.execute("rollback")
        raise


def prepared_runs(con: duckdb.DuckDBPyConnection) -> list[tuple[datetime, str, Path]]:
    """(run_at, run_id, output folder) of runs prepared but not committed."""
    ensure_runs_table(con)
    rows = con.execute(
        f"select run_at, run_id, output_dir from {RUNS} where state = 'prepared' order by run_at"
    ).fetchall()
    return [(run_at, run_id, Path(output)) for run_at, run_id, output in rows]


def versioned_models(con: duckdb.DuckDBPyConnection) -> list[tuple[str, str]]:
    """(current, history) of every versioned model."""
    return [
        (current, current[: -len(CURRENT) - 1] + HISTORY + '"')
        for current in _tables_named(con, CURRENT)
    ]


def _tables_named(con: duckdb.DuckDBPyConnection, suffix: str) -> list[str]:
    rows = con.execute(
        "select table_schema, table_name from information_schema.tables "
        "where table_type = 'BASE TABLE' and suffix(table_name, ?) order by all",
        [suffix],
    ).fetchall()
    return [f'"{schema}"."{table}"' for schema, table in rows]


def versioned_tables(con: duckdb.DuckDBPyConnection) -> list[str]:
    """Every base table with both `valid_from` and `valid_to` columns, but a versioned
    model's (whose history's `valid_to` is never reopened in place)."""
    rows = con.execute(
        """
        select c.table_schema, c.table_name
        from information_schema.columns as c
        inner join information_schema.tables as t
            on c.table_schema = t.table_schema and c.table_name = t.table_name
        where
            t.table_type = 'BASE TABLE'
            and c.column_name in ('valid_from', 'valid_to')
            and not suffix(c.table_name, ?)
            and not suffix(c.table_name, ?)
        group by all
        having count(*) = 2
        order by all
        """,
        [HISTORY, WRITTEN],
    ).fetchall()
    return [f'"{schema}"."{table}"' for schema, table in rows]


def _set_aside(con: duckdb.DuckDBPyConnection) -> list[tuple[str, str, str, datetime]]:
    """(schema, table, backup name, stamp) of every table set aside by `replace_table`."""
    found = []
    for schema, name in con.execute(
        "select table_schema, table_name from information_schema.tables "
        "where table_type = 'BASE TABLE' and contains(table_name, ?)",
        [BEFORE],
    ).fetchall():
        match = re.fullmatch(rf"(.+){BEFORE}(\d{{20}})", name)
        if match:
            stamp = datetime.strptime(match.group(2), _STAMP)
            found.append((schema, match.group(1), name, stamp))
    return found


def _after(column: str, stamp: datetime | None) -> str:
    if stamp is None:
        return f"{column} is not null"
    return f"{column} > '{stamp.isoformat(sep=' ')}'::timestamp"


def _count(con: duckdb.DuckDBPyConnection, statement: str) -> int:
    (changed,) = con.execute(statement).fetchone()
    return int(changed)


def _table_exists(con: duckdb.DuckDBPyConnection, schema: str, table: str) -> bool:
    (found,) = con.execute(
        "select count(*) from information_schema.tables where table_schema = ? and table_name = ?",
        [schema, table],
    ).fetchone()
    return bool(found)


# --- Publishing into the output folder: the decision, and finishing it after a crash ---

JOURNAL_NAME = ".publish-journal.json"
STAGING_PREFIX = ".publish-"
COMMITTED_MARKER = ".published-"


@dataclass(frozen=True)
class Journal:
    """The decision to publish: which run, from which warehouse, which staged files."""

    run_id: str
    run_at: datetime
    warehouse: Path
    staging: str
    files: tuple[str, ...]

    def to_json(self) -> str:
        return json.dumps(
            {
                "run_id": self.run_id,
                "run_at": self.run_at.isoformat(),
                "warehouse": str(self.warehouse),
                "staging": self.staging,
                "files": list(self.files),
            },
            indent=2,
        )

    @classmethod
    def from_json(cls, text: str) -> Journal:
        data = json.loads(text)
        return cls(
            run_id=data["run_id"],
            run_at=datetime.fromisoformat(data["run_at"]),
            warehouse=Path(data["warehouse"]),
            staging=data["staging"],
            files=tuple(data["files"]),
        )


def staging_folder(output_dir: Path, run_id: str) -> Path:
    return output_dir / f"{STAGING_PREFIX}{run_id}"


def publish(warehouse: Path, output_dir: Path, journal: Journal) -> None:
    """Publish files already staged (and fsynced) in `journal.staging`, and the run's
    warehouse changes, together: prepare the run in the warehouse, write the journal (the
    decision, made durable), move the files into place, commit the run, forget the
    journal. A crash anywhere is finished or undone by `recover` at the next start."""
    with connect(warehouse) as con:
        prepare(con, journal.run_at, journal.run_id, output_dir)
    failpoint_action("publish-prepared")
    write_durably(output_dir / JOURNAL_NAME, journal.to_json())
    failpoint_action("publish-decided")
    _finish(output_dir, journal, warehouse)


def recover(
    warehouse: Path, output_dir: Path, logger: logging.Logger | logging.LoggerAdapter
) -> None:
    """At a run's start, holding both locks: finish a publish whose decision was made,
    then undo whatever the warehouse holds that no publish decided."""
    journal_path = output_dir / JOURNAL_NAME
    if journal_path.exists():
        try:
            journal = Journal.from_json(journal_path.read_text())
        except (ValueError, KeyError, TypeError):
            # The journal is renamed into place whole; anything unreadable was never a
            # decision, so it must not block this publish or any later one.
            logger.warning("ignoring an unreadable publish journal in %s", output_dir)
            journal_path.unlink()
            _fsync_dir(output_dir)
        else:
            logger.warning(
                "finishing the publish of run %s into %s, interrupted last time",
                journal.run_id,
                output_dir,
            )
            _finish(output_dir, journal, warehouse)
    for leftover in output_dir.glob(f"{STAGING_PREFIX}*") if output_dir.exists() else ():
        shutil.rmtree(leftover, ignore_errors=True)  # staged by a run that never decided
    with connect(warehouse) as con:
        for run_at, run_id, run_output in prepared_runs(con):
            if _was_decided(warehouse, run_at, run_id, run_output):
                logger.warning("committing run %s, published before an interruption", run_id)
                commit(con, run_at)
                _committed_marker(warehouse, run_at).unlink(missing_ok=True)
        undone = undo_after(con, last_committed(con))
    if undone:
        logger.warning(
            "undid the changes of a run that did not publish: %s",
            ", ".join(f"{table} ({rows})" for table, rows in sorted(undone.items())),
        )


def _finish(output_dir: Path, journal: Journal, warehouse: Path) -> None:
    staging = output_dir / journal.staging
    for name in journal.files:
        if (staging / name).exists():
            os.replace(staging / name, output_dir / name)
    _fsync_dir(output_dir)
    if journal.warehouse == warehouse:
        with connect(warehouse) as con:
            commit(con, journal.run_at)
    else:
        # Another warehouse's run: its warehouse is not ours to touch (its lock is not
        # held); a marker beside it says the publish happened, and its next run commits.
        write_durably(_committed_marker(journal.warehouse, journal.run_at), journal.run_id)
    (output_dir / JOURNAL_NAME).unlink()
    _fsync_dir(output_dir)
    shutil.rmtree(staging, ignore_errors=True)


def _was_decided(warehouse: Path, run_at: datetime, run_id: str, run_output: Path) -> bool:
    if _committed_marker(warehouse, run_at).exists():
        return True
    journal_path = run_output / JOURNAL_NAME
    try:
        journal = Journal.from_json(journal_path.read_text())
    except (OSError, ValueError, KeyError, TypeError):
        return False
    return journal.run_id == run_id and journal.warehouse == warehouse


def _committed_marker(warehouse: Path, run_at: datetime) -> Path:
    return warehouse.with_name(f"{warehouse.name}{COMMITTED_MARKER}{run_at.strftime(_STAMP)}")


def write_durably(path: Path, text: str) -> None:
    """Write a file so that a crash leaves either the old content or the new, never a
    torn one: temporary file, fsync, rename over, fsync of the folder."""
    tmp = path.with_name(f".{path.name}.tmp")
    with open(tmp, "w", encoding="utf-8") as handle:
        handle.write(text)
        handle.flush()
        os.fsync(handle.fileno())
    os.replace(tmp, path)
    _fsync_dir(path.parent)


def fsync_file(path: Path) -> None:
    with path.open("rb") as handle:
        os.fsync(handle.fileno())


def _fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
