"""Every message a person reads is plain text: dbt's colour codes and any control character
from dbt, DuckDB or the data are cleaned where a message is made, so the report, the
dashboard, Slack, the artifacts and the run's state never carry them."""

from __future__ import annotations

import re
from datetime import UTC, datetime

import duckdb
import pytest

from flows.errors import LayerFailed
from flows.external.databricks import ExportOutcome
from flows.external.slack import quality_summary
from flows.quality.anomalies import Anomaly, AnomalyScan
from flows.quality.artifacts import report_markdown
from flows.quality.checks import CheckResult
from flows.quality.dashboard import Tonight, render_dashboard
from flows.quality.history import RecentHistory
from flows.quality.report import QualityAudit
from flows.runtime.text import plain_text
from flows.steps.audit import count_quarantine
from flows.steps.dbt_layers import LayerResult

# Unicode's control characters but the newline, which multi-line text may hold.
CONTROL_BUT_NEWLINE = re.compile(r"[\x00-\x09\x0b-\x1f\x7f-\x9f]")


@pytest.mark.parametrize(
    ("text", "plain"),
    [
        (
            "\x1b[32mactual\x1b[0m differs from \x1b[31;1mexpected\x1b[0m",
            "actual differs from expected",
        ),
        ("\x1b[2K\x1b[1Gdone", "done"),  # erase line, cursor to column 1
        ("\x1b]8;;https://x.example\x07link\x1b]8;;\x1b\\ text", "link text"),  # OSC hyperlink
        ("\x1b]0;title\x1b\\after", "after"),  # OSC ended by ESC \
        ("\x1bPq#0\x1b\\after", "after"),  # DCS
        ("\x1b(Bascii \x1b7saved", "ascii saved"),  # charset, save cursor
        ("lone ESC at the end\x1b", "lone ESC at the end\\x1b"),
        ("half a sequence \x1b[", "half a sequence "),
        ("bell\x07 nul\x00 del\x7f", "bell\\x07 nul\\x00 del\\x7f"),
        ("C1 CSI \x9b31m and NEL \x85", "C1 CSI \\x9b31m and NEL \\x85"),
        ("CR\r and FF\x0c", "CR\\r and FF\\x0c"),
        ("one\nline\tonly", "one\\nline\\tonly"),
        ("printable: é → ✓ 🙂 ¤", "printable: é → ✓ 🙂 ¤"),
    ],
)
def test_plain_text_removes_escape_sequences_and_shows_control_characters(text, plain):
    assert plain_text(text) == plain
    assert plain_text(plain) == plain  # plain text stays as it is


def test_multiline_text_keeps_its_lines_and_tabs():
    text = "Compilation Error\n  in \x1b[1mmodel\x1b[0m\tstg_accounts\x07"
    assert plain_text(text, multiline=True) == "Compilation Error\n  in model\tstg_accounts\\x07"


# What `dbt build` gives a failing unit test (interest truncated, not rounded), shortened.
DBT_UNIT_TEST_MESSAGE = (
    "\x1b[32mactual\x1b[0m differs from \x1b[31mexpected\x1b[0m: \x1b[0;1m@@\x1b[0m "
    "\x1b[33m,\x1b[0m\x1b[0;1maccount_id\x1b[0m\x1b[33m,\x1b[0m\x1b[0;1mannual_interest_amount"
    "\x1b[0m \x1b[33m,\x1b[0mR01 \x1b[33m,\x1b[0m\x1b[31;1m0.15\x1b[34;1m→\x1b[32;1m0.14\x1b[0m"
)


def control_characters(value) -> list[str]:
    """Every control character in a string, or in the strings of a report, but newlines."""
    if isinstance(value, str):
        return CONTROL_BUT_NEWLINE.findall(value)
    if isinstance(value, dict):
        return [c for item in value.items() for part in item for c in control_characters(part)]
    if isinstance(value, list | tuple):
        return [c for item in value for c in control_characters(item)]
    return []


@pytest.fixture
def quarantine(tmp_path) -> dict:
    """What count_quarantine reads from staging, one quarantined id delivered with a BEL
    and a colour code in it."""
    warehouse = tmp_path / "warehouse.duckdb"
    with duckdb.connect(str(warehouse)) as con:
        con.execute("create schema staging")
        for table in ("customers", "accounts"):
            relation = f"staging.base_{table}_validated__current"
            con.execute(
                f"create table {relation} (raw_{table.removesuffix('s')}_id varchar, "
                "quarantine_reason varchar, _copies integer)"
            )
            con.executemany(
                f"insert into {relation} values (?, ?, 1)",
                [["C1", None], ["C\x072\x1b[31m", "missing_name"]],
            )
    return count_quarantine.fn(warehouse)


def test_no_reader_gets_a_control_character(quarantine):
    audit = QualityAudit("r-1", datetime(2026, 11, 24, 2, tzinfo=UTC))
    unit_test = CheckResult(
        name="interest_rounds_half_away_from_zero_exactly",
        model="int_accounts_joined_to_customers",
        kind="unit_test",
        status="fail",
        severity="error",
        message=DBT_UNIT_TEST_MESSAGE,
    )
    data_test = CheckResult(
        name="unique_stg_customers_customer_id",
        model="stg_customers",
        kind="dbt_test",
        status="fail",
        severity="error",
        message="Found 2 failing rows in stg_customers: customer_id [C\x00 1, C\x9b1\n]",
        failures=2,
    )
    audit.add_checks([data_test])
    with pytest.raises(LayerFailed) as raised, audit.step("marts"):
        detail = f"{unit_test.name}: {DBT_UNIT_TEST_MESSAGE}"
        raise LayerFailed(
            "marts", detail, result=LayerResult("marts", (unit_test,), {}, 1.0, (detail,))
        )
    audit.record_anomaly_scan(
        AnomalyScan(
            training_runs=2,
            judged=1,
            waiting=0,
            anomalies=(
                Anomaly(
                    "schema_change", "accounts.csv", 1.0, None, 0.0, None, 1, False,
                    "schema_change of accounts.csv: bal\x1b[2Kance\x7f added",
                ),
            ),
        )
    )  # fmt: skip
    audit.record_exports(
        [ExportOutcome("account_summary", None, "failed", None, "HTTP 400: \x1b[31mno\x1b[0m\x00")]
    )
    for table, counted in quarantine.items():
        audit.record_quarantine(table, counted.rows_in, counted.by_reason)
        audit.quarantine_keys[table] = counted.keys_by_reason
    report = audit.report()
    state_message = f"stopped at {audit.stopped_at}: {raised.value}"
    dashboard = render_dashboard(
        RecentHistory([], {}, {}),
        Tonight(report, False, {}, audit.quarantine_keys, {}, ()),
        manifest=None,
    )
    readers = {
        "report": report,
        "state message": state_message,
        "Slack": quality_summary(report, False, "brave-otter", None),
        "artifact": report_markdown(report, published=False),
        "dashboard": dashboard,
    }

    assert {name: control_characters(text) for name, text in readers.items()} == {
        name: [] for name in readers
    }
    for name in ("Slack", "artifact", "dashboard", "state message"):
        assert (
            "actual differs from expected: @@ ,account_id,annual_interest_amount" in (readers[name])
        ), name
    assert "C\\x00 1, C\\x9b1\\n" in readers["Slack"]
    assert "balance\\x7f added" in readers["dashboard"]
    assert "C\\x072" in readers["dashboard"]
    assert report["metrics"]["exports"]["account_summary"]["message"] == "HTTP 400: no\\x00"
