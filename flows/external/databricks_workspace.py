"""The export's calls to a Databricks workspace, made with databricks-sdk within one deadline.

- `files.upload(<volume path>, overwrite=True)`: the Files API puts one file into a Unity
  Catalog volume (`PUT /api/2.0/fs/files/Volumes/...?overwrite=true`);
- `statement_execution.execute_statement(...)`: the SQL Statement Execution API runs one
  statement on a SQL warehouse, then `get_statement` polls it while PENDING or RUNNING,
  within a bounded total wait, and `cancel_execution` stops it when the export gives up.

Each call gets a client of its own whose HTTP timeout is the call's (sized to what it
carries, see `sized_timeout`) or the time left before the deadline, whichever is shorter;
none is made once the deadline has come (ExportDeadlinePassed). Polling a statement stops a
little before the deadline, so that cancelling it still fits.

The SDK's own retries are off: Prefect's task retries are the export's one retry policy
(the delays the tests and the deadline reckon with), and a retry repeats upload and
statement together, which an SDK retry of one request cannot. Failures are sorted by
databricks_errors.py.
"""

from __future__ import annotations

import logging
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

from databricks.sdk import WorkspaceClient
from databricks.sdk.clock import RealClock
from databricks.sdk.core import Config
from databricks.sdk.service.sql import (
    Disposition,
    ExecuteStatementRequestOnWaitTimeout,
    Format,
    StatementParameterListItem,
    StatementResponse,
    StatementState,
)

from flows import config
from flows.external.databricks_errors import (
    MAX_ERROR_TEXT,
    ExportDeadlinePassed,
    ExportError,
    PermanentExportError,
    TransientExportError,
    export_error,
)
from flows.runtime.deadline import Deadline

RUNNING_STATES = frozenset({StatementState.PENDING, StatementState.RUNNING})
SDK_LOGGER = "databricks.sdk"
T = TypeVar("T")


@dataclass(frozen=True)
class Timeouts:
    """How long each request may take (`request_seconds` plus its upload at
    `min_upload_bytes_per_second`, plus the statement API's own wait for a statement), a
    statement's whole run, the poll pace, and the time kept back before the deadline for
    cancelling a statement."""

    request_seconds: float = config.DATABRICKS_REQUEST_TIMEOUT_SECONDS
    min_upload_bytes_per_second: float = config.DATABRICKS_MIN_UPLOAD_BYTES_PER_SECOND
    statement_wait_seconds: int = config.DATABRICKS_STATEMENT_WAIT_SECONDS
    statement_timeout_seconds: float = config.DATABRICKS_STATEMENT_TIMEOUT_SECONDS
    poll_seconds: float = config.DATABRICKS_POLL_SECONDS
    cancel_reserve_seconds: float = config.DATABRICKS_CANCEL_RESERVE_SECONDS


@dataclass(frozen=True)
class StatementResult:
    statement_id: str
    state: str
    columns: tuple[str, ...]
    rows: tuple[tuple[Any, ...], ...]

    def first_row(self) -> dict[str, Any]:
        return dict(zip(self.columns, self.rows[0], strict=False)) if self.rows else {}


def sized_timeout(base_seconds: float, payload_bytes: int, min_bytes_per_second: float) -> float:
    """A request's timeout: the base, plus its payload sent at the slowest throughput still
    taken for a working link."""
    return base_seconds + payload_bytes / min_bytes_per_second


def statement_wait(wanted: int, time_left: float) -> int:
    """The statement API's wait_timeout (0, or 5 to 50 s): as asked, or shorter so that its
    answer, which carries the id to cancel the statement by, comes back in time."""
    fits = int(time_left)
    if wanted <= fits:
        return wanted
    return fits if fits >= 5 else 0


class _NoRetryClock(RealClock):
    """The SDK retries a failed request after sleeping on its config's clock, inside the
    handler of the failure; this clock raises that failure instead of sleeping, so the
    request fails at once, as it would if the SDK did not retry it."""

    def sleep(self, seconds: float) -> None:
        failure = sys.exception()
        if failure is None:  # not a retry's wait (the export's calls make none)
            time.sleep(seconds)
            return
        raise failure


