"""The quality report as Prefect artifacts: what the UI shows for each run.

Secrets never reach here: the report holds counts, check names and offending keys only.
"""

from __future__ import annotations

from prefect import task
from prefect.artifacts import create_markdown_artifact, create_table_artifact

# Artifact keys may hold only lower-case letters, digits and dashes.
SUMMARY_KEY = "quality-report"
FAILURES_KEY = "quality-failures"
METRICS_KEY = "run-metrics"


def report_markdown(report: dict, published: bool) -> str:
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
def create_report_artifacts(report: dict, published: bool) -> None:
    create_markdown_artifact(
        key=SUMMARY_KEY,
        markdown=report_markdown(report, published),
        description="Quality report summary",
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
