"""The quality summary reaches Slack through the real client; Slack being down is retried
with exponential backoff and then only a warning, all within one deadline: the run's
outcome never depends on it."""

from __future__ import annotations

import time

import pytest
from prefect import flow
from slack_receiver import SlackReceiver

from flows.config import SLACK_RETRIES
from flows.external import slack
from flows.runtime.deadline import Deadline

REPORT = {
    "timestamp": "2026-11-24T02:00:00Z",
    "run_id": "r-1",
    "status": "failed",
    "summary": {"total_tests": 12, "passed": 5, "failed": 7, "warned": 0, "pass_rate": 41.7},
    "failures": [
        {"test": f"check_{n}", "model": "account_summary", "severity": "error", "message": f"m{n}"}
        for n in range(7)
    ],
    "quarantine": {"customers": {"missing_customer_name": 3}, "accounts": {}},
    "metrics": {"rows": {}, "stopped_at": {"step": "audit", "error": "blocking checks failed"}},
}


@flow
def _notify(published: bool) -> str:
    slack.notify_quality_summary(REPORT, published, "brave-otter", "http://ui/runs/flow-run/1")
    return "done"


def test_summary_names_status_failures_quarantine_and_publication():
    text = slack.quality_summary(REPORT, False, "brave-otter", "http://ui/runs/flow-run/1")
    assert (
        text.splitlines()[0]
        == "*account-summary-pipeline* run `brave-otter`: *failed*, outputs NOT published"
    )
    assert "Checks: 5/12 passed (41.7%), 7 failed, 0 warned" in text
    assert "Stopped at *audit*: blocking checks failed" in text
    assert "• error check_4 on account_summary: m4" in text
    assert "check_5" not in text and "• … and 2 more" in text
    assert "Quarantined customers: 3 (missing_customer_name 3)" in text
    assert "Quarantined accounts: 0 (none)" in text
    assert text.endswith("http://ui/runs/flow-run/1")
    assert "Dashboard" not in text  # none was written


def test_summary_lists_anomalies_raised_and_resolved():
    anomalies = {
        "raised": [{"blocking": False, "message": "step_seconds of staging is 60.0 s tonight"}],
        "resolved": [{"message": "nulls of raw.customers.customerid is back to 3 tonight"}],
    }
    report = {**REPORT, "metrics": {**REPORT["metrics"], "anomalies": anomalies}}
    lines = slack.quality_summary(report, False, "brave-otter", None).splitlines()
    assert "• warning step_seconds of staging is 60.0 s tonight" in lines
    assert "• resolved: nulls of raw.customers.customerid is back to 3 tonight" in lines


def test_summary_says_where_the_dashboard_is(tmp_path):
    dashboard = tmp_path / "output" / "failed" / "dashboard.html"
    text = slack.quality_summary(REPORT, False, "brave-otter", None, dashboard)
    assert f"Dashboard: {dashboard} ({dashboard.as_uri()})" in text.splitlines()


def test_slack_down_is_retried_with_backoff_then_delivered(prefect_harness, monkeypatch):
    with SlackReceiver(fail_first=2) as receiver:
        monkeypatch.setenv("SLACK_WEBHOOK_URL", receiver.url)
        assert _notify(True) == "done"
    assert len(receiver.attempts) == 3
    gaps = [later - earlier for earlier, later in zip(receiver.attempts, receiver.attempts[1:])]
    # Exponential: 1 s, then 2 s, each jittered by up to ±20%.
    assert gaps[0] >= 0.8 and gaps[1] >= 1.6 and gaps[1] > gaps[0]
    assert receiver.texts()[0].startswith("*account-summary-pipeline* run `brave-otter`")


