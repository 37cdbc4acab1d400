"""Load the published Parquet files into Unity Catalog tables, the way Databricks
recommends for bulk data: one file upload, then one set-based statement.

For each published mart (account_summary, customer_profile; flows/contract.py):

1. upload `<output>/<table>.parquet` through the Files API to the run-scoped volume path
   `/Volumes/<catalog>/<schema>/<volume>/ledgerflow/<run id>/<table>.parquet`;
2. run one statement through the SQL Statement Execution API:
   `CREATE OR REPLACE TABLE IDENTIFIER(:target_table) AS SELECT cast(...) ... FROM
   read_files('<that path>', format => 'parquet')`, with each column cast to its type in
   the marts contract (dbt_project/models/marts/_marts__models.yml), so amounts stay
   DECIMAL(18,2) and the rate DECIMAL(6,4).

The path is run-scoped: a retry within the run overwrites its own file, two runs never
overwrite each other's file between upload and load, and each run's files stay in the
volume as the record of what was loaded (clearing old runs is the volume owner's choice).
CREATE OR REPLACE on Delta is atomic, so a reader sees the previous table or the new one,
never half a load, and the same data loaded twice leaves the same table.

Each table is one Prefect task run (`export-databricks`) with its own retries: 3, after 1,
2 and 4 s (times a configurable backoff), with jitter, only on TransientExportError
(timeouts, connection errors, HTTP 429 and most 5xx, a statement canceled or still queued
past its bound; databricks_errors.py has the list). A retry repeats upload and statement
together: both are idempotent, and a half-done attempt (file uploaded, statement lost)
needs both anyway; the SDK's own retries are off for that reason. Any other 4xx or a FAILED
statement fails the table at once. A table that fails does not stop the other.

Both tables' task runs are submitted at once (Prefect's thread-pool task runner) and share
one deadline, LEDGERFLOW_DATABRICKS_DEADLINE_SECONDS from the start of the step: every
request's timeout is cut to the time left (databricks_workspace.py), and a retry whose delay
would end past the deadline is not made; the attempt fails instead, naming the deadline.
The flow waits for the task runs until the deadline and a short grace; a table whose run
is still going then is reported failed by the deadline too. Because each run's own requests
end by the deadline, the task runner's shutdown at the end of the flow (which waits for its
threads) adds nothing.

Settings: DATABRICKS_HOST + DATABRICKS_TOKEN (the variables dbt's `databricks` target
reads), or else prefect-databricks' DatabricksCredentials block (flows/config.py names it),
and DATABRICKS_HTTP_PATH for the warehouse in both cases. Without them each table's task
ends Completed with the state name "Skipped" and a message naming what is missing.

The token never leaves the Authorization header: it is a SecretStr in every object that
Prefect might print, removed from every error text, and kept out of the SDK's debug log.
"""

from __future__ import annotations

import os
import re
import time
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Literal

import httpx
import pyarrow.parquet as pq
from prefect import get_run_logger, task
from prefect.artifacts import create_table_artifact
from prefect.cache_policies import NO_CACHE
from prefect.client.schemas.objects import TaskRun
from prefect.futures import PrefectFuture
from prefect.states import Completed, State
from prefect.tasks import Task, exponential_backoff
from pydantic import SecretStr

from flows import config
from flows.contract import PUBLISHED_MARTS, mart_columns
from flows.external.databricks_errors import (
    ExportDeadlinePassed,
    ExportError,
    PermanentExportError,
    TransientExportError,
    redact,
)
from flows.external.databricks_workspace import StatementResult, Timeouts, Workspace
from flows.runtime.deadline import Deadline
from flows.runtime.text import plain_text

TASK_NAME = "export-databricks"
ARTIFACT_KEY = "databricks-export"
SKIPPED = "Skipped"
WAREHOUSE_PATH = re.compile(r"^/?sql/1\.0/warehouses/([A-Za-z0-9]+)/?$")
# Unity Catalog allows more, but these are the names that need no quoting anywhere,
# including inside the volume path of the statement.
PLAIN_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")

Status = Literal["loaded", "skipped", "failed"]


@dataclass(frozen=True)
class ExportOutcome:
    """How one table's export ended; `target` is the fully qualified table, when known."""

    table: str
    target: str | None
    status: Status
    rows: int | None
    message: str  # may quote the workspace's answer: made plain text for every reader

    def __post_init__(self):
        object.__setattr__(self, "message", plain_text(self.message))


