"""The errors a run can end with, each mapped to one CLI exit code.

0 to 3 are the data contract's; 4 to 6 say that the run could not do its work for a
reason that is neither the data's nor a check's, so an operator knows where to look.
"""

from __future__ import annotations

from flows.runtime.text import plain_text

EXIT_PUBLISHED = 0
EXIT_BLOCKED = 1
EXIT_BAD_INPUT = 2
EXIT_EXPORT_FAILED = 3
EXIT_INTERNAL_ERROR = 4
EXIT_WAREHOUSE_BUSY = 5
EXIT_TIMED_OUT = 6

# What each exit code tells an operator (`ledgerflow --help` lists them from here).
EXIT_CODES = {
    EXIT_PUBLISHED: "published (checks passed or warned)",
    EXIT_BLOCKED: "blocking checks failed; nothing published",
    EXIT_BAD_INPUT: "bad input or usage; nothing published",
    EXIT_EXPORT_FAILED: "published, but an export beyond the output folder (Databricks) failed "
    "or passed its deadline",
    EXIT_INTERNAL_ERROR: "internal error, neither the data's nor a check's fault (a bug, a disk "
    "or database error); nothing published unless the message says so",
    EXIT_WAREHOUSE_BUSY: "gave up waiting for another run on the same warehouse or output "
    "folder; nothing ran",
    EXIT_TIMED_OUT: "timed out: stopped at its time limit wherever it was; the next run's "
    "start undoes what it left unpublished (or finishes a publish it had decided)",
}


class LedgerflowError(Exception):
    """Base of the pipeline's own errors."""

    exit_code = EXIT_BLOCKED

    def __init__(self, message: str):
        # The message ends up in the report, Slack and the run's state: it may quote dbt's
        # coloured output or a delivered value, so it is made plain here, once. Multi-line
        # text (dbt's compilation errors) keeps its lines.
        super().__init__(plain_text(message, multiline=True))


class InputError(LedgerflowError):
    """A delivery file that cannot be ingested: missing, not UTF-8, not CSV, bad header."""

    exit_code = EXIT_BAD_INPUT

    def __init__(self, file: str, problem: str, line: int | None = None):
        self.file = file
        self.problem = problem
        self.line = line
        where = f"{file} line {line}" if line is not None else file
        super().__init__(f"{where}: {problem}")


class LayerFailed(LedgerflowError):
    """A dbt layer ended with errors; the layers after it did not run."""

    exit_code = EXIT_BLOCKED

    def __init__(self, layer: str, detail: str, result: object | None = None):
        self.layer = layer
        self.result = result  # the layer's LayerResult, when dbt got far enough to give one
        super().__init__(f"dbt layer '{layer}' failed: {detail}")


class BlockingChecksFailed(LedgerflowError):
    """Checks at error severity failed: nothing was published."""

    exit_code = EXIT_BLOCKED

    def __init__(self, step: str, detail: str):
        self.step = step
        super().__init__(f"blocking checks failed at {step}: {detail}")


class ExportFailed(LedgerflowError):
    """Published locally, but an export beyond the output folder failed."""

    exit_code = EXIT_EXPORT_FAILED


class InternalError(LedgerflowError):
    """Something failed that is neither the data's fault nor a check's: a bug, a disk or
    database error, a dependency that broke. The run stopped at `step`."""

    exit_code = EXIT_INTERNAL_ERROR

    def __init__(self, step: str, error: BaseException):
        self.step = step
        detail = " ".join(str(error).split()) or "no message"
        super().__init__(
            f"internal error at {step}: {type(error).__name__}: {detail[:500]} "
            "(not the data's or a check's fault; the run's log has the traceback)"
        )


class WarehouseBusy(LedgerflowError):
    """Another run held the warehouse (or the output folder) for longer than this run would
    wait: nothing ran."""

    exit_code = EXIT_WAREHOUSE_BUSY

    def __init__(self, what: str, holder: str, waited_seconds: float, setting: str):
        self.what = what
        super().__init__(
            f"{what} is in use by {holder}; gave up waiting after {waited_seconds:.0f} s "
            f"({setting}); nothing was changed"
        )


class RunTimedOut(LedgerflowError):
    """The run passed its time limit and Prefect stopped it (its state is TimedOut). It did
    not get to undo its own work: the next run's start does, as after a crash."""

    exit_code = EXIT_TIMED_OUT

    def __init__(self, limit_seconds: float, setting: str):
        super().__init__(
            f"timed out: the run passed its time limit of {limit_seconds:.0f} s ({setting}) "
            "and was stopped; the next run's start undoes what it left unpublished"
        )
