"""The Slack webhook block the failure automation and the flow post through.

Its URL comes from SLACK_WEBHOOK_URL or from a Secret block, never from this repository.
"""

from __future__ import annotations

import os

from prefect.blocks.system import Secret
from prefect_slack import SlackWebhook

from flows.config import SLACK_WEBHOOK_BLOCK, SLACK_WEBHOOK_SECRET_BLOCK, SLACK_WEBHOOK_URL_ENV


async def _configured_url() -> str | None:
    if os.environ.get(SLACK_WEBHOOK_URL_ENV):
        return os.environ[SLACK_WEBHOOK_URL_ENV]
    try:
        secret = await Secret.aload(SLACK_WEBHOOK_SECRET_BLOCK)
    except ValueError:
        return None
    return str(secret.get())


async def ensure_slack_block() -> str:
    url = await _configured_url()
    if url is None:
        return (
            f"Slack block {SLACK_WEBHOOK_BLOCK}: not configured (set {SLACK_WEBHOOK_URL_ENV} or "
            f"save a Secret block named {SLACK_WEBHOOK_SECRET_BLOCK}); failures will not reach Slack"
        )
    try:
        existing = await SlackWebhook.aload(SLACK_WEBHOOK_BLOCK)
        if existing.url.get_secret_value() == url:
            return f"Slack block {SLACK_WEBHOOK_BLOCK}: unchanged"
        verb = "updated"
    except ValueError:
        verb = "created"
    await SlackWebhook(url=url).asave(SLACK_WEBHOOK_BLOCK, overwrite=True)
    return f"Slack block {SLACK_WEBHOOK_BLOCK}: {verb}"


async def slack_block_id() -> str | None:
    try:
        return str((await SlackWebhook.aload(SLACK_WEBHOOK_BLOCK))._block_document_id)
    except ValueError:
        return None