@dataclass(frozen=True)
class DatabricksTarget:
    """Where the tables go and how to reach the workspace."""

    host: str
    token: SecretStr = field(repr=False)
    warehouse_id: str
    catalog: str
    schema: str
    volume: str
    source: str  # where the credentials came from, for the logs

    def table_name(self, table: str) -> str:
        return f"{self.catalog}.{self.schema}.{table}"

    def quoted_table_name(self, table: str) -> str:
        return ".".join(f"`{part}`" for part in (self.catalog, self.schema, table))

    def volume_path(self, run_id: str, table: str) -> str:
        run = re.sub(r"[^A-Za-z0-9_.-]", "-", run_id)
        return (
            f"/Volumes/{self.catalog}/{self.schema}/{self.volume}/ledgerflow/{run}/{table}.parquet"
        )


@dataclass(frozen=True)
class RetryPolicy:
    """Task retries on transient failures: delays backoff_factor x 1, 2, 4 s, jittered by
    up to jitter_factor (None: exact delays, which the tests use to measure them)."""

    retries: int = config.DATABRICKS_RETRIES
    backoff_factor: float = config.DATABRICKS_BACKOFF_SECONDS
    jitter_factor: float | None = config.DATABRICKS_RETRY_JITTER_FACTOR


@dataclass(frozen=True)
class Settings:
    """The target, or why there is none: `skipped` (not configured) or `invalid`; and the
    export step's deadline."""

    target: DatabricksTarget | None
    skipped: str | None = None
    invalid: str | None = None
    deadline_seconds: float = config.DATABRICKS_DEADLINE_DEFAULT_SECONDS


def export_to_databricks(
    output_dir: Path,
    run_id: str,
    *,
    retry: RetryPolicy | None = None,
    timeouts: Timeouts | None = None,
) -> list[ExportOutcome]:
    """Export the published tables at the same time, one task run each, all within one
    deadline from now (LEDGERFLOW_DATABRICKS_DEADLINE_SECONDS); inside a flow run. Never
    raises for a table's failure: the outcomes say what happened to each."""
    retry = retry or RetryPolicy()
    settings = resolve_settings()
    deadline = Deadline.starting_now(settings.deadline_seconds, config.DATABRICKS_DEADLINE_VAR)
    export = export_table.with_options(
        retries=retry.retries,
        retry_delay_seconds=exponential_backoff(backoff_factor=retry.backoff_factor),
        retry_jitter_factor=retry.jitter_factor,
    )
    futures = {
        table: export.submit(
            table=table,
            parquet=output_dir / f"{table}.parquet",
            run_id=run_id,
            settings=settings,
            timeouts=timeouts or Timeouts(),
            deadline=deadline,
        )
        for table in PUBLISHED_MARTS
    }
    outcomes = [
        _outcome(table, settings, state, deadline)
        for table, state in _final_states(futures, deadline).items()
    ]
    _create_artifact(outcomes)
    return outcomes


def _final_states(futures: dict[str, PrefectFuture], deadline: Deadline) -> dict[str, State | None]:
    """Each table's final state; None for a task run still going when the flow stops
    waiting, a grace period after the deadline (time for a finished run to record its state)."""
    stop_waiting = deadline.ends_at + config.DATABRICKS_DEADLINE_GRACE_SECONDS
    states: dict[str, State | None] = {}
    for table, future in futures.items():
        future.wait(timeout=max(0.0, stop_waiting - time.monotonic()))
        state = future.state
        states[table] = state if state.is_final() else None
    return states


def retry_on_transient(task: Task, task_run: TaskRun, state: State) -> bool:
    """Prefect's retry_condition_fn: retry only what a retry can fix."""
    return isinstance(state.result(raise_on_failure=False), TransientExportError)


