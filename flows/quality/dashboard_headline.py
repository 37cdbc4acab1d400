"""The dashboard's headline, what the morning check reads first: the outcome, rows in
and rows published, the share quarantined, the run's duration against the usual, and
how many anomalies were raised and how many came back to normal. The title links to the
run in Prefect's UI when the run knows its address.

Each figure is computed from the report (tonight) and the run history (the usual), never
from the warehouse's tables.
"""

from __future__ import annotations

from html import escape
from statistics import median

from flows.contract import DELIVERY_FILES, MART_SOURCES
from flows.quality.anomalies import shown_value
from flows.quality.history import MetricKey, RecentHistory

STEP_SECONDS = "step_seconds"


def run_seconds(metrics: dict[MetricKey, float]) -> float | None:
    """A run's duration: the sum of its steps' seconds (None: no step recorded)."""
    steps = [value for (metric, _), value in metrics.items() if metric == STEP_SECONDS]
    return sum(steps) if steps else None


def usual_seconds(history: RecentHistory, run_id: str) -> float | None:
    """The median duration of the runs before this one in the history."""
    earlier = [
        seconds
        for run in history.runs
        if run["run_id"] != run_id
        and (seconds := run_seconds(history.metrics[run["run_id"]])) is not None
    ]
    return median(earlier) if earlier else None


def rows_in(report: dict) -> int:
    rows = report["metrics"].get("rows", {})
    return sum(rows.get(table, {}).get("delivered", 0) for table in DELIVERY_FILES)


def rows_published(report: dict) -> int:
    rows = report["metrics"].get("rows", {})
    return sum(rows.get(table, {}).get(mart, 0) for mart, table in MART_SOURCES.items())


def quarantine_rate(report: dict) -> float | None:
    """Rows quarantined (any reason) per row delivered, both files together."""
    delivered = rows_in(report)
    quarantined = sum(sum(reasons.values()) for reasons in report["quarantine"].values())
    return quarantined / delivered if delivered else None


def headline(
    report: dict, published: bool, history: RecentHistory, run_url: str | None, docs: str | None
) -> str:
    title = f"Ledgerflow run {report['run_id']}: {report['status']}"
    shown_title = f"<a href='{escape(run_url)}'>{escape(title)}</a>" if run_url else escape(title)
    scan = report["metrics"].get("anomalies") or {}
    raised, resolved = scan.get("raised", []), scan.get("resolved", [])
    tonight = run_seconds(history.metrics.get(report["run_id"], {}))
    if tonight is None:
        tonight = sum(report["metrics"].get("duration_seconds", {}).values())
    usual = usual_seconds(history, report["run_id"])
    rate = quarantine_rate(report)
    figures = [
        ("outcome", "outcome", f"{report['status']}, {'' if published else 'NOT '}published"),
        ("rows-in", "rows in", f"{rows_in(report):,}"),
        ("rows-published", "rows published", f"{rows_published(report):,}"),
        (
            "quarantine-rate",
            "quarantined",
            "—" if rate is None else shown_value("quarantine_rate", rate),
        ),
        (
            "duration",
            "duration",
            shown_value(STEP_SECONDS, tonight)
            + (f" (usual {shown_value(STEP_SECONDS, usual)})" if usual is not None else ""),
        ),
        (
            "anomalies",
            "anomalies",
            f"{len(raised)}" + (f" ({len(resolved)} back to normal)" if resolved else ""),
        ),
    ]
    cells = "".join(
        f"<div class='figure {'alert' if key == 'anomalies' and raised else ''}' "
        f"data-figure='{key}'><dt>{escape(label)}</dt><dd>{escape(value)}</dd></div>"
        for key, label, value in figures
    )
    docs_link = (
        f" <a id='dbt-docs' href='{escape(docs)}'>dbt docs of this code</a>." if docs else ""
    )
    return (
        f"<header id='headline' class='{escape(report['status'])}'><h1>{shown_title}</h1>"
        f"<dl class='figures'>{cells}</dl>"
        f"<p class='lede'>Run at {escape(report['timestamp'])}; "
        f"{report['summary']['passed']} of {report['summary']['total_tests']} checks passed. "
        f"History: the last {len(history.runs)} runs of this warehouse.{docs_link}</p></header>"
    )
