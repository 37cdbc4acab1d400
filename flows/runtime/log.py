"""The logger a step writes to: the Prefect run's when there is one, else the module's.

Steps are Prefect tasks, and tests also call their functions directly (`task.fn(...)`),
outside any run; both should log the same lines.
"""

from __future__ import annotations

import logging

from prefect.exceptions import MissingContextError
from prefect.logging import get_run_logger


def step_logger(name: str) -> logging.Logger | logging.LoggerAdapter:
    try:
        return get_run_logger()
    except MissingContextError:
        return logging.getLogger(name)
