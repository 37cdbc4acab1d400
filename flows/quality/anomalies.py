"""What is unusual tonight: each metric of this run against its trailing history.

For every metric the run measured (flows/quality/history.py names them), the training
window is the last published runs that processed a delivery; the expected band is the
median plus or minus `sensitivity` robust spreads (1.4826 x the median absolute deviation,
floored; flows/config.py, AnomalyRule, says why and holds every number). A value outside
the band, on a side its rule watches, is an anomaly; a metric with fewer than
`min_history` earlier values is not judged yet. Columns added, removed or renamed against
the last delivery are a schema change, judged without statistics.

An anomaly the previous run that processed a delivery raised, judged again tonight and
back in its band, is resolved: reported once, by the first run after it (the run after
that compares with a run that raised nothing). A schema change is never resolved: the new
columns are the new normal, and the next delivery with them raises nothing.

An anomaly is a check of kind `anomaly`: a warning, or blocking where its rule says so,
which stops the run before the publish like any blocking check.
"""

from __future__ import annotations

import statistics
from dataclasses import asdict, dataclass, field
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING

import duckdb

from flows.config import AnomalyRule, anomaly_rules
from flows.quality.checks import CheckResult
from flows.quality.history import (
    MetricKey,
    RecordedAnomaly,
    TrainingRun,
    measured_metrics,
    previous_processed_run,
    training_runs,
)
from flows.runtime.text import plain_text
from flows.runtime.warehouse import connect

if TYPE_CHECKING:
    from flows.quality.report import QualityAudit

# The consistency constant that makes the MAD a standard deviation for normal noise.
MAD_TO_SIGMA = 1.4826
# Counts and rates of things that may not happen at all: a run that measured the metric
# for other subjects but not this one saw zero of it.
ZERO_WHEN_ABSENT = frozenset({"quarantine_rate", "nulls", "duplicates", "change_set"})
SCHEMA_CHANGE = "schema_change"
ANOMALY_CHECK_PREFIX = "anomaly_"


def failures_besides_anomalies(report: dict) -> list[dict]:
    """The report's failures and warnings but the anomalies, which are shown on their own
    with their expected range."""
    return [f for f in report["failures"] if not f["test"].startswith(ANOMALY_CHECK_PREFIX)]


GAP_METRIC = "hours_since_previous_delivery"


@dataclass(frozen=True)
class Anomaly:
    metric: str
    subject: str
    value: float
    expected_low: float | None
    expected_high: float | None
    median: float | None
    history: int  # earlier values it was judged against
    blocking: bool
    message: str  # may name a delivered column: made plain text for every reader

    def __post_init__(self):
        object.__setattr__(self, "message", plain_text(self.message))

    def as_check(self) -> CheckResult:
        return CheckResult(
            name=f"{ANOMALY_CHECK_PREFIX}{self.metric}_{self.subject}",
            model=self.subject,
            kind="anomaly",
            status="fail" if self.blocking else "warn",
            severity="error" if self.blocking else "warn",
            message=self.message,
        )

    def recorded(self) -> RecordedAnomaly:
        return RecordedAnomaly(
            self.metric,
            self.subject,
            self.value,
            self.expected_low,
            self.expected_high,
            self.blocking,
            self.message,
        )


@dataclass(frozen=True)
class ResolvedAnomaly:
    """An anomaly of the previous processed run, back in its band tonight."""

    metric: str
    subject: str
    value: float  # tonight's
    expected_low: float | None  # tonight's band
    expected_high: float | None
    raised_in_run: str
    message: str

    def __post_init__(self):
        object.__setattr__(self, "message", plain_text(self.message))


