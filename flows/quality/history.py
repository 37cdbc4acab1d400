"""The run history: every run the warehouse saw, kept in the warehouse's own schema.

One row per run in `history.runs` (outcome, the step it stopped at, the delivery's
fingerprint, the deployment), and beside it what the run measured: `history.metrics` (one
value per metric and subject, such as rows_delivered of accounts or step_seconds of
staging), `history.checks` (every check's verdict, failing rows and the message that names
the offending keys), `history.delivered_columns` (each file's header) and
`history.anomalies` (what the anomaly scan raised).

The history is an observation of runs, not state a run builds on: it has no versions, so a
run's undo (flows/runtime/wap.py) leaves it alone and a failed run stays recorded. It lives
in the warehouse, not in Prefect's database, so a new Prefect home does not lose it.
Recorded last, while the run still holds the warehouse; a run killed with SIGKILL never gets
there and is not in it.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING

import duckdb

from flows.config import HISTORY_SCHEMA
from flows.contract import DELIVERY_FILES, MART_SOURCES
from flows.quality.checks import CheckResult
from flows.runtime.warehouse import connect

if TYPE_CHECKING:
    from flows.quality.report import QualityAudit

RUNS = f"{HISTORY_SCHEMA}.runs"
METRICS = f"{HISTORY_SCHEMA}.metrics"
CHECKS = f"{HISTORY_SCHEMA}.checks"
DELIVERED_COLUMNS = f"{HISTORY_SCHEMA}.delivered_columns"
ANOMALIES = f"{HISTORY_SCHEMA}.anomalies"

# (metric, subject): the subject is the table, column, step or quarantine reason measured.
MetricKey = tuple[str, str]


@dataclass(frozen=True)
class RecordedAnomaly:
    metric: str
    subject: str
    value: float
    expected_low: float | None
    expected_high: float | None
    blocking: bool
    message: str


@dataclass(frozen=True)
class RunRecord:
    run_id: str
    run_at: datetime  # the run's stamp (naive UTC), the order of the history
    outcome: str  # passed, warned or failed
    published: bool
    processed_delivery: bool  # False for a re-run of an unchanged delivery (results reused)
    stopped_at: str | None = None
    error: str | None = None
    deployment: str | None = None
    delivery_sha256: str | None = None
    finished_at: datetime | None = None
    metrics: dict[MetricKey, float] = field(default_factory=dict)
    delivered_columns: dict[str, tuple[str, ...]] = field(default_factory=dict)
    checks: tuple[CheckResult, ...] = ()
    anomalies: tuple[RecordedAnomaly, ...] = ()


def measured_metrics(audit: QualityAudit) -> dict[MetricKey, float]:
    """What the run has measured so far, by (metric, subject): rows delivered per file and
    published per mart, the change set per file, the quarantine rate per table and reason,
    nulls and duplicates per key column, and seconds per finished step."""
    metrics: dict[MetricKey, float] = {}
    for table in DELIVERY_FILES:
        delivered = audit.rows.get(table, {}).get("delivered")
        if delivered is None:
            continue
        metrics[("rows_delivered", table)] = delivered
        if table in audit.change_set:
            metrics[("change_set", table)] = audit.change_set[table]
        for reason, count in audit.quarantine.get(table, {}).items():
            metrics[("quarantine_rate", f"{table}.{reason}")] = (
                count / delivered if delivered else 0.0
            )
    for mart, table in MART_SOURCES.items():
        published = audit.rows.get(table, {}).get(mart)
        if published is not None:
            metrics[("rows_published", mart)] = published
    for column, counts in audit.key_columns.items():
        for label in ("nulls", "duplicates"):
            if counts.get(label) is not None:
                metrics[(label, column)] = counts[label]
    for step, seconds in audit.durations.items():
        metrics[("step_seconds", step)] = seconds
    # Recorded for the dashboard's lineage; no anomaly rule judges them.
    for node, seconds in audit.node_seconds.items():
        metrics[("node_seconds", node)] = seconds
    if audit.anomaly_scan is not None:
        metrics.update(audit.anomaly_scan.measured())
    return metrics


def record_audited_run(warehouse: Path, audit: QualityAudit, deployment: str | None) -> None:
    """Remember the run as it ended (called last, still holding the warehouse)."""
    run = RunRecord(
        run_id=audit.run_id,
        run_at=audit.run_at,
        outcome=audit.status(),
        published=audit.published,
        processed_delivery=audit.processed_delivery,
        stopped_at=audit.stopped_at,
        error=audit.error,
        deployment=deployment,
        delivery_sha256=audit.delivery_sha256,
        finished_at=datetime.now(UTC).replace(tzinfo=None),
        metrics=measured_metrics(audit),
        delivered_columns=audit.delivered_columns,
        checks=tuple(audit.checks),
        anomalies=tuple(a.recorded() for a in audit.anomaly_scan.anomalies)
        if audit.anomaly_scan
        else (),
    )
    with connect(warehouse) as con:
        record_run(con, run)


def ensure_history(con: duckdb.DuckDBPyConnection) -> None:
    con.execute(f"create schema if not exists {HISTORY_SCHEMA}")
    con.execute(
        f"""
        create table if not exists {RUNS} (
            run_id varchar primary key,
            run_at timestamp not null,
            finished_at timestamp,
            deployment varchar,
            delivery_sha256 varchar,
            outcome varchar not null,
            published boolean not null,
            processed_delivery boolean not null,
            stopped_at varchar,
            error varchar
        )
        """
    )
    con.execute(
        f"""
        create table if not exists {METRICS} (
            run_id varchar not null,
            metric varchar not null,
            subject varchar not null,
            value double not null,
            primary key (run_id, metric, subject)
        )
        """
    )
    con.execute(
        f"""
        create table if not exists {CHECKS} (
            run_id varchar not null,
            name varchar not null,
            model varchar not null,
            kind varchar not null,
            status varchar not null,
            severity varchar not null,
            failures bigint,
            message varchar not null
        )
        """
    )
    con.execute(
        f"""
        create table if not exists {DELIVERED_COLUMNS} (
            run_id varchar not null,
            file varchar not null,
            position integer not null,
            column_name varchar not null
        )
        """
    )
    con.execute(
        f"""
        create table if not exists {ANOMALIES} (
            run_id varchar not null,
            metric varchar not null,
            subject varchar not null,
            value double not null,
            expected_low double,
            expected_high double,
            blocking boolean not null,
            message varchar not null
        )
        """
    )


def record_run(con: duckdb.DuckDBPyConnection, run: RunRecord) -> None:
    """Add one run and what it measured, in one transaction (a run recorded twice, as a
    retried flow run may be, replaces its first record)."""
    ensure_history(con)
    con.execute("begin transaction")
    try:
        for table in (METRICS, CHECKS, DELIVERED_COLUMNS, ANOMALIES, RUNS):
            con.execute(f"delete from {table} where run_id = ?", [run.run_id])
        con.execute(
            f"insert into {RUNS} values (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            [
                run.run_id,
                run.run_at,
                run.finished_at,
                run.deployment,
                run.delivery_sha256,
                run.outcome,
                run.published,
                run.processed_delivery,
                run.stopped_at,
                run.error,
            ],
        )
        _insert(
            con,
            METRICS,
            [
                (run.run_id, metric, subject, value)
                for (metric, subject), value in run.metrics.items()
            ],
        )
        _insert(
            con,
            CHECKS,
            [
                (run.run_id, c.name, c.model, c.kind, c.status, c.severity, c.failures, c.message)
                for c in run.checks
            ],
        )
        _insert(
            con,
            DELIVERED_COLUMNS,
            [
                (run.run_id, file, position, name)
                for file, columns in run.delivered_columns.items()
                for position, name in enumerate(columns)
            ],
        )
        _insert(
            con,
            ANOMALIES,
            [
                (
                    run.run_id,
                    a.metric,
                    a.subject,
                    a.value,
                    a.expected_low,
                    a.expected_high,
                    a.blocking,
                    a.message,
                )
                for a in run.anomalies
            ],
        )
        con.execute("commit")
    except BaseException:
        con.execute("rollback")
        raise


def _insert(con: duckdb.DuckDBPyConnection, table: str, rows: Iterable[tuple]) -> None:
    rows = list(rows)
    if rows:
        placeholders = ", ".join("?" * len(rows[0]))
        con.executemany(f"insert into {table} values ({placeholders})", rows)


@dataclass(frozen=True)
class TrainingRun:
    run_id: str
    run_at: datetime
    metrics: dict[MetricKey, float]
    delivered_columns: dict[str, tuple[str, ...]]


def training_runs(
    con: duckdb.DuckDBPyConnection, before: datetime, limit: int
) -> list[TrainingRun]:
    """The last `limit` runs before `before` that processed a delivery and published it,
    newest first: what tonight is compared with. A failed run is history, not the norm."""
    ensure_history(con)
    runs = con.execute(
        f"""
        select run_id, run_at from {RUNS}
        where published and processed_delivery and run_at < ?
        order by run_at desc
        limit ?
        """,
        [before, limit],
    ).fetchall()
    if not runs:
        return []
    ids = [run_id for run_id, _ in runs]
    metrics = _metrics_of(con, ids)
    columns: dict[str, dict[str, list[str]]] = {run_id: {} for run_id in ids}
    for run_id, file, name in con.execute(
        f"""
        select run_id, file, column_name from {DELIVERED_COLUMNS}
        where list_contains(?, run_id) order by run_id, file, position
        """,
        [ids],
    ).fetchall():
        columns[run_id].setdefault(file, []).append(name)
    return [
        TrainingRun(
            run_id,
            run_at,
            metrics[run_id],
            {file: tuple(names) for file, names in columns[run_id].items()},
        )
        for run_id, run_at in runs
    ]


def previous_processed_run(
    con: duckdb.DuckDBPyConnection, before: datetime
) -> tuple[str, tuple[RecordedAnomaly, ...]] | None:
    """The last run before `before` that processed a delivery, published or not (a blocking
    anomaly stops the publish and must still clear), with the anomalies it raised."""
    ensure_history(con)
    found = con.execute(
        f"""
        select run_id from {RUNS}
        where processed_delivery and run_at < ?
        order by run_at desc
        limit 1
        """,
        [before],
    ).fetchone()
    if found is None:
        return None
    rows = con.execute(
        f"""
        select metric, subject, value, expected_low, expected_high, blocking, message
        from {ANOMALIES} where run_id = ? order by metric, subject
        """,
        [found[0]],
    ).fetchall()
    return found[0], tuple(RecordedAnomaly(*row) for row in rows)


def _metrics_of(
    con: duckdb.DuckDBPyConnection, ids: list[str]
) -> dict[str, dict[MetricKey, float]]:
    metrics: dict[str, dict[MetricKey, float]] = {run_id: {} for run_id in ids}
    for run_id, metric, subject, value in con.execute(
        f"select run_id, metric, subject, value from {METRICS} where list_contains(?, run_id)",
        [ids],
    ).fetchall():
        metrics[run_id][(metric, subject)] = value
    return metrics


def recent_runs(con: duckdb.DuckDBPyConnection, limit: int) -> list[dict]:
    """The last `limit` runs, newest first, each with its anomalies (read-only)."""
    (exists,) = con.execute(
        "select count(*) from information_schema.tables where table_schema = ? "
        "and table_name = 'runs'",
        [HISTORY_SCHEMA],
    ).fetchone()
    if not exists:
        return []
    columns = ["run_id", "run_at", "deployment", "outcome", "published", "stopped_at", "error"]
    runs = [
        dict(zip(columns, row, strict=True))
        for row in con.execute(
            f"select {', '.join(columns)} from {RUNS} order by run_at desc limit ?", [limit]
        ).fetchall()
    ]
    for run in runs:
        run["anomalies"] = [
            message
            for (message,) in con.execute(
                f"select message from {ANOMALIES} where run_id = ? order by metric, subject",
                [run["run_id"]],
            ).fetchall()
        ]
    return runs


@dataclass(frozen=True)
class RecentHistory:
    """The last runs, oldest first, with what each measured and each check's status."""

    runs: list[dict]  # run_id, run_at, outcome, published, processed_delivery
    metrics: dict[str, dict[MetricKey, float]]  # by run_id
    checks: dict[str, dict[tuple[str, str], str]]  # by run_id: (model, check name) -> status


def recent_history(con: duckdb.DuckDBPyConnection, limit: int) -> RecentHistory:
    ensure_history(con)
    columns = ["run_id", "run_at", "outcome", "published", "processed_delivery"]
    runs = [
        dict(zip(columns, row, strict=True))
        for row in con.execute(
            f"select {', '.join(columns)} from "
            f"(select * from {RUNS} order by run_at desc limit ?) order by run_at",
            [limit],
        ).fetchall()
    ]
    ids = [run["run_id"] for run in runs]
    metrics = _metrics_of(con, ids)
    checks: dict[str, dict[tuple[str, str], str]] = {run_id: {} for run_id in ids}
    for run_id, model, name, status in con.execute(
        f"select run_id, model, name, status from {CHECKS} where list_contains(?, run_id)",
        [ids],
    ).fetchall():
        checks[run_id][(model, name)] = status
    return RecentHistory(runs, metrics, checks)