@task(
    name=TASK_NAME,
    task_run_name="export-databricks-{table}",
    retries=config.DATABRICKS_RETRIES,
    retry_delay_seconds=exponential_backoff(backoff_factor=config.DATABRICKS_BACKOFF_SECONDS),
    retry_jitter_factor=config.DATABRICKS_RETRY_JITTER_FACTOR,
    retry_condition_fn=retry_on_transient,
    # Every run must load; and the inputs hold the token, so they are never hashed.
    cache_policy=NO_CACHE,
)
def export_table(
    table: str,
    parquet: Path,
    run_id: str,
    settings: Settings,
    timeouts: Timeouts,
    deadline: Deadline,
) -> ExportOutcome | State:
    """Upload one published Parquet file to the volume and replace the table from it."""
    if settings.target is None:
        if settings.invalid:
            raise PermanentExportError(settings.invalid)
        message = f"{table}: not exported to Databricks: {settings.skipped}"
        get_run_logger().info(message)
        outcome = ExportOutcome(table, None, "skipped", None, message)
        return Completed(name=SKIPPED, message=message, data=outcome)

    target = settings.target
    token = target.token.get_secret_value()
    logger = get_run_logger()
    try:
        rows = check_parquet(table, parquet)
        volume_path = target.volume_path(run_id, table)
        statement = load_statement(table, volume_path)
        parameters = [
            {"name": "target_table", "value": target.quoted_table_name(table), "type": "STRING"}
        ]
        workspace = Workspace(target.host, token, timeouts=timeouts, deadline=deadline)
        logger.info(
            "%s: uploading %s rows to %s (%s, credentials from %s)",
            table,
            rows,
            volume_path,
            target.host,
            target.source,
        )
        workspace.upload_file(parquet, volume_path)
        result = workspace.execute_statement(target.warehouse_id, statement, parameters)
    except ExportError as error:
        raise _attempt_error(error, token, deadline) from None

    loaded = loaded_rows(result, rows)
    name = target.table_name(table)
    if loaded != rows:
        raise PermanentExportError(
            f"{name}: statement {result.statement_id} loaded {loaded} rows, the file has {rows}"
        )
    message = f"{rows} rows loaded into {name} (statement {result.statement_id})"
    logger.info("%s: %s", table, message)
    return ExportOutcome(table, name, "loaded", rows, message)


def _attempt_error(error: ExportError, token: str, deadline: Deadline) -> ExportError:
    """What the attempt fails with: the error without the token (nothing the workspace
    echoes back may carry it), or, when the deadline ends the attempts rather than the
    retry count, an error naming the deadline that is never retried."""
    text = redact(str(error), token)
    if isinstance(error, ExportDeadlinePassed) or (
        isinstance(error, TransientExportError) and deadline.ends_retries()
    ):
        return ExportDeadlinePassed(f"{not_loaded_in_time(deadline)}; last error: {text}")
    return type(error)(text)


def not_loaded_in_time(deadline: Deadline) -> str:
    return f"not loaded within the export deadline of {deadline}"


def resolve_settings(environ: dict[str, str] | None = None) -> Settings:
    """The target from the environment, else from the credentials block, and the deadline;
    or why not."""
    env = os.environ if environ is None else environ
    settings = _target_settings(env)
    if settings.target is None:
        return settings
    try:
        seconds = config.seconds_setting(
            env, config.DATABRICKS_DEADLINE_VAR, config.DATABRICKS_DEADLINE_DEFAULT_SECONDS
        )
    except ValueError as error:
        return Settings(None, invalid=str(error))
    return replace(settings, deadline_seconds=seconds)


def _target_settings(env: Mapping[str, str]) -> Settings:
    host, token = env.get(config.DATABRICKS_HOST_VAR), env.get(config.DATABRICKS_TOKEN_VAR)
    block_name = env.get(config.DATABRICKS_BLOCK_VAR) or config.DATABRICKS_BLOCK_DEFAULT
    source = "environment"
    if not (host and token):
        host, token, block_problem = _from_block(block_name)
        source = f"block {block_name!r}"
        if block_problem:
            missing = [
                name
                for name in (config.DATABRICKS_HOST_VAR, config.DATABRICKS_TOKEN_VAR)
                if not env.get(name)
            ]
            return Settings(None, skipped=f"{' and '.join(missing)} not set, and {block_problem}")
    http_path = env.get(config.DATABRICKS_HTTP_PATH_VAR)
    if not http_path:
        return Settings(None, skipped=f"{config.DATABRICKS_HTTP_PATH_VAR} not set")
    match = WAREHOUSE_PATH.match(http_path.strip())
    if not match:
        return Settings(
            None,
            invalid=f"{config.DATABRICKS_HTTP_PATH_VAR} is not a SQL warehouse path "
            "(/sql/1.0/warehouses/<id>)",
        )
    names = {
        "catalog": (config.DATABRICKS_CATALOG_VAR, config.DATABRICKS_CATALOG_DEFAULT),
        "schema": (config.DATABRICKS_SCHEMA_VAR, config.DATABRICKS_SCHEMA_DEFAULT),
        "volume": (config.DATABRICKS_VOLUME_VAR, config.DATABRICKS_VOLUME_DEFAULT),
    }
    chosen = {key: env.get(var) or default for key, (var, default) in names.items()}
    for key, value in chosen.items():
        if not PLAIN_NAME.match(value):
            return Settings(
                None, invalid=f"{names[key][0]}={value!r} is not a plain name ([A-Za-z0-9_])"
            )
    target = DatabricksTarget(
        host=host,
        token=SecretStr(token),
        warehouse_id=match.group(1),
        source=source,
        **chosen,
    )
    return Settings(target)


