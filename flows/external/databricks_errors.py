"""What a failed Databricks call means for the export: worth a retry, or not.

TransientExportError: a timeout, a connection error, HTTP 429, 500, 503 or 504, an HTTP
error the SDK does not map to a status (502 from a proxy is one), a statement CANCELED (a
warehouse stopping does that) or still queued past its bound (a warehouse still starting).
PermanentExportError: any other HTTP 4xx (and 501), a statement that FAILED (a SQL error),
an answer that makes no sense. ExportDeadlinePassed: the deadline came first, never retried.

Every text made here has the token removed: the workspace's error messages may echo the
request, headers included.
"""

from __future__ import annotations

import requests
from databricks.sdk.errors import (
    DatabricksError,
    DeadlineExceeded,
    InternalError,
    TemporarilyUnavailable,
    TooManyRequests,
)
from databricks.sdk.errors.platform import STATUS_CODE_MAPPING

MAX_ERROR_TEXT = 300
REDACTED = "[REDACTED]"

# The SDK's error classes for the statuses that a retry can outlast.
TRANSIENT_API_ERRORS = (TooManyRequests, TemporarilyUnavailable, InternalError, DeadlineExceeded)


class ExportError(Exception):
    """An export to Databricks that did not happen."""


class TransientExportError(ExportError):
    """A failure that the same request may not meet again: worth a retry."""


class PermanentExportError(ExportError):
    """A failure that repeating the same request would meet again."""


class ExportDeadlinePassed(ExportError):
    """The export's deadline came first: no retry may start, whatever the failure was."""


def redact(text: str, secret: str | None) -> str:
    """The text with the secret replaced, wherever it appears."""
    return text.replace(secret, REDACTED) if secret else text


def export_error(what: str, error: Exception, token: str) -> ExportError:
    """The SDK's exception for the call `what` (e.g. "upload to /Volumes/..."), sorted."""
    if isinstance(error, TimeoutError) and isinstance(error.__cause__, Exception):
        error = error.__cause__  # the SDK's retries ran out (databricks_workspace.py stops them)
    if isinstance(error, requests.Timeout):  # before ConnectionError: ConnectTimeout is both
        return TransientExportError(redact(f"{what}: timed out ({type(error).__name__})", token))
    if isinstance(error, requests.ConnectionError):
        text = f"{what}: connection error ({type(error).__name__}: {error})"
        return TransientExportError(redact(text, token))
    if not isinstance(error, DatabricksError):
        return PermanentExportError(redact(f"{what}: {type(error).__name__}: {error}", token))
    status = _http_status(error)
    detail = f"{error.error_code or ''}: {str(error)[:MAX_ERROR_TEXT]}"
    text = redact(f"{what}: HTTP {status or 'error'} {detail}", token)
    # The SDK keeps no status code: a status it does not map ends as a bare DatabricksError.
    # Those are mostly 502s from a proxy in front of the workspace, which pass; a 4xx it does
    # not map costs three short retries at worst.
    if isinstance(error, TRANSIENT_API_ERRORS) or status is None:
        return TransientExportError(text)
    return PermanentExportError(text)


def _http_status(error: DatabricksError) -> int | None:
    """The HTTP status the SDK mapped the error from (it picks the class by status, or by a
    more precise error code whose class derives from the status's); None when unmapped."""
    for cls in type(error).__mro__:
        for status, mapped in STATUS_CODE_MAPPING.items():
            if cls is mapped:
                return status
    return None
