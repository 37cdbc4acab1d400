"""The quality report as Prefect artifacts: what the UI shows for each run.

Secrets never reach here: the report holds counts, check names and offending keys only.
"""

from __future__ import annotations

from pathlib import Path

from prefect import task
from prefect.artifacts import create_link_artifact, create_markdown_artifact, create_table_artifact

from flows.quality.dashboard import dashboard_link, dashboard_location

# Artifact keys may hold only lower-case letters, digits and dashes.
SUMMARY_KEY = "quality-report"
FAILURES_KEY = "quality-failures"
METRICS_KEY = "run-metrics"
ANOMALIES_KEY = "run-anomalies"
DASHBOARD_KEY = "dashboard"


def report_markdown(report: dict, published: bool, dashboard: Path | None = None) -> str:
    summary = report["summary"]
    lines = [
        f"# Quality report: {report['status']}",
        "",
        (
            f"Run `{report['run_id']}` at {report['timestamp']}: "
            f"{summary['passed']} of {summary['total_tests']} checks passed "
            f"({summary['pass_rate']}%), {summary['failed']} failed, {summary['warned']} warned. "
            f"Outputs {'published' if published else 'NOT published'}."
        ),
        "",
        "| table | reason | rows |",
        "|---|---|---|",
    ]
    for table, reasons in report["quarantine"].items():
        lines.extend(f"| {table} | {reason} | {count} |" for reason, count in reasons.items())
    stopped = report["metrics"].get("stopped_at")
    if stopped:
        lines += ["", f"Stopped at **{stopped['step']}**: {stopped['error']}"]
    lines += ["", f"Anomalies: {anomalies_summary(report)}"]
    scan = report["metrics"].get("anomalies", {})
    lines += [f"- {a['message']}" for a in scan.get("raised", [])]
    lines += [f"- resolved: {r['message']}" for r in scan.get("resolved", [])]
    if dashboard is not None:
        lines += ["", f"Dashboard: {dashboard_location(dashboard)}"]
    return "\n".join(lines)


def metrics_rows(report: dict) -> list[dict]:
    rows = [
        {"metric": f"duration_seconds.{step}", "value": seconds}
        for step, seconds in report["metrics"].get("duration_seconds", {}).items()
    ]
    for table, counts in report["metrics"].get("rows", {}).items():
        rows.extend({"metric": f"rows.{table}.{label}", "value": n} for label, n in counts.items())
    for column, counts in report["metrics"].get("key_columns", {}).items():
        rows.extend({"metric": f"{column}.{label}", "value": n} for label, n in counts.items())
    return rows


@task(name="report-artifacts")
def create_report_artifacts(report: dict, published: bool, dashboard: Path | None = None) -> None:
    create_markdown_artifact(
        key=SUMMARY_KEY,
        markdown=report_markdown(report, published, dashboard),
        description="Quality report summary",
    )
    if dashboard is not None:
        shown, url = dashboard_link(dashboard)
        create_link_artifact(
            key=DASHBOARD_KEY,
            link=url,
            link_text=shown,
            description="The run's dashboard: one HTML file that opens from disk, offline",
        )
    create_table_artifact(
        key=FAILURES_KEY,
        table=report["failures"]
        or [{"test": "", "model": "", "severity": "", "message": "no failures"}],
        description="Checks that failed or warned",
    )
    create_table_artifact(
        key=METRICS_KEY, table=metrics_rows(report), description="Per-step durations and row counts"
    )
    raised = report["metrics"].get("anomalies", {}).get("raised", [])
    create_table_artifact(
        key=ANOMALIES_KEY,
        table=[
            {
                "metric": a["metric"],
                "subject": a["subject"],
                "tonight": a["value"],
                "expected_low": a["expected_low"],
                "expected_high": a["expected_high"],
                "blocking": a["blocking"],
                "message": a["message"],
            }
            for a in raised
        ]
        or [{"metric": "", "subject": "", "message": anomalies_summary(report)}],
        description="What is unusual tonight against the run history",
    )


def anomalies_summary(report: dict) -> str:
    scan = report["metrics"].get("anomalies")
    if scan is None:
        return "not scanned (no delivery processed in this run)"
    if not scan["raised"]:
        return (
            f"nothing unusual: {scan['metrics_judged']} metrics judged against "
            f"{scan['training_runs']} earlier runs, {scan['metrics_waiting_for_history']} "
            "still building their history"
        )
    return f"{len(scan['raised'])} anomalies"
