"""The unit the quality report counts: one dbt test, freshness check or expectation."""

from __future__ import annotations

from dataclasses import dataclass

from flows.runtime.text import plain_text


@dataclass(frozen=True)
class CheckResult:
    name: str
    model: str
    kind: str  # dbt_test, unit_test, source_freshness, expectation, quarantine_rate,
    # anomaly, delivery
    status: str  # pass, warn or fail
    severity: str  # error (blocks publishing) or warn
    message: str = ""  # one line: a table cell in the report, a bullet in Slack
    failures: int | None = None  # failing rows, where the check counts rows

    def __post_init__(self):
        # dbt's messages come coloured for a terminal, and a test's name or message may
        # quote delivered values: every reader downstream gets plain text.
        for text in ("name", "model", "message"):
            object.__setattr__(self, text, plain_text(getattr(self, text)))

    @property
    def blocking(self) -> bool:
        return self.status == "fail" and self.severity == "error"
