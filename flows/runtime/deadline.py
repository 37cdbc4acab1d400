"""Deadlines for calls to the world outside: one instant that a whole step (every request,
poll, retry and retry delay in it) must not pass.

The instant is on the monotonic clock, so a wall clock set back or forward cannot move it,
and the threads a step's tasks run in all read the same clock.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass

from prefect.context import TaskRunContext


@dataclass(frozen=True)
class Deadline:
    """`seconds` after it was set, named by the setting an operator changes it with."""

    seconds: float
    setting: str
    ends_at: float

    @classmethod
    def starting_now(cls, seconds: float, setting: str) -> Deadline:
        return cls(seconds, setting, time.monotonic() + seconds)

    def remaining(self) -> float:
        return max(0.0, self.ends_at - time.monotonic())

    def passed(self) -> bool:
        return self.remaining() <= 0

    def bound(self, seconds: float) -> float:
        """A timeout of `seconds`, cut to the time left."""
        return min(seconds, self.remaining())

    def ends_retries(self) -> bool:
        """Whether the deadline, rather than the retry count, ends the current task run: it
        has passed, or the retry Prefect would schedule next would start after it."""
        if self.passed():
            return True
        delay = next_retry_delay()
        return delay is not None and delay >= self.remaining()

    def __str__(self) -> str:
        return f"{self.seconds:g} s ({self.setting})"


def next_retry_delay() -> float | None:
    """The longest Prefect may wait before retrying the current task run (its delay for this
    retry, jitter at its largest); None outside a task run or when no retry is left."""
    context = TaskRunContext.get()
    if context is None:
        return None
    task = context.task
    retries_made = context.task_run.run_count - 1
    if retries_made >= task.retries:
        return None
    delays = task.retry_delay_seconds or 0
    if isinstance(delays, Sequence):
        delay = delays[min(retries_made, len(delays) - 1)]
    else:
        delay = delays
    # Prefect's clamped jitter never goes above delay x (1 + factor).
    return float(delay) * (1 + (task.retry_jitter_factor or 0))
