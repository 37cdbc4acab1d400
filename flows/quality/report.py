"""The quality report: every check counted once, quarantine counts, metrics.

The report's shape is the data contract's. `QualityAudit` collects what the steps of a
run found; `report()` turns it into that shape at any point, so a failed run still
gets a report naming what stopped it.
"""

from __future__ import annotations

import time
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from datetime import datetime
from pathlib import Path
from typing import Protocol

from flows.config import QUARANTINE_BLOCK_RATE, QUARANTINE_WARN_RATE
from flows.contract import DELIVERY_FILES, MART_SOURCES
from flows.errors import BlockingChecksFailed
from flows.quality.anomalies import AnomalyScan
from flows.quality.checks import CheckResult
from flows.quality.dashboard import dashboard_location
from flows.runtime.failpoints import failpoint_action
from flows.runtime.text import plain_text


class ExportOutcome(Protocol):
    table: str
    target: str | None
    status: str
    rows: int | None
    message: str


class IngestedDelivery(Protocol):
    table: str
    file_name: str
    rows: int
    columns: tuple[str, ...]
    extra_columns: tuple[str, ...]
    new_records: int
    removed_records: int


class LayerOutcome(Protocol):
    checks: tuple[CheckResult, ...]
    node_seconds: dict[str, float]


class QualityAudit:
    def __init__(self, run_id: str, run_at: datetime):
        self.run_id = run_id
        self.run_at = run_at
        self.checks: list[CheckResult] = []
        self.quarantine: dict[str, dict[str, int]] = {}
        self.rows: dict[str, dict[str, int]] = {}
        self.durations: dict[str, float] = {}
        self.key_columns: dict[str, dict[str, int]] = {}
        self.stopped_at: str | None = None
        self.error: str | None = None
        self.exports: dict[str, dict] = {}
        # The run whose step results this one reuses (the same delivery, code and files).
        self.results_reused_from: str | None = None
        self.cached_steps: list[str] = []
        self.published = False  # the output folder holds this run's files
        # What the run history and the anomaly scan read (flows/quality/history.py).
        self.change_set: dict[str, int] = {}  # records added plus records gone, per file
        self.delivered_columns: dict[str, tuple[str, ...]] = {}
        self.delivery_sha256: str | None = None
        self.anomaly_scan: AnomalyScan | None = None
        # What the dashboard shows beyond the report: ids per quarantine reason, per table,
        # and seconds per dbt model or snapshot.
        self.quarantine_keys: dict[str, dict[str, list[str]]] = {}
        self.node_seconds: dict[str, float] = {}
        # The dashboard file, once written (never before: only a file that exists is named).
        self.dashboard: Path | None = None

    def add_checks(self, checks: list[CheckResult] | tuple[CheckResult, ...]) -> None:
        self.checks.extend(checks)

    @contextmanager
    def step(self, name: str) -> Iterator[None]:
        """Time a step; if it raises, remember it as the step the run stopped at."""
        started = time.perf_counter()
        try:
            yield
            if failpoint_action(name) == "block":
                self.add_checks([_failpoint_check(name)])
                raise BlockingChecksFailed(name, _failpoint_check(name).name)
        except Exception as error:
            self.record_failure(name, str(error))
            # A failed dbt layer still reports the checks it ran, failing ones included.
            self.add_checks(getattr(getattr(error, "result", None), "checks", ()))
            raise
        finally:
            self.durations[name] = round(time.perf_counter() - started, 3)

    def record_quarantine(self, table: str, rows_in: int, by_reason: dict[str, int]) -> None:
        """Quarantine counts, and the rate check: quarantined rows are not failures,
        but a high share of a table is a warning and a very high one blocks."""
        self.quarantine[table] = dict(sorted(by_reason.items()))
        quarantined = sum(by_reason.values())
        rate = quarantined / rows_in if rows_in else 0.0
        if rate > QUARANTINE_BLOCK_RATE:
            status, severity = "fail", "error"
        elif rate > QUARANTINE_WARN_RATE:
            status, severity = "warn", "warn"
        else:
            status, severity = "pass", "warn"
        self.add_checks(
            [
                CheckResult(
                    name=f"quarantine_rate_{table}",
                    model=f"stg_{table}",
                    kind="quarantine_rate",
                    status=status,
                    severity=severity,
                    message=(
                        ""
                        if status == "pass"
                        else f"{quarantined} of {rows_in} {table} rows quarantined "
                        f"({rate:.1%}; warn above {QUARANTINE_WARN_RATE:.0%}, "
                        f"block above {QUARANTINE_BLOCK_RATE:.0%})"
                    ),
                )
            ]
        )

    def reuse_results_of(self, run_id: str) -> None:
        """This run's delivery is one the warehouse already holds: its steps' results are
        those of `run_id` (flows/steps/step_cache.py)."""
        self.results_reused_from = run_id

    @property
    def processed_delivery(self) -> bool:
        """Whether this run measured a delivery of its own (not one it reuses results of)."""
        return bool(self.delivered_columns) and self.results_reused_from is None

    def record_ingested(self, file: IngestedDelivery) -> None:
        self.record_rows(file.table, delivered=file.rows)
        self.change_set[file.table] = file.new_records + file.removed_records
        self.delivered_columns[file.file_name] = file.columns
        if file.extra_columns:
            self.add_checks([_extra_columns_check(file)])

    def record_layer(self, layer: LayerOutcome) -> None:
        self.add_checks(layer.checks)
        self.node_seconds.update(
            (node, round(seconds, 3))
            for node, seconds in layer.node_seconds.items()
            if node.split(".")[0] in ("model", "snapshot")
        )

    def record_anomaly_scan(self, scan: AnomalyScan) -> None:
        """Tonight against the history; each anomaly is a check (a warning unless its rule
        blocks)."""
        self.anomaly_scan = scan
        self.add_checks([anomaly.as_check() for anomaly in scan.anomalies])

    def record_failure(self, step: str, message: str) -> None:
        """The error the run ended with, at the step it stopped at. Any exception may end
        a run, not only the pipeline's own (whose messages are plain already): its message
        is made plain text here for every reader of the report."""
        self.stopped_at = step
        self.error = plain_text(message, multiline=True)

    def record_exports(self, outcomes: Iterable[ExportOutcome]) -> None:
        """How each export beyond the output folder ended."""
        self.exports = {
            outcome.table: {
                "status": outcome.status,
                "target": outcome.target,
                "rows": outcome.rows,
                "message": outcome.message,
            }
            for outcome in outcomes
        }

    def record_rows(self, table: str, **counts: int) -> None:
        self.rows.setdefault(table, {}).update(counts)

    @property
    def blocking_failures(self) -> list[CheckResult]:
        return [check for check in self.checks if check.blocking]

    def status(self) -> str:
        if self.error is not None or any(c.status == "fail" for c in self.checks):
            return "failed"
        if any(c.status == "warn" for c in self.checks):
            return "warned"
        return "passed"

    def report(self) -> dict:
        passed = sum(1 for c in self.checks if c.status == "pass")
        failed = sum(1 for c in self.checks if c.status == "fail")
        warned = sum(1 for c in self.checks if c.status == "warn")
        total = len(self.checks)
        metrics: dict = {
            "rows": self.rows,
            "duration_seconds": self.durations,
            "key_columns": self.key_columns,
            # What each check read: tonight's change set, a whole table, or its fixtures.
            "checks": [
                {"test": c.name, "model": c.model, "status": c.status, "scope": c.scope}
                for c in self.checks
            ],
        }
        if self.stopped_at is not None:
            metrics["stopped_at"] = {
                "step": self.stopped_at,
                "error": self.error,
                "outputs_published": self.published,
            }
        if self.exports:
            metrics["exports"] = self.exports
        if self.results_reused_from is not None or self.cached_steps:
            # Steps whose results came from Prefect's cache (flows/steps/step_cache.py).
            metrics["cached"] = {
                "same_delivery_as_run": self.results_reused_from,
                "steps": list(self.cached_steps),
            }
        if self.anomaly_scan is not None:
            metrics["anomalies"] = self.anomaly_scan.section()
        return {
            "timestamp": self.run_at.strftime("%Y-%m-%dT%H:%M:%SZ"),
            "run_id": self.run_id,
            "status": self.status(),
            "summary": {
                "total_tests": total,
                "passed": passed,
                "failed": failed,
                "warned": warned,
                "pass_rate": round(100.0 * passed / total, 1) if total else 0.0,
            },
            "failures": [
                {
                    "test": c.name,
                    "model": c.model,
                    "severity": c.severity,
                    "message": c.message,
                    "scope": c.scope,
                }
                for c in self.checks
                if c.status != "pass"
            ],
            "quarantine": self.quarantine,
            "metrics": metrics,
        }


