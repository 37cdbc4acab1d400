"""The run's quality summary, posted to Slack after every run.

Slack is a courtesy, not a step: when it is down the post is retried with exponential
backoff and then given up with a warning; the run's outcome never depends on it. The
whole post, every attempt and delay, has one deadline (LEDGERFLOW_SLACK_DEADLINE_SECONDS):
each attempt's timeout is cut to the time left, and no retry is made that would start
after it. The webhook URL is a secret: it is read here, handed to the Slack client and
never logged.
"""

from __future__ import annotations

import os
from pathlib import Path

from prefect import get_run_logger, task
from prefect.client.schemas.objects import TaskRun
from prefect.context import TaskRunContext
from prefect.states import State
from prefect.tasks import Task, exponential_backoff
from pydantic import SecretStr

from flows.config import (
    FLOW_NAME,
    SLACK_BACKOFF_SECONDS,
    SLACK_DEADLINE_DEFAULT_SECONDS,
    SLACK_DEADLINE_VAR,
    SLACK_RETRIES,
    SLACK_TIMEOUT_SECONDS,
    SLACK_WEBHOOK_BLOCK,
    SLACK_WEBHOOK_SECRET_BLOCK,
    SLACK_WEBHOOK_URL_ENV,
    seconds_setting,
)
from flows.quality.anomalies import failures_besides_anomalies
from flows.quality.checks import scope_counts, scope_note
from flows.quality.dashboard import dashboard_location
from flows.quality.report import published_rows
from flows.runtime.deadline import Deadline

MAX_FAILURES_SHOWN = 5


class SlackPostFailed(Exception):
    """Slack answered with an error, or did not answer; after `attempts` attempts."""

    def __init__(self, message: str, attempts: int = 1):
        super().__init__(message)
        self.attempts = attempts


class SlackDeadlinePassed(SlackPostFailed):
    """The post's deadline came first: no retry may start."""


def webhook_url() -> SecretStr | None:
    """The webhook URL: environment first (cheap), then the blocks `make deploy` saves."""
    if os.environ.get(SLACK_WEBHOOK_URL_ENV):
        return SecretStr(os.environ[SLACK_WEBHOOK_URL_ENV])
    from prefect.blocks.system import Secret
    from prefect_slack import SlackWebhook

    for block_type, name in (
        (SlackWebhook, SLACK_WEBHOOK_BLOCK),
        (Secret, SLACK_WEBHOOK_SECRET_BLOCK),
    ):
        try:
            block = block_type.load(name)
        except (ValueError, RuntimeError):  # not saved on this server
            continue
        value = block.url if isinstance(block, SlackWebhook) else block.get()
        return value if isinstance(value, SecretStr) else SecretStr(str(value))
    return None


def quality_summary(
    report: dict,
    published: bool,
    run_name: str,
    run_url: str | None,
    dashboard: Path | None = None,
) -> str:
    """The report in a few lines: status, pass rate, failures, quarantine, published or
    not, and where the run's dashboard is."""
    summary = report["summary"]
    outcome = "published" if published else "NOT published"
    lines = [
        f"*{FLOW_NAME}* run `{run_name}`: *{report['status']}*, outputs {outcome}",
        (
            f"Checks: {summary['passed']}/{summary['total_tests']} passed "
            f"({summary['pass_rate']}%), {summary['failed']} failed, {summary['warned']} warned"
            + scope_counts(report)
        ),
    ]
    stopped = report["metrics"].get("stopped_at")
    if stopped:
        lines.append(f"Stopped at *{stopped['step']}*: {stopped['error']}")
    failures = failures_besides_anomalies(report)
    for failure in failures[:MAX_FAILURES_SHOWN]:
        lines.append(
            f"• {failure['severity']} {failure['test']} on {failure['model']}"
            f"{scope_note(failure)}: {failure['message']}"
        )
    if len(failures) > MAX_FAILURES_SHOWN:
        lines.append(f"• … and {len(failures) - MAX_FAILURES_SHOWN} more")
    raised = report["metrics"].get("anomalies", {}).get("raised", [])
    if raised:
        lines.append(f"Unusual tonight ({len(raised)}):")
    for anomaly in raised:
        kind = "blocking" if anomaly["blocking"] else "warning"
        lines.append(f"• {kind} {anomaly['message']}" + (f" <{run_url}|run>" if run_url else ""))
    for resolved in report["metrics"].get("anomalies", {}).get("resolved", []):
        lines.append(f"• resolved: {resolved['message']}")
    for table, reasons in report["quarantine"].items():
        detail = ", ".join(f"{reason} {count}" for reason, count in reasons.items())
        lines.append(f"Quarantined {table}: {sum(reasons.values())} ({detail or 'none'})")
    if published:
        counts = ", ".join(f"{mart} {n} rows" for mart, n in published_rows(report).items())
        lines.append(f"Published: {counts}")
    for table, export in report["metrics"].get("exports", {}).items():
        lines.append(f"Databricks {table}: {export['status']} {export['message']}".rstrip())
    if dashboard is not None:
        lines.append(f"Dashboard: {dashboard_location(dashboard)}")
    if run_url:
        lines.append(run_url)
    return "\n".join(lines)


