"""`ledgerflow status`: the pipeline's recent history, from the Prefect server's API and
from the warehouse's own run history.

Answers: when did it last succeed, how long did that take, what did it publish, what
failed last, is a run going on now, when is the next scheduled one (the server), and what
was unusual in the last runs (the warehouse, flows/quality/history.py).
"""

from __future__ import annotations

import json
from datetime import datetime
from pathlib import Path

from flows.config import FLOW_NAME
from flows.contract import MART_SOURCES
from flows.quality.artifacts import METRICS_KEY, SUMMARY_KEY

# A run cancelled because another was already running is not a failure.
FAILED_STATE_TYPES = ("FAILED", "CRASHED")


class NoServer(Exception):
    """No Prefect server is configured, or it does not answer."""


def status_report() -> str:
    """The history as a few lines of text; raises NoServer when there is no server to ask."""
    from prefect.settings import get_current_settings

    api_url = get_current_settings().api.url
    if not api_url:
        raise NoServer(
            "no Prefect server configured: PREFECT_API_URL is not set (without one, "
            "`ledgerflow run` records its runs under PREFECT_HOME, default ~/.prefect, not "
            "in the database `make server` keeps in .prefect/; the warehouse's own history "
            "is below). "
            "Start one with `make server` and export "
            "PREFECT_API_URL=http://127.0.0.1:4200/api"
        )
    from prefect.client.orchestration import get_client

    with get_client(sync_client=True) as client:
        error = client.api_healthcheck()  # returns the error instead of raising it
        if error is not None:
            raise NoServer(f"the Prefect server at {api_url} does not answer: {error}")
        return "\n".join([f"Prefect API: {api_url}", *_history_lines(client)])


def _history_lines(client) -> list[str]:
    success = _latest(client, ["COMPLETED"], "END_TIME_DESC")
    failure = _latest(client, list(FAILED_STATE_TYPES), "END_TIME_DESC")
    running = _latest(client, ["RUNNING", "PENDING"], "START_TIME_DESC")
    scheduled = _latest(client, ["SCHEDULED"], "EXPECTED_START_TIME_ASC")
    lines = []
    if success is None:
        lines.append(f"Last successful run: none of {FLOW_NAME} on this server")
    else:
        lines.append(
            f"Last successful run: {_describe(client, success)}, finished "
            f"{_when(success.end_time)}, took {success.total_run_time.total_seconds():.1f} s"
        )
        lines.extend(f"  {line}" for line in _published(client, success))
    if failure is None:
        lines.append("Last failed run: none")
    else:
        lines.append(
            f"Last failed run: {_describe(client, failure)}, {failure.state_name} at "
            f"{_when(failure.end_time or failure.start_time or failure.expected_start_time)}"
        )
        lines.append(f"  {(failure.state.message if failure.state else '') or 'no message'}")
    lines.append(
        "Running now: "
        + (f"{_describe(client, running)} since {_when(running.start_time)}" if running else "none")
    )
    lines.append(
        "Next scheduled: "
        + (
            f"{_describe(client, scheduled)} at {_when(scheduled.expected_start_time)}"
            if scheduled
            else "none"
        )
    )
    return lines


RECENT_RUNS_SHOWN = 10


def warehouse_history_lines(warehouse: Path) -> list[str]:
    """The last runs the warehouse recorded, newest first, with their anomalies."""
    import duckdb

    from flows.quality.history import recent_runs

    if not warehouse.is_file():
        return [f"Run history in {warehouse}: no warehouse there yet"]
    try:
        with duckdb.connect(str(warehouse), read_only=True) as con:
            runs = recent_runs(con, RECENT_RUNS_SHOWN)
    except duckdb.IOException as error:  # a run holds the warehouse
        return [f"Run history in {warehouse}: not readable now ({error})"]
    lines = [f"Run history in {warehouse} (last {len(runs)} runs):"]
    for run in runs:
        where = f", stopped at {run['stopped_at']}" if run["stopped_at"] else ""
        lines.append(
            f"  {run['run_at']:%Y-%m-%d %H:%M:%S} {run['run_id']} "
            f"({run['deployment'] or 'no deployment'}): {run['outcome']}, "
            f"{'published' if run['published'] else 'not published'}{where}"
        )
        lines.extend(f"    unusual: {message}" for message in run["anomalies"])
    return lines


def _latest(client, state_types: list[str], sort: str):
    from prefect.client.schemas.filters import (
        FlowFilter,
        FlowFilterName,
        FlowRunFilter,
        FlowRunFilterState,
        FlowRunFilterStateType,
    )
    from prefect.client.schemas.sorting import FlowRunSort

    runs = client.read_flow_runs(
        flow_filter=FlowFilter(name=FlowFilterName(any_=[FLOW_NAME])),
        flow_run_filter=FlowRunFilter(
            state=FlowRunFilterState(type=FlowRunFilterStateType(any_=state_types))
        ),
        sort=getattr(FlowRunSort, sort),
        limit=1,
    )
    return runs[0] if runs else None


def _describe(client, run) -> str:
    deployment = "no deployment"
    if run.deployment_id:
        deployment = f"deployment {client.read_deployment(run.deployment_id).name}"
    return f"{run.name} ({deployment}, id {run.id})"


def _published(client, run) -> list[str]:
    """What the run published, from the artifacts it left."""
    from prefect.client.schemas.filters import ArtifactFilter, ArtifactFilterFlowRunId

    artifacts = {
        artifact.key: artifact
        for artifact in client.read_artifacts(
            artifact_filter=ArtifactFilter(flow_run_id=ArtifactFilterFlowRunId(any_=[run.id])),
            limit=20,
        )
    }
    lines = []
    summary = artifacts.get(SUMMARY_KEY)
    if summary is not None:
        first_paragraph = str(summary.data).split("\n\n")[1:2]
        lines.extend(first_paragraph)
    metrics = artifacts.get(METRICS_KEY)
    if metrics is not None:
        values = {row["metric"]: row["value"] for row in json.loads(str(metrics.data))}
        counts = [
            f"{mart} {values[f'rows.{table}.{mart}']} rows"
            for mart, table in MART_SOURCES.items()
            if f"rows.{table}.{mart}" in values
        ]
        output_dir = (run.parameters or {}).get("output_dir") or "the default output folder"
        lines.append(f"Published to {output_dir}: {', '.join(counts) or 'no row counts recorded'}")
    return lines or ["(no quality report artifact on this run)"]


def _when(moment: datetime | None) -> str:
    return moment.strftime("%Y-%m-%d %H:%M:%S %Z") if moment else "unknown time"