def _extra_columns_check(file: IngestedDelivery) -> CheckResult:
    """The contract's warning for columns beyond its own: kept, never an error."""
    extras = file.extra_columns
    listed = ", ".join(repr(name) for name in extras[:10])
    more = f" and {len(extras) - 10} more" if len(extras) > 10 else ""
    return CheckResult(
        name=f"no_extra_columns_{file.table}",
        model=f"raw.{file.table}",
        kind="delivery",
        status="warn",
        severity="warn",
        message=(
            f"{file.file_name} has {len(extras)} column(s) beyond the contract's, kept in "
            f"raw.{file.table}._extra_columns: {listed}{more}"
        ),
        failures=len(extras),
    )


def _failpoint_check(step: str) -> CheckResult:
    return CheckResult(
        name=f"failpoint_{step}",
        model=step,
        kind="failpoint",
        status="fail",
        severity="error",
        message=f"a blocking check failed on purpose at {step} (LEDGERFLOW_FAILPOINTS)",
    )


def published_rows(report: dict) -> dict[str, int]:
    """Rows of each published mart, from the report's metrics (0 if not counted)."""
    rows = report["metrics"].get("rows", {})
    return {mart: rows.get(table, {}).get(mart, 0) for mart, table in MART_SOURCES.items()}


def console_summary(
    report: dict, output_dir: Path, published: list[Path], dashboard: Path | None = None
) -> str:
    """The few lines `ledgerflow run` prints at the end of a published run."""
    rows = report["metrics"]["rows"]
    summary = report["summary"]
    lines = [
        (
            f"Run {report['run_id']}: {report['status']} "
            f"({summary['passed']}/{summary['total_tests']} checks passed)"
        )
    ]
    for table in DELIVERY_FILES:
        delivered = rows.get(table, {}).get("delivered", "-")
        quarantined = report["quarantine"].get(table, {})
        lines.append(
            f"  {table}: {delivered} rows in, {sum(quarantined.values())} quarantined "
            f"{quarantined or ''}"
        )
    for mart, count in published_rows(report).items():
        lines.append(f"  {mart}: {count} rows published")
    lines.append(f"  outputs in {output_dir}: {', '.join(p.name for p in published)}")
    if dashboard is not None:
        lines.append(f"  dashboard: {dashboard_location(dashboard)}")
    return "\n".join(lines)
