"""The unit the quality report counts: one dbt test, freshness check or expectation."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class CheckResult:
    name: str
    model: str
    kind: str  # dbt_test, unit_test, source_freshness, expectation, quarantine_rate,
    # anomaly, delivery
    status: str  # pass, warn or fail
    severity: str  # error (blocks publishing) or warn
    message: str = ""
    failures: int | None = None  # failing rows, where the check counts rows

    @property
    def blocking(self) -> bool:
        return self.status == "fail" and self.severity == "error"