@dataclass(frozen=True)
class AnomalyScan:
    training_runs: int
    judged: int  # metrics with enough history to judge
    waiting: int  # metrics still building their history
    anomalies: tuple[Anomaly, ...]
    hours_since_previous_delivery: float | None = None
    # Every judged metric's expected band: (low, high), None on a side its rule ignores.
    bands: dict[MetricKey, tuple[float | None, float | None]] = field(default_factory=dict)
    resolved: tuple[ResolvedAnomaly, ...] = ()

    def measured(self) -> dict[MetricKey, float]:
        """What the scan measured itself, to be recorded with the run's other metrics."""
        if self.hours_since_previous_delivery is None:
            return {}
        return {(GAP_METRIC, "delivery"): self.hours_since_previous_delivery}

    def section(self) -> dict:
        """The quality report's `anomalies` section."""
        return {
            "training_runs": self.training_runs,
            "metrics_judged": self.judged,
            "metrics_waiting_for_history": self.waiting,
            # Each entry is its dataclass's fields, in their order.
            "raised": [asdict(a) for a in self.anomalies],
            "resolved": [asdict(r) for r in self.resolved],
        }


def scan_for_anomalies(
    con: duckdb.DuckDBPyConnection,
    run_at: datetime,
    metrics: dict[MetricKey, float],
    delivered_columns: dict[str, tuple[str, ...]],
) -> AnomalyScan:
    """Judge tonight's metrics, and the time since the previous delivery, against the
    history before `run_at`."""
    rules, schema_blocking = anomaly_rules()
    window = max(rule.window for rule in rules.values())
    history = training_runs(con, run_at, window)
    gap = None
    if history:
        gap = round((run_at - history[0].run_at).total_seconds() / 3600, 3)
        metrics = {**metrics, (GAP_METRIC, "delivery"): gap}
    anomalies: list[Anomaly] = []
    bands: dict[MetricKey, tuple[float | None, float | None]] = {}
    waiting = 0
    for (metric, subject), value in sorted(metrics.items()):
        rule = rules.get(metric)
        if rule is None:
            continue
        earlier = _series(history[: rule.window], metric, subject)
        if len(earlier) < rule.min_history:
            waiting += 1
            continue
        low, high, median = _band(earlier, rule)
        bands[(metric, subject)] = (low, high)
        anomaly = _judge(metric, subject, value, earlier, rule, (low, high, median))
        if anomaly is not None:
            anomalies.append(anomaly)
    resolved = _resolved(con, run_at, metrics, bands, anomalies)
    anomalies.extend(_schema_changes(history, delivered_columns, schema_blocking))
    return AnomalyScan(
        len(history), len(bands), waiting, tuple(anomalies), gap, bands, tuple(resolved)
    )


def _resolved(
    con: duckdb.DuckDBPyConnection,
    run_at: datetime,
    metrics: dict[MetricKey, float],
    bands: dict[MetricKey, tuple[float | None, float | None]],
    raised_tonight: list[Anomaly],
) -> list[ResolvedAnomaly]:
    """The previous processed run's anomalies that tonight judged and did not raise."""
    previous = previous_processed_run(con, run_at)
    if previous is None:
        return []
    run_id, earlier = previous
    still_raised = {(a.metric, a.subject) for a in raised_tonight}
    resolved = []
    for anomaly in earlier:
        key = (anomaly.metric, anomaly.subject)
        if key not in bands or key in still_raised:  # not judged tonight, or still out
            continue
        low, high = bands[key]
        value = metrics[key]
        resolved.append(
            ResolvedAnomaly(
                anomaly.metric,
                anomaly.subject,
                value,
                low,
                high,
                run_id,
                f"{anomaly.metric} of {anomaly.subject} is back to "
                f"{shown_value(anomaly.metric, value)} tonight, in the expected range of "
                f"{expected_range(anomaly.metric, low, high)}, after an anomaly in run {run_id}",
            )
        )
    return resolved


def scan_run(warehouse: Path, audit: QualityAudit) -> AnomalyScan:
    """The scan of a run at its audit step (steps still running are not measured yet)."""
    with connect(warehouse) as con:
        return scan_for_anomalies(
            con, audit.run_at, measured_metrics(audit), audit.delivered_columns
        )


