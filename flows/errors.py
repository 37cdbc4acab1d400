"""The errors a run can end with, each mapped to one CLI exit code."""

from __future__ import annotations


class LedgerflowError(Exception):
    """Base of the pipeline's own errors."""

    exit_code = 1


class InputError(LedgerflowError):
    """A delivery file that cannot be ingested: missing, not UTF-8, not CSV, bad header."""

    exit_code = 2

    def __init__(self, file: str, problem: str, line: int | None = None):
        self.file = file
        self.problem = problem
        self.line = line
        where = f"{file} line {line}" if line is not None else file
        super().__init__(f"{where}: {problem}")


class LayerFailed(LedgerflowError):
    """A dbt layer ended with errors; the layers after it did not run."""

    exit_code = 1

    def __init__(self, layer: str, detail: str, result: object | None = None):
        self.layer = layer
        self.result = result  # the layer's LayerResult, when dbt got far enough to give one
        super().__init__(f"dbt layer '{layer}' failed: {detail}")


class BlockingChecksFailed(LedgerflowError):
    """Checks at error severity failed: nothing was published."""

    exit_code = 1

    def __init__(self, step: str, detail: str):
        self.step = step
        super().__init__(f"blocking checks failed at {step}: {detail}")


class ExportFailed(LedgerflowError):
    """Published locally, but an export beyond the output folder failed."""

    exit_code = 3


class WarehouseBusy(LedgerflowError):
    """Another run held the warehouse for longer than this run would wait: nothing ran."""

    exit_code = 2

    def __init__(self, warehouse: str, holder: str, waited_seconds: float):
        self.warehouse = warehouse
        super().__init__(
            f"warehouse {warehouse} is in use by {holder}; gave up after "
            f"{waited_seconds:.0f} s (nothing was changed)"
        )