def save_credentials_block_from_env(environ: dict[str, str] | None = None) -> bool:
    """Save DATABRICKS_HOST and DATABRICKS_TOKEN as the DatabricksCredentials block the
    export reads (for deployments whose workers should not carry the token); False, and
    nothing saved, when either is unset. The warehouse stays DATABRICKS_HTTP_PATH."""
    from prefect_databricks import DatabricksCredentials

    env = os.environ if environ is None else environ
    host, token = env.get(config.DATABRICKS_HOST_VAR), env.get(config.DATABRICKS_TOKEN_VAR)
    if not (host and token):
        return False
    # prefect-databricks puts https:// in front of the instance itself.
    instance = host.strip().rstrip("/").removeprefix("https://")
    block_name = env.get(config.DATABRICKS_BLOCK_VAR) or config.DATABRICKS_BLOCK_DEFAULT
    DatabricksCredentials(databricks_instance=instance, token=token).save(
        block_name, overwrite=True
    )
    return True


def load_statement(table: str, volume_path: str) -> str:
    """CREATE OR REPLACE TABLE ... AS SELECT from the uploaded file, typed by the contract."""
    columns = ",\n    ".join(
        f"cast(`{name}` as {databricks_type(data_type)}) as `{name}`"
        for name, data_type in mart_columns(table).items()
    )
    return (
        "CREATE OR REPLACE TABLE IDENTIFIER(:target_table) AS\n"
        f"SELECT\n    {columns}\n"
        f"FROM read_files({_sql_string(volume_path)}, format => 'parquet')"
    )


def databricks_type(data_type: str) -> str:
    """The contract's type in Databricks SQL: the same names except text, which is STRING."""
    spelled = re.sub(r"\s+", "", data_type).upper()
    return "STRING" if spelled in {"VARCHAR", "TEXT", "STRING"} else spelled


def check_parquet(table: str, parquet: Path) -> int:
    """The file's row count, once its columns are known to be the contract's."""
    if not parquet.is_file():
        raise PermanentExportError(f"{parquet.name} is not in the output folder")
    file = pq.ParquetFile(parquet)
    found = list(file.schema_arrow.names)
    expected = list(mart_columns(table))
    if found != expected:
        raise PermanentExportError(
            f"{parquet.name} has columns {found}, the marts contract says {expected}"
        )
    return file.metadata.num_rows


def loaded_rows(result: StatementResult, uploaded: int) -> int:
    """Rows the statement says it wrote (CTAS reports num_inserted_rows); the file's
    count when the warehouse did not say."""
    first = result.first_row()
    for column in ("num_inserted_rows", "num_affected_rows"):
        if first.get(column) is not None:
            return int(first[column])
    return uploaded


def _from_block(block_name: str) -> tuple[str | None, str | None, str | None]:
    """(host, token, None) from the credentials block, or (None, None, why not)."""
    from prefect_databricks import DatabricksCredentials

    try:
        block = DatabricksCredentials.load(block_name)
    except ValueError:
        return None, None, f"there is no DatabricksCredentials block {block_name!r}"
    except (RuntimeError, OSError, httpx.HTTPError) as error:  # no Prefect API to ask, say
        return None, None, f"the block {block_name!r} could not be read ({type(error).__name__})"
    if block.token is None:
        return None, None, f"the block {block_name!r} has no token (service principals unused)"
    return block.databricks_instance, block.token.get_secret_value(), None


def _outcome(
    table: str, settings: Settings, state: State | None, deadline: Deadline
) -> ExportOutcome:
    target = settings.target.table_name(table) if settings.target else None
    token = settings.target.token.get_secret_value() if settings.target else None
    if state is None:
        message = f"{table}: {not_loaded_in_time(deadline)}; its task run had not ended"
        return ExportOutcome(table, target, "failed", None, message)
    if state.is_completed():
        outcome = state.result()
        if isinstance(outcome, ExportOutcome):
            return outcome
    error = state.result(raise_on_failure=False)
    detail = str(error) if isinstance(error, BaseException) else (state.message or state.name)
    return ExportOutcome(table, target, "failed", None, redact(f"{table}: {detail}", token))


def _create_artifact(outcomes: list[ExportOutcome]) -> None:
    create_table_artifact(
        key=ARTIFACT_KEY,
        table=[asdict(outcome) for outcome in outcomes],
        description="Databricks export: one row per table",
    )


def _sql_string(text: str) -> str:
    """A Databricks SQL string literal (backslash is its escape character)."""
    return "'" + text.replace("\\", "\\\\").replace("'", "\\'") + "'"
