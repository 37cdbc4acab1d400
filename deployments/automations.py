"""Failures to Slack: any run of the pipeline that ends Failed, Crashed or TimedOut; and
each anomaly event a run sends (flows/quality/anomaly_events.py), raised or resolved.

An automation, not deployment `triggers:` (those can only run deployments), so it also
covers runs started outside a deployment against the same server.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import timedelta
from typing import Any
from uuid import UUID

from prefect.automations import Automation
from prefect.events.actions import SendNotification
from prefect.events.schemas.automations import EventTrigger, Posture

from flows.config import ANOMALY_AUTOMATION, FAILURE_AUTOMATION, FLOW_NAME
from flows.quality.anomaly_events import RAISED_EVENT, RESOLVED_EVENT

FAILED_STATES = ("Failed", "Crashed", "TimedOut")

SUBJECT = (
    "Ledgerflow run failed: {{ flow.name }} / {{ flow_run.name }} is {{ flow_run.state.name }}"
)
# The flow's final state message names the step that stopped it ("stopped at staging: …").
BODY = """\
Flow: {{ flow.name }}
Deployment: {{ deployment.name if deployment else 'none (run outside a deployment)' }}
Run: {{ flow_run.name }} ({{ flow_run.state.name }})
{{ flow_run.state.message }}
Parameters: {{ flow_run.parameters }}
{{ flow_run|ui_url }}"""


def failure_automation(slack_block_id: str) -> Automation:
    return Automation(
        name=FAILURE_AUTOMATION,
        description=f"Posts to Slack when a run of {FLOW_NAME} fails, crashes or times out.",
        trigger=EventTrigger(
            match={"prefect.resource.id": "prefect.flow-run.*"},
            match_related={"prefect.resource.role": "flow", "prefect.resource.name": FLOW_NAME},
            expect={f"prefect.flow-run.{state}" for state in FAILED_STATES},
            posture=Posture.Reactive,
            threshold=1,
            within=timedelta(0),
        ),
        actions=[
            SendNotification(block_document_id=UUID(slack_block_id), subject=SUBJECT, body=BODY)
        ],
    )


ANOMALY_SUBJECT = "Ledgerflow {{ event.event }}: {{ event.resource['prefect.resource.name'] }}"
# The event's payload carries the message; the related flow run names the run it came from.
ANOMALY_BODY = """\
{{ event.payload.message }}
Metric: {{ event.resource['ledgerflow.metric'] }} of {{ event.resource['ledgerflow.subject'] }}
Run: {{ event.payload.run_id }}"""


def anomaly_automation(slack_block_id: str) -> Automation:
    """One Slack message per anomaly event: an operator mutes or routes a metric here, in
    the Prefect UI, without touching the run's own summary."""
    return Automation(
        name=ANOMALY_AUTOMATION,
        description=f"Posts to Slack each anomaly a run of {FLOW_NAME} raises or resolves.",
        trigger=EventTrigger(
            match={"prefect.resource.id": "ledgerflow.metric.*"},
            expect={RAISED_EVENT, RESOLVED_EVENT},
            posture=Posture.Reactive,
            threshold=1,
            within=timedelta(0),
        ),
        actions=[
            SendNotification(
                block_document_id=UUID(slack_block_id), subject=ANOMALY_SUBJECT, body=ANOMALY_BODY
            )
        ],
    )


def _spec(automation: Automation) -> dict:
    spec = automation.model_dump(
        mode="json", include={"name", "description", "trigger", "actions", "enabled"}
    )
    return _sorted_string_lists(spec)


def _sorted_string_lists(value: Any) -> Any:
    """The trigger's `expect` and `after` are sets, dumped as lists in whatever order the
    set iterates, which differs between two equal sets built differently: compare them
    sorted, or an unchanged automation reads as changed now and then."""
    if isinstance(value, dict):
        return {key: _sorted_string_lists(item) for key, item in value.items()}
    if isinstance(value, list):
        items = [_sorted_string_lists(item) for item in value]
        return sorted(items) if all(isinstance(item, str) for item in items) else items
    return value


async def ensure_failure_automation(slack_block_id: str | None) -> str:
    return await ensure_automation(FAILURE_AUTOMATION, failure_automation, slack_block_id)


async def ensure_anomaly_automation(slack_block_id: str | None) -> str:
    return await ensure_automation(ANOMALY_AUTOMATION, anomaly_automation, slack_block_id)


async def ensure_automation(
    name: str, build: Callable[[str], Automation], slack_block_id: str | None
) -> str:
    """Create the automation, or replace it if it differs from the one wanted."""
    if slack_block_id is None:
        return f"automation {name}: skipped, no Slack block to notify"
    wanted = build(slack_block_id)
    try:
        existing = await Automation.aread(name=name)
    except ValueError:
        existing = None
    if existing is not None and _spec(existing) == _spec(wanted):
        return f"automation {name}: unchanged"
    if existing is not None:
        await existing.adelete()
    await wanted.acreate()
    return f"automation {name}: {'updated' if existing else 'created'}"