def test_slack_that_stays_down_is_a_warning_not_a_failure(prefect_harness, monkeypatch, caplog):
    with SlackReceiver(fail_first=99) as receiver:
        monkeypatch.setenv("SLACK_WEBHOOK_URL", receiver.url)
        state = _notify(True, return_state=True)
    assert state.is_completed()
    assert len(receiver.attempts) == SLACK_RETRIES + 1
    warnings = [r.getMessage() for r in caplog.records if r.levelname == "WARNING"]
    assert any("Slack summary not posted after 4 attempts" in w for w in warnings)
    assert not any(receiver.url in r.getMessage() for r in caplog.records)


def test_an_unreachable_slack_fails_the_post_without_naming_the_url():
    with SlackReceiver() as receiver:
        url = receiver.url  # the port closes when the receiver stops
    with pytest.raises(slack.SlackPostFailed) as raised:
        slack.post_to_slack.fn(slack.SecretStr(url), "hello", Deadline.starting_now(5, "TEST"))
    assert url not in str(raised.value) and "did not answer" in str(raised.value)


def test_no_webhook_configured_posts_nothing(prefect_harness, monkeypatch, caplog):
    monkeypatch.delenv("SLACK_WEBHOOK_URL", raising=False)
    assert _notify(False) == "done"
    assert any("Slack not configured" in r.getMessage() for r in caplog.records)


# A bound on a hang, not a performance figure: the deadline plus Prefect's own round trips.
MARGIN = 3.0


def _warnings(caplog) -> list[str]:
    return [r.getMessage() for r in caplog.records if r.levelname == "WARNING"]


def test_a_slack_that_never_answers_costs_its_deadline(prefect_harness, monkeypatch, caplog):
    """The first attempt waits only the 2 s left, not its own 10 s, and none follows it."""
    with SlackReceiver(black_hole=True) as receiver:
        monkeypatch.setenv("SLACK_WEBHOOK_URL", receiver.url)
        monkeypatch.setenv("LEDGERFLOW_SLACK_DEADLINE_SECONDS", "2")
        started = time.monotonic()
        state = _notify(True, return_state=True)
        elapsed = time.monotonic() - started
    assert state.is_completed()
    assert elapsed < 2 + MARGIN
    assert len(receiver.attempts) == 1
    assert (
        "Slack summary not posted after 1 attempt: not posted within the Slack deadline of 2 s "
        "(LEDGERFLOW_SLACK_DEADLINE_SECONDS); last error: Slack did not answer: TimeoutError"
    ) in _warnings(caplog)
    assert not any(receiver.url in r.getMessage() for r in caplog.records)


def test_no_slack_retry_is_scheduled_past_its_deadline(prefect_harness, monkeypatch, caplog):
    """503s every time, retried after 1 s and then 2 s (±20%) within 2.5 s: the second
    retry would start after the deadline, so the post stops after two attempts."""
    with SlackReceiver(fail_first=99) as receiver:
        monkeypatch.setenv("SLACK_WEBHOOK_URL", receiver.url)
        monkeypatch.setenv("LEDGERFLOW_SLACK_DEADLINE_SECONDS", "2.5")
        state = _notify(True, return_state=True)
    assert state.is_completed()
    assert len(receiver.attempts) == 2
    assert any(
        w.startswith("Slack summary not posted after 2 attempts: not posted within the Slack "
                     "deadline of 2.5 s (LEDGERFLOW_SLACK_DEADLINE_SECONDS); last error: Slack "
                     "answered HTTP 503")
        for w in _warnings(caplog)
    )  # fmt: skip


def test_a_malformed_slack_deadline_is_a_warning(prefect_harness, monkeypatch, caplog):
    with SlackReceiver() as receiver:
        monkeypatch.setenv("SLACK_WEBHOOK_URL", receiver.url)
        monkeypatch.setenv("LEDGERFLOW_SLACK_DEADLINE_SECONDS", "soon")
        assert _notify(True) == "done"
    assert len(receiver.messages) == 1
    assert (
        "LEDGERFLOW_SLACK_DEADLINE_SECONDS='soon' is not a positive number of seconds; using 30 s"
        in _warnings(caplog)
    )
