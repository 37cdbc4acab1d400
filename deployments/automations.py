"""Failures to Slack: any run of the pipeline that ends Failed, Crashed or TimedOut.

An automation, not deployment `triggers:` (those can only run deployments), so it also
covers runs started outside a deployment against the same server.
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any
from uuid import UUID

from prefect.automations import Automation
from prefect.events.actions import SendNotification
from prefect.events.schemas.automations import EventTrigger, Posture

from flows.config import FAILURE_AUTOMATION, FLOW_NAME

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
    if slack_block_id is None:
        return f"automation {FAILURE_AUTOMATION}: skipped, no Slack block to notify"
    wanted = failure_automation(slack_block_id)
    try:
        existing = await Automation.aread(name=FAILURE_AUTOMATION)
    except ValueError:
        existing = None
    if existing is not None and _spec(existing) == _spec(wanted):
        return f"automation {FAILURE_AUTOMATION}: unchanged"
    if existing is not None:
        await existing.adelete()
    await wanted.acreate()
    return f"automation {FAILURE_AUTOMATION}: {'updated' if existing else 'created'}"
