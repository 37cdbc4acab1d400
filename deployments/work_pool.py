"""The process work pool the deployments run on."""

from __future__ import annotations

from prefect.client.orchestration import PrefectClient
from prefect.client.schemas.actions import WorkPoolCreate
from prefect.exceptions import ObjectNotFound
from prefect.workers.process import ProcessWorker

from flows.config import WORK_POOL


async def ensure_work_pool(client: PrefectClient) -> str:
    try:
        await client.read_work_pool(WORK_POOL)
        return f"work pool {WORK_POOL}: unchanged"
    except ObjectNotFound:
        pass
    await client.create_work_pool(
        WorkPoolCreate(
            name=WORK_POOL,
            type=ProcessWorker.type,
            base_job_template=ProcessWorker.get_default_base_job_template(),
            description="Runs Ledgerflow's flows as local processes (make worker).",
        )
    )
    return f"work pool {WORK_POOL}: created"
