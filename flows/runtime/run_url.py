"""The address of the current flow run in Prefect's UI, or None when there is no run or
no UI address is configured (an ephemeral server has none: Prefect's `flow_run.ui_url`
would then read "None/flow-runs/…", a link to nowhere)."""

from __future__ import annotations

from prefect.runtime import flow_run
from prefect.utilities.urls import url_for


def flow_run_url() -> str | None:
    run_id = flow_run.id
    return url_for("flow-run", obj_id=run_id) if run_id else None