def slack_deadline() -> Deadline:
    """The post's deadline, from now; a malformed setting is a warning, not a failed run."""
    try:
        seconds = seconds_setting(os.environ, SLACK_DEADLINE_VAR, SLACK_DEADLINE_DEFAULT_SECONDS)
    except ValueError as error:
        get_run_logger().warning("%s; using %g s", error, SLACK_DEADLINE_DEFAULT_SECONDS)
        seconds = SLACK_DEADLINE_DEFAULT_SECONDS
    return Deadline.starting_now(seconds, SLACK_DEADLINE_VAR)


def retry_before_deadline(task: Task, task_run: TaskRun, state: State) -> bool:
    """Prefect's retry_condition_fn: any failure is retried, unless the deadline ended it."""
    return not isinstance(state.result(raise_on_failure=False), SlackDeadlinePassed)


@task(
    name="post-slack-summary",
    retries=SLACK_RETRIES,
    retry_delay_seconds=exponential_backoff(backoff_factor=SLACK_BACKOFF_SECONDS),
    retry_jitter_factor=0.2,
    retry_condition_fn=retry_before_deadline,
)
def post_to_slack(url: SecretStr, text: str, deadline: Deadline) -> None:
    context = TaskRunContext.get()
    attempt = context.task_run.run_count if context else 1
    try:
        _send(url, text, deadline)
    except SlackPostFailed as error:
        if deadline.ends_retries():
            raise SlackDeadlinePassed(
                f"not posted within the Slack deadline of {deadline}; last error: {error}",
                attempt,
            ) from None
        raise SlackPostFailed(str(error), attempt) from None


def _send(url: SecretStr, text: str, deadline: Deadline) -> None:
    from slack_sdk.webhook import WebhookClient

    if deadline.passed():
        raise SlackPostFailed("not sent, no time left")
    # No retries inside the client: Prefect's are the only ones, so each attempt is one
    # request within the deadline (the client's own retry would double a refused attempt,
    # and it logs the webhook URL at INFO when it retries).
    client = WebhookClient(
        url=url.get_secret_value(),
        timeout=deadline.bound(SLACK_TIMEOUT_SECONDS),
        retry_handlers=[],
    )
    try:
        response = client.send(text=text)
    except OSError as error:  # refused, reset, timed out: the URL is not in these messages
        raise SlackPostFailed(f"Slack did not answer: {type(error).__name__}") from None
    if response.status_code >= 300:
        raise SlackPostFailed(f"Slack answered HTTP {response.status_code}: {response.body[:200]}")


def notify_quality_summary(
    report: dict,
    published: bool,
    run_name: str,
    run_url: str | None,
    dashboard: Path | None = None,
) -> None:
    """Post the summary if Slack is configured; a post that keeps failing is only a warning."""
    logger = get_run_logger()
    url = webhook_url()
    if url is None:
        logger.info(
            "Slack not configured (%s or block %r): no summary posted",
            SLACK_WEBHOOK_URL_ENV,
            SLACK_WEBHOOK_BLOCK,
        )
        return
    text = quality_summary(report, published, run_name, run_url, dashboard)
    state = post_to_slack(url, text, slack_deadline(), return_state=True)
    if state.is_failed():
        error = state.result(raise_on_failure=False)
        attempts = error.attempts if isinstance(error, SlackPostFailed) else SLACK_RETRIES + 1
        plural = "" if attempts == 1 else "s"
        logger.warning("Slack summary not posted after %d attempt%s: %s", attempts, plural, error)