def _series(history: list[TrainingRun], metric: str, subject: str) -> list[float]:
    values = []
    for run in history:
        if (metric, subject) in run.metrics:
            values.append(run.metrics[(metric, subject)])
        elif metric in ZERO_WHEN_ABSENT and any(m == metric for m, _ in run.metrics):
            values.append(0.0)
    return values


def _band(earlier: list[float], rule: AnomalyRule) -> tuple[float | None, float | None, float]:
    """(low, high, median): None for a side the rule does not watch."""
    median = statistics.median(earlier)
    mad = statistics.median(abs(v - median) for v in earlier)
    spread = max(MAD_TO_SIGMA * mad, rule.min_relative * abs(median), rule.min_absolute)
    low = max(median - rule.sensitivity * spread, 0.0)  # every metric is a count, rate or time
    high = median + rule.sensitivity * spread
    return (
        low if rule.direction != "up" else None,
        high if rule.direction != "down" else None,
        median,
    )


def _judge(
    metric: str,
    subject: str,
    value: float,
    earlier: list[float],
    rule: AnomalyRule,
    band: tuple[float | None, float | None, float],
) -> Anomaly | None:
    low, high, median = band
    too_high = high is not None and value > high
    too_low = low is not None and value < low
    if not (too_high or too_low):
        return None
    message = (
        f"{metric} of {subject} is {shown_value(metric, value)} tonight "
        f"({'above' if too_high else 'below'} the expected range: "
        f"{expected_range(metric, low, high)}; median "
        f"{shown_value(metric, median)} over the last {len(earlier)} runs)"
    )
    return Anomaly(
        metric,
        subject,
        value,
        low,
        high,
        median,
        len(earlier),
        rule.blocking,
        message,
    )


def expected_range(metric: str, low: float | None, high: float | None) -> str:
    """A band as people read it; a side the rule does not watch is left open."""
    if low is None:
        return f"at most {shown_value(metric, high)}"
    if high is None:
        return f"at least {shown_value(metric, low)}"
    return f"{shown_value(metric, low)} to {shown_value(metric, high)}"


def shown_value(metric: str, value: float) -> str:
    """A metric's value as people read it: a rate in percent, seconds, hours or a count."""
    if metric == "quarantine_rate":
        return f"{value:.2%}"
    if metric == "step_seconds":
        return f"{value:.1f} s"
    if metric == GAP_METRIC:
        return f"{value:.1f} h"
    return f"{value:,.0f}"


def _schema_changes(
    history: list[TrainingRun], delivered: dict[str, tuple[str, ...]], blocking: bool
) -> list[Anomaly]:
    """Per file, the columns added, removed or renamed against the last processed delivery
    of that file. A removed and an added column in the same position is a rename."""
    anomalies = []
    for file, columns in sorted(delivered.items()):
        before = next(
            (run.delivered_columns[file] for run in history if file in run.delivered_columns), None
        )
        if before is None or before == columns:
            continue
        removed = [c for c in before if c not in columns]
        added = [c for c in columns if c not in before]
        renamed = []
        for old in list(removed):
            position = before.index(old)
            if position < len(columns) and columns[position] in added:
                renamed.append((old, columns[position]))
                removed.remove(old)
                added.remove(columns[position])
        changes = (
            [f"{name} added" for name in added]
            + [f"{name} removed" for name in removed]
            + [f"{old} renamed to {new}" for old, new in renamed]
        )
        if not changes:  # the same columns in another order: the reader takes them by name
            continue
        anomalies.append(
            Anomaly(
                SCHEMA_CHANGE,
                file,
                float(len(changes)),
                None,
                0.0,
                None,
                1,
                blocking,
                f"{SCHEMA_CHANGE} of {file}: {', '.join(changes)} since the last delivery",
            )
        )
    return anomalies
