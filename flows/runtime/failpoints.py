"""Failpoints: faults a test can ask for at a named step of a real run.

`LEDGERFLOW_FAILPOINTS="marts=kill"` makes a run kill itself with SIGKILL when the marts
step has done its work; `=raise` raises an unexpected exception there (an internal
error); `=block` fails a blocking check there; `=wait` holds the run there until the file
named by `LEDGERFLOW_FAILPOINT_RELEASE` exists (so a test can overlap two runs for
certain, not by timing). Comma-separated for several steps. Unset
(always, in production), every failpoint is one dictionary lookup that finds nothing.
They let the tests show that a run stopped at any step, however it stopped, leaves the
warehouse and the published files as the last good run left them.
"""

from __future__ import annotations

import os
import signal
import time
from pathlib import Path

ENV = "LEDGERFLOW_FAILPOINTS"
RELEASE_ENV = "LEDGERFLOW_FAILPOINT_RELEASE"
ACTIONS = ("kill", "raise", "block", "wait")


class FailpointRaised(RuntimeError):
    """The unexpected exception a `raise` failpoint stands for."""


def failpoint_action(step: str) -> str | None:
    """The action set for `step`, if any; `kill`, `raise` and `wait` are carried out here."""
    spec = os.environ.get(ENV)
    if not spec:
        return None
    actions = dict(part.split("=", 1) for part in spec.split(",") if "=" in part)
    action = actions.get(step)
    if action == "kill":
        os.kill(os.getpid(), signal.SIGKILL)
    if action == "raise":
        raise FailpointRaised(f"failpoint at {step}")
    if action == "wait":
        release = Path(os.environ[RELEASE_ENV])
        while not release.exists():
            time.sleep(0.05)
    return action
