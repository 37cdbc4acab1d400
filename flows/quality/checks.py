"""The unit the quality report counts: one dbt test, freshness check or expectation."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass
from typing import Final

from flows.runtime.text import plain_text

CHANGE_SET: Final = "change set"
WHOLE_TABLE: Final = "whole table"
FIXTURES: Final = "fixtures"


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
    # What the check read: tonight's change set, or the whole table (or, for a unit test,
    # its fixtures); see dbt_project/macros/change_sets.sql.
    scope: str = WHOLE_TABLE

    def __post_init__(self):
        # dbt's messages come coloured for a terminal, and a test's name or message may
        # quote delivered values: every reader downstream gets plain text.
        for text in ("name", "model", "message"):
            object.__setattr__(self, text, plain_text(getattr(self, text)))

    @property
    def blocking(self) -> bool:
        return self.status == "fail" and self.severity == "error"


def scope_counts(report: dict) -> str:
    """'; 60 on tonight's change set, 35 on whole tables' for a summary line: a change
    set's checks prove less on their own than whole-table ones (their induction rests on
    the nights before, and on the weekly full check), so a reader should know the mix."""
    scopes = Counter(check["scope"] for check in report["metrics"].get("checks", []))
    if not scopes.get(CHANGE_SET):
        return ""
    return f"; {scopes[CHANGE_SET]} on tonight's change set, {scopes[WHOLE_TABLE]} on whole tables"


def scope_note(failure: dict) -> str:
    """' (tonight's change set)' after a failing check that read only that."""
    return " (tonight's change set)" if failure.get("scope") == CHANGE_SET else ""
