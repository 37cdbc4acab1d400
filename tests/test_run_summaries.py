"""What a run prints and leaves as its markdown artifact name the dashboard it wrote, by
its absolute path and file:// URL (Slack's summary is tests/test_slack_summary.py)."""

from __future__ import annotations

from pathlib import Path

from flows.quality.artifacts import report_markdown
from flows.quality.report import console_summary

REPORT = {
    "timestamp": "2026-11-24T02:00:00Z",
    "run_id": "r-1",
    "status": "passed",
    "summary": {"total_tests": 2, "passed": 2, "failed": 0, "warned": 0, "pass_rate": 100.0},
    "failures": [],
    "quarantine": {"customers": {}, "accounts": {}},
    "metrics": {"rows": {"customers": {"delivered": 3}, "accounts": {"delivered": 4}}},
}


def test_the_console_summary_names_the_dashboard_by_path_and_url(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    lines = console_summary(REPORT, Path("output"), [], Path("output/dashboard.html"))
    absolute = tmp_path / "output" / "dashboard.html"
    assert lines.splitlines()[-1] == f"  dashboard: {absolute} ({absolute.as_uri()})"


def test_the_markdown_artifact_names_the_dashboard(tmp_path):
    dashboard = tmp_path / "dashboard.html"
    assert report_markdown(REPORT, True, dashboard).endswith(
        f"Dashboard: {dashboard} ({dashboard.as_uri()})"
    )


def test_no_dashboard_written_none_named():
    assert "dashboard" not in console_summary(REPORT, Path("output"), [])
    assert "Dashboard" not in report_markdown(REPORT, True)