class _ExportConfig(Config):
    """The SDK's Config without its host metadata lookup: at every construction it asks
    `<host>/.well-known/databricks-config`, through a client of its own with 60 s timeouts
    and 5 min of retries, for values the export's calls do not use (a personal access token
    needs no OIDC discovery). Unanswered, that request alone would outlast the deadline."""

    _attributes = Config.attributes()  # the SDK lists them from the class's own __dict__

    def _resolve_host_metadata(self) -> None:
        pass


class Workspace:
    """One workspace, one token, one deadline."""

    def __init__(self, host: str, token: str, *, timeouts: Timeouts, deadline: Deadline):
        self._host = host
        self._token = token
        self.timeouts = timeouts
        self.deadline = deadline
        _keep_bodies_out_of_the_sdk_log()

    def upload_file(self, local_path: Path, volume_path: str) -> None:
        """Put the file at volume_path (/Volumes/...), replacing what is there."""
        timeout = sized_timeout(
            self.timeouts.request_seconds,
            local_path.stat().st_size,
            self.timeouts.min_upload_bytes_per_second,
        )
        with local_path.open("rb") as content:
            self._call(
                f"upload to {volume_path}",
                timeout,
                lambda client: client.files.upload(volume_path, content, overwrite=True),
            )

    def execute_statement(
        self, warehouse_id: str, statement: str, parameters: list[dict[str, str]]
    ) -> StatementResult:
        """Run one statement to completion: SUCCEEDED, or an error saying why not."""
        statement_ends = time.monotonic() + self.timeouts.statement_timeout_seconds
        base = self.timeouts.request_seconds
        wait = statement_wait(self.timeouts.statement_wait_seconds, self._until_cancel() - base)
        answer = self._call(
            "submitting the statement",
            base + wait,
            lambda client: client.statement_execution.execute_statement(
                statement=statement,
                warehouse_id=warehouse_id,
                parameters=[StatementParameterListItem(**p) for p in parameters],
                wait_timeout=f"{wait}s",
                on_wait_timeout=ExecuteStatementRequestOnWaitTimeout.CONTINUE,
                disposition=Disposition.INLINE,
                format=Format.JSON_ARRAY,
            ),
        )
        statement_id = answer.statement_id or ""
        if not statement_id:
            raise PermanentExportError("the statement API answered without a statement_id")
        reserve = self.timeouts.cancel_reserve_seconds  # polls leave it for the cancel
        try:
            while _state(answer) in RUNNING_STATES:
                self._wait_to_poll(statement_id, _state(answer), statement_ends)
                answer = self._call(
                    f"polling statement {statement_id}",
                    base,
                    lambda client: client.statement_execution.get_statement(statement_id),
                    reserve=reserve,
                )
        except ExportError:
            # Never leave a statement running behind a retry that will start another.
            self.cancel_statement(statement_id)
            raise
        return _finished(statement_id, answer)

    def _wait_to_poll(
        self, statement_id: str, state: StatementState, statement_ends: float
    ) -> None:
        """Sleep until the next poll; raise when the statement's bound has come, or the
        deadline less the time its cancel needs."""
        until_bound = statement_ends - time.monotonic()
        if until_bound <= 0:
            raise TransientExportError(
                f"statement {statement_id} still {state.value} after "
                f"{self.timeouts.statement_timeout_seconds:g} s; cancelled"
            )
        time.sleep(max(0.0, min(self.timeouts.poll_seconds, until_bound, self._until_cancel())))
        if self._until_cancel() <= 0:
            raise ExportDeadlinePassed(
                f"statement {statement_id} still {state.value} at the deadline; cancelled"
            )

    def _until_cancel(self) -> float:
        return self.deadline.remaining() - self.timeouts.cancel_reserve_seconds

    def cancel_statement(self, statement_id: str) -> bool:
        """Ask the warehouse to stop the statement; best effort, True if it accepted."""
        try:
            self._call(
                f"cancelling statement {statement_id}",
                self.timeouts.request_seconds,
                lambda client: client.statement_execution.cancel_execution(statement_id),
            )
        except ExportError:
            return False
        return True

    def _call(
        self,
        what: str,
        timeout: float,
        request: Callable[[WorkspaceClient], T],
        *,
        reserve: float = 0.0,
    ) -> T:
        """One request, its timeout cut to the time left before the deadline (less `reserve`,
        kept for what must follow it)."""
        time_left = self.deadline.remaining() - reserve
        if time_left <= 0:
            raise ExportDeadlinePassed(f"{what}: not sent, no time left")
        try:
            return request(self._client(min(timeout, time_left)))
        # DatabricksError, requests' errors beneath the SDK and TimeoutError are all OSErrors;
        # a host the SDK cannot take is a ValueError.
        except (OSError, ValueError) as error:
            raise export_error(what, error, self._token) from None

    def _client(self, timeout: float) -> WorkspaceClient:
        """A client whose every request times out after `timeout` and is made once."""
        settings = _ExportConfig(
            host=self._host,
            token=self._token,
            # The token given, whatever else the environment or ~/.databrickscfg holds.
            auth_type="pat",
            http_timeout_seconds=timeout,
            # The clock allows one attempt. A backstop should a retry ever get past it: the
            # SDK starts none after this long (whole seconds, at least 1), not its 5 min.
            retry_timeout_seconds=max(1, int(timeout)),
            clock=_NoRetryClock(),
            # Headers (the token's) never in the SDK's debug log.
            debug_headers=False,
            # One PUT of the whole file (the Files API takes up to 5 GiB), bounded by this
            # timeout: the SDK's newer upload client sends files from 50 MB in parts through
            # presigned cloud storage URLs, with timeouts and retries of its own.
            disable_experimental_files_api_client=True,
        )
        return WorkspaceClient(config=settings)


