"""`make deploy`: the work pool, blocks, automations, then every deployment in prefect.yaml.

Talks to the server PREFECT_API_URL names; refuses to run without one, since a temporary
local API would forget everything it created.
"""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
from pathlib import Path

from prefect.client.orchestration import get_client
from prefect.settings import get_current_settings

from deployments.automations import ensure_anomaly_automation, ensure_failure_automation
from deployments.blocks import ensure_slack_block, slack_block_id
from deployments.work_pool import ensure_work_pool
from flows.config import DEFAULT_SCHEDULE_TIMEZONE, PROJECT_ROOT, SCHEDULE_TIMEZONE_ENV


async def ensure_server_objects() -> list[str]:
    async with get_client() as client:
        done = [await ensure_work_pool(client)]
    done.append(await ensure_slack_block())
    block_id = await slack_block_id()
    done.append(await ensure_failure_automation(block_id))
    done.append(await ensure_anomaly_automation(block_id))
    return done


def ensure_databricks_block() -> str:
    """Databricks host and token as a block, so workers need only DATABRICKS_HTTP_PATH."""
    from flows.external.databricks import save_credentials_block_from_env

    if save_credentials_block_from_env():
        return "Databricks credentials block: saved from DATABRICKS_HOST and DATABRICKS_TOKEN"
    return (
        "Databricks credentials block: not configured (DATABRICKS_HOST / DATABRICKS_TOKEN "
        "unset); exports are skipped unless the worker's environment has them"
    )


def deploy_all() -> None:
    """prefect.yaml's deployments; `prefect deploy` updates a deployment in place."""
    env = dict(os.environ)
    env.setdefault(SCHEDULE_TIMEZONE_ENV, DEFAULT_SCHEDULE_TIMEZONE)
    prefect = Path(sys.executable).with_name("prefect")
    subprocess.run(
        [str(prefect), "--no-prompt", "deploy", "--all"], cwd=PROJECT_ROOT, env=env, check=True
    )


def main() -> int:
    api_url = get_current_settings().api.url
    if not api_url:
        print(
            "deploy: PREFECT_API_URL is not set; start a server (make server) and export "
            "PREFECT_API_URL=http://127.0.0.1:4200/api",
            file=sys.stderr,
        )
        return 2
    print(f"deploying to {api_url}")
    for line in asyncio.run(ensure_server_objects()):
        print(f"  {line}")
    print(f"  {ensure_databricks_block()}")
    deploy_all()
    return 0


if __name__ == "__main__":
    sys.exit(main())
