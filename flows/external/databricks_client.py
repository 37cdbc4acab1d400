"""The two Databricks REST APIs the export uses, and nothing else.

- Files API: `PUT /api/2.0/fs/files/Volumes/<catalog>/<schema>/<volume>/<path>?overwrite=true`
  puts one file into a Unity Catalog volume.
- SQL Statement Execution API: `POST /api/2.0/sql/statements` runs one statement on a SQL
  warehouse; `GET /api/2.0/sql/statements/{id}` polls it while PENDING or RUNNING, within
  a bounded total wait; `POST /api/2.0/sql/statements/{id}/cancel` when giving up on it.

Failures are sorted by whether trying again can help. TransientExportError: a timeout, a
connection error, HTTP 429 or 5xx, a statement CANCELED (a warehouse stopping does that)
or still queued past the wait bound (a warehouse still starting). PermanentExportError:
any other HTTP 4xx, a statement that FAILED (a SQL error), an answer that makes no sense.
No request here is retried: the caller retries the whole upload-and-load, which is
idempotent (see flows/external/databricks.py).

Every request runs within the export's deadline: its timeout is its own (sized to what it
carries, see `sized_timeout`) or the time left, whichever is shorter, and none is sent
once the deadline has come (ExportDeadlinePassed, never retried). Polling a statement
stops a little before the deadline, so that cancelling it still fits.

The token goes in the Authorization header only, and is removed from every error text.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Self
from urllib.parse import quote

import httpx

from flows import config
from flows.runtime.deadline import Deadline

FILES_API = "/api/2.0/fs/files"
STATEMENTS_API = "/api/2.0/sql/statements"

RUNNING_STATES = frozenset({"PENDING", "RUNNING"})
MAX_ERROR_TEXT = 300
REDACTED = "[REDACTED]"


class ExportError(Exception):
    """An export to Databricks that did not happen."""


class TransientExportError(ExportError):
    """A failure that the same request may not meet again: worth a retry."""


class PermanentExportError(ExportError):
    """A failure that repeating the same request would meet again."""


class ExportDeadlinePassed(ExportError):
    """The export's deadline came first: no retry may start, whatever the failure was."""


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


def redact(text: str, secret: str | None) -> str:
    """The text with the secret replaced, wherever it appears."""
    return text.replace(secret, REDACTED) if secret else text


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


def base_url(host: str) -> str:
    """https://<host> from a host given with or without its scheme (dbt takes it without)."""
    host = host.strip().rstrip("/")
    return host if host.startswith(("https://", "http://")) else f"https://{host}"