def _keep_bodies_out_of_the_sdk_log() -> None:
    """The SDK logs every request and answer, bodies included, at DEBUG; a workspace's error
    answer may echo the request's headers, token included. Unless someone chose the SDK
    logger's own level, a DEBUG it would inherit (from a verbose root logger) stops at INFO,
    where the SDK writes no bodies. A WARNING it inherits stays: set to INFO then, the
    logger would add the SDK's INFO lines to every run's output."""
    logger = logging.getLogger(SDK_LOGGER)
    if logger.level == logging.NOTSET and logger.getEffectiveLevel() < logging.INFO:
        logger.setLevel(logging.INFO)


def _state(answer: StatementResponse) -> StatementState | None:
    return answer.status.state if answer.status else None


def _finished(statement_id: str, answer: StatementResponse) -> StatementResult:
    state = _state(answer)
    if state == StatementState.FAILED:
        error = answer.status.error
        code = error.error_code.value if error and error.error_code else "UNKNOWN"
        message = (error.message if error else None) or ""
        raise PermanentExportError(
            f"statement {statement_id} FAILED: {code}: {message[:MAX_ERROR_TEXT]}"
        )
    if state == StatementState.CANCELED:
        raise TransientExportError(f"statement {statement_id} was CANCELED by the warehouse")
    if state == StatementState.CLOSED:
        # It ran; its result is gone before it could be read. The load's own count stands.
        return StatementResult(statement_id, state.value, (), ())
    if state != StatementState.SUCCEEDED:
        shown = state.value if state else None
        raise PermanentExportError(f"statement {statement_id} ended in unknown state {shown!r}")
    schema = answer.manifest.schema if answer.manifest else None
    columns = tuple(str(column.name) for column in (schema.columns if schema else None) or ())
    data = (answer.result.data_array if answer.result else None) or ()
    return StatementResult(statement_id, state.value, columns, tuple(tuple(row) for row in data))
