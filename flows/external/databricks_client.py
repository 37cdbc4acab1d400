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
idempotent (see flows/databricks_export.py).

The token goes in the Authorization header only, and is removed from every error text.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Self
from urllib.parse import quote

import httpx

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


def base_url(host: str) -> str:
    """https://<host> from a host given with or without its scheme (dbt takes it without)."""
    host = host.strip().rstrip("/")
    return host if host.startswith(("https://", "http://")) else f"https://{host}"


class DatabricksClient:
    """One workspace, one token; a context manager that closes its connections."""

    def __init__(
        self,
        host: str,
        token: str,
        *,
        request_timeout: float,
        statement_wait_seconds: int,
        statement_timeout: float,
        poll_seconds: float,
    ):
        self._token = token
        self.statement_wait_seconds = statement_wait_seconds
        self.statement_timeout = statement_timeout
        self.poll_seconds = poll_seconds
        self._http = httpx.Client(
            base_url=base_url(host),
            headers={"Authorization": f"Bearer {token}"},
            timeout=httpx.Timeout(request_timeout),
        )

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self._http.close()

    def upload_file(self, local_path: Path, volume_path: str) -> None:
        """Put the file at volume_path (/Volumes/...), replacing what is there."""
        url = FILES_API + quote(volume_path, safe="/")
        with local_path.open("rb") as content:
            self._request(
                "PUT",
                url,
                params={"overwrite": "true"},
                content=content,
                headers={"Content-Type": "application/octet-stream"},
            )

    def execute_statement(
        self, warehouse_id: str, statement: str, parameters: list[dict[str, str]]
    ) -> StatementResult:
        """Run one statement to completion: SUCCEEDED, or an error saying why not."""
        deadline = time.monotonic() + self.statement_timeout
        answer = self._request(
            "POST",
            STATEMENTS_API,
            json={
                "warehouse_id": warehouse_id,
                "statement": statement,
                "parameters": parameters,
                "wait_timeout": f"{self.statement_wait_seconds}s",
                "on_wait_timeout": "CONTINUE",
                "disposition": "INLINE",
                "format": "JSON_ARRAY",
            },
        ).json()
        statement_id = str(answer.get("statement_id") or "")
        if not statement_id:
            raise PermanentExportError("the statement API answered without a statement_id")
        try:
            while _state(answer) in RUNNING_STATES:
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    raise TransientExportError(
                        f"statement {statement_id} still {_state(answer)} after "
                        f"{self.statement_timeout:g} s; cancelled"
                    )
                time.sleep(min(self.poll_seconds, remaining))
                answer = self._request("GET", f"{STATEMENTS_API}/{statement_id}").json()
        except ExportError:
            # Never leave a statement running behind a retry that will start another.
            self.cancel_statement(statement_id)
            raise
        return _finished(statement_id, answer)

    def cancel_statement(self, statement_id: str) -> bool:
        """Ask the warehouse to stop the statement; best effort, True if it accepted."""
        try:
            self._request("POST", f"{STATEMENTS_API}/{statement_id}/cancel")
        except ExportError:
            return False
        return True

    def _request(self, method: str, url: str, **kwargs: Any) -> httpx.Response:
        try:
            response = self._http.request(method, url, **kwargs)
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