class DatabricksClient:
    """One workspace, one token, one deadline; a context manager that closes its connections."""

    def __init__(self, host: str, token: str, *, timeouts: Timeouts, deadline: Deadline):
        self._token = token
        self.timeouts = timeouts
        self.deadline = deadline
        self._http = httpx.Client(
            base_url=base_url(host), headers={"Authorization": f"Bearer {token}"}
        )

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self._http.close()

    def upload_file(self, local_path: Path, volume_path: str) -> None:
        """Put the file at volume_path (/Volumes/...), replacing what is there."""
        url = FILES_API + quote(volume_path, safe="/")
        timeout = sized_timeout(
            self.timeouts.request_seconds,
            local_path.stat().st_size,
            self.timeouts.min_upload_bytes_per_second,
        )
        with local_path.open("rb") as content:
            self._request(
                "PUT",
                url,
                timeout,
                params={"overwrite": "true"},
                content=content,
                headers={"Content-Type": "application/octet-stream"},
            )

    def execute_statement(
        self, warehouse_id: str, statement: str, parameters: list[dict[str, str]]
    ) -> StatementResult:
        """Run one statement to completion: SUCCEEDED, or an error saying why not."""
        statement_ends = time.monotonic() + self.timeouts.statement_timeout_seconds
        base = self.timeouts.request_seconds
        wait = statement_wait(self.timeouts.statement_wait_seconds, self._until_cancel() - base)
        answer = self._request(
            "POST",
            STATEMENTS_API,
            base + wait,
            json={
                "warehouse_id": warehouse_id,
                "statement": statement,
                "parameters": parameters,
                "wait_timeout": f"{wait}s",
                "on_wait_timeout": "CONTINUE",
                "disposition": "INLINE",
                "format": "JSON_ARRAY",
            },
        ).json()
        statement_id = str(answer.get("statement_id") or "")
        if not statement_id:
            raise PermanentExportError("the statement API answered without a statement_id")
        reserve = self.timeouts.cancel_reserve_seconds  # polls leave it for the cancel
        try:
            while _state(answer) in RUNNING_STATES:
                self._wait_to_poll(statement_id, _state(answer), statement_ends)
                answer = self._request(
                    "GET", f"{STATEMENTS_API}/{statement_id}", base, reserve=reserve
                ).json()
        except ExportError:
            # Never leave a statement running behind a retry that will start another.
            self.cancel_statement(statement_id)
            raise
        return _finished(statement_id, answer)

    def _wait_to_poll(self, statement_id: str, state: str, statement_ends: float) -> None:
        """Sleep until the next poll; raise when the statement's bound has come, or the
        deadline less the time its cancel needs."""
        until_bound = statement_ends - time.monotonic()
        if until_bound <= 0:
            raise TransientExportError(
                f"statement {statement_id} still {state} after "
                f"{self.timeouts.statement_timeout_seconds:g} s; cancelled"
            )
        time.sleep(max(0.0, min(self.timeouts.poll_seconds, until_bound, self._until_cancel())))
        if self._until_cancel() <= 0:
            raise ExportDeadlinePassed(
                f"statement {statement_id} still {state} at the deadline; cancelled"
            )

    def _until_cancel(self) -> float:
        return self.deadline.remaining() - self.timeouts.cancel_reserve_seconds

    def cancel_statement(self, statement_id: str) -> bool:
        """Ask the warehouse to stop the statement; best effort, True if it accepted."""
        try:
            self._request(
                "POST", f"{STATEMENTS_API}/{statement_id}/cancel", self.timeouts.request_seconds
            )
        except ExportError:
            return False
        return True

    def _request(
        self, method: str, url: str, timeout: float, *, reserve: float = 0.0, **kwargs: Any
    ) -> httpx.Response:
        """One request, its timeout cut to the time left before the deadline (less `reserve`,
        kept for what must follow it)."""
        time_left = self.deadline.remaining() - reserve
        if time_left <= 0:
            raise ExportDeadlinePassed(f"{method} {url}: not sent, no time left")
        try:
            response = self._http.request(
                method, url, timeout=httpx.Timeout(min(timeout, time_left)), **kwargs
            )
        except httpx.TimeoutException as error:
            raise TransientExportError(
                self._redact(f"{method} {url}: timed out ({type(error).__name__})")
            ) from None
        except httpx.TransportError as error:
            raise TransientExportError(
                self._redact(f"{method} {url}: connection error ({type(error).__name__}: {error})")
            ) from None
        if response.is_success:
            return response
        detail = self._redact(
            f"{method} {url}: HTTP {response.status_code} {_error_text(response)}"
        )
        if response.status_code == 429 or response.status_code >= 500:
            raise TransientExportError(detail)
        raise PermanentExportError(detail)

    def _redact(self, text: str) -> str:
        return redact(text, self._token)


def _state(answer: dict[str, Any]) -> str:
    return str((answer.get("status") or {}).get("state") or "")


def _finished(statement_id: str, answer: dict[str, Any]) -> StatementResult:
    state = _state(answer)
    status = answer.get("status") or {}
    if state == "FAILED":
        error = status.get("error") or {}
        raise PermanentExportError(
            f"statement {statement_id} FAILED: {error.get('error_code', 'UNKNOWN')}: "
            f"{str(error.get('message', ''))[:MAX_ERROR_TEXT]}"
        )
    if state == "CANCELED":
        raise TransientExportError(f"statement {statement_id} was CANCELED by the warehouse")
    if state == "CLOSED":
        # It ran; its result is gone before it could be read. The load's own count stands.
        return StatementResult(statement_id, state, (), ())
    if state != "SUCCEEDED":
        raise PermanentExportError(f"statement {statement_id} ended in unknown state {state!r}")
    schema = (answer.get("manifest") or {}).get("schema") or {}
    columns = tuple(str(column.get("name")) for column in schema.get("columns") or ())
    data = (answer.get("result") or {}).get("data_array") or ()
    return StatementResult(statement_id, state, columns, tuple(tuple(row) for row in data))


def _error_text(response: httpx.Response) -> str:
    """The API's own error code and message when it sent them, else the body's start."""
    try:
        body = response.json()
    except ValueError:
        return response.text[:MAX_ERROR_TEXT]
    if isinstance(body, dict) and ("error_code" in body or "message" in body):
        return f"{body.get('error_code', '')}: {str(body.get('message', ''))[:MAX_ERROR_TEXT]}"
    return response.text[:MAX_ERROR_TEXT]
