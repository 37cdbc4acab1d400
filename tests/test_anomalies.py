"""The anomaly scan against a run history in a real warehouse file.

Twenty nights of an ordinary nightly feed, with the noise such a feed has (volume within a
few percent, a change set that wanders, quarantine rates and null counts that jitter,
steps that are sometimes a third slower, deliveries an hour early or late), are recorded
one after the other with the pipeline's own `record_run`, each scanned first against the
nights before it: nothing may be raised (the false-positive check). Then one night each
with a real problem must be caught, and named with the right metric and subject. The
whole pipeline's use of the scan (report, Slack, blocking, the recorded failed run) is in
test_run_history.py.
"""

from __future__ import annotations

import json
import random
from datetime import datetime, timedelta

import duckdb
import pytest

from flows.config import ANOMALY_RULES_VAR, anomaly_rules
from flows.quality.anomalies import scan_for_anomalies
from flows.quality.history import RunRecord, record_run

ACCOUNTS_COLUMNS = ("accountid", "customerid", "branchcode", "balance", "accounttype")
CUSTOMERS_COLUMNS = ("customerid", "name", "hasloan")
# One ordinary night: (metric, subject) -> value.
ORDINARY = {
    ("rows_delivered", "accounts"): 10_000,
    ("rows_delivered", "customers"): 4_000,
    ("rows_published", "account_summary"): 9_100,
    ("rows_published", "customer_profile"): 3_700,
    ("change_set", "accounts"): 200,
    ("change_set", "customers"): 60,
    ("quarantine_rate", "accounts.invalid_balance"): 0.010,
    ("quarantine_rate", "accounts.unknown_customer"): 0.004,
    ("quarantine_rate", "customers.missing_customer_name"): 0.008,
    ("nulls", "raw.customers.customerid"): 3,
    ("duplicates", "raw.accounts.accountid"): 2,
    ("nulls", "stg_accounts.account_id"): 0,
    ("step_seconds", "ingest"): 2.0,
    ("step_seconds", "staging"): 12.0,
    ("step_seconds", "marts"): 6.0,
    ("step_seconds", "expectations"): 4.0,
}
FIRST_NIGHT = datetime(2026, 11, 1, 2, 30)


def noisy_night(rng: random.Random) -> dict[tuple[str, str], float]:
    night = {}
    for (metric, subject), value in ORDINARY.items():
        if metric in ("rows_delivered", "rows_published"):
            noisy = round(value * rng.gauss(1, 0.02))
        elif metric == "change_set":
            noisy = round(value * rng.uniform(0.6, 1.5))
        elif metric == "quarantine_rate":
            noisy = value * rng.uniform(0.7, 1.3)
        elif metric in ("nulls", "duplicates"):
            noisy = max(0, value + rng.choice([-2, -1, 0, 0, 1, 2]))
        else:  # seconds: now and then a third slower, a busy machine
            noisy = value * rng.uniform(0.9, 1.1) * (1.33 if rng.random() < 0.15 else 1)
        night[(metric, subject)] = noisy
    return night


def record(con, number: int, run_at: datetime, metrics, columns=None) -> None:
    record_run(
        con,
        RunRecord(
            run_id=f"night-{number:02d}",
            run_at=run_at,
            outcome="passed",
            published=True,
            processed_delivery=True,
            metrics=metrics,
            delivered_columns=columns
            or {"accounts.csv": ACCOUNTS_COLUMNS, "customers.csv": CUSTOMERS_COLUMNS},
        ),
    )


@pytest.fixture
def history(tmp_path):
    """A warehouse holding twenty noisy nights, each of which raised nothing when scanned;
    returns the connection, tonight's stamp and an ordinary night for tonight."""
    rng = random.Random(20261201)
    con = duckdb.connect(str(tmp_path / "warehouse.duckdb"))
    run_at = FIRST_NIGHT
    columns = {"accounts.csv": ACCOUNTS_COLUMNS, "customers.csv": CUSTOMERS_COLUMNS}
    raised = {}
    for number in range(20):
        night = noisy_night(rng)
        scan = scan_for_anomalies(con, run_at, night, columns)
        if scan.anomalies:
            raised[number] = [a.message for a in scan.anomalies]
        record(con, number, run_at, {**night, **scan.measured()})
        run_at += timedelta(hours=24 + rng.uniform(-1, 1))
    assert raised == {}, "an ordinary night was called unusual"
    # Judged once there were enough nights: every metric of the last one, and its gap.
    assert scan.training_runs == 14 and scan.waiting == 0
    assert scan.judged == len(ORDINARY) + 1
    yield con, run_at, noisy_night(rng)
    con.close()


def raised_by(scan) -> set[tuple[str, str]]:
    return {(a.metric, a.subject) for a in scan.anomalies}


def test_an_ordinary_night_after_the_history_raises_nothing(history):
    con, run_at, tonight = history
    scan = scan_for_anomalies(con, run_at, tonight, {"accounts.csv": ACCOUNTS_COLUMNS})
    assert scan.anomalies == ()


def test_volume_down_80_percent(history):
    con, run_at, tonight = history
    tonight[("rows_delivered", "accounts")] *= 0.2
    tonight[("rows_published", "account_summary")] *= 0.2
    scan = scan_for_anomalies(con, run_at, tonight, {})
    assert raised_by(scan) == {
        ("rows_delivered", "accounts"),
        ("rows_published", "account_summary"),
    }
    (delivered,) = [a for a in scan.anomalies if a.metric == "rows_delivered"]
    assert 7_000 < delivered.expected_low < 10_000 < delivered.expected_high < 13_000
    assert delivered.value < delivered.expected_low
    shown = f"{tonight[('rows_delivered', 'accounts')]:,.0f}"
    assert delivered.message.startswith(f"rows_delivered of accounts is {shown} tonight")
    assert "below the expected range" in delivered.message
    assert not delivered.blocking and delivered.as_check().status == "warn"


def test_a_quarantine_rate_spike_in_one_reason(history):
    con, run_at, tonight = history
    tonight[("quarantine_rate", "accounts.invalid_balance")] = 0.08
    scan = scan_for_anomalies(con, run_at, tonight, {})
    assert raised_by(scan) == {("quarantine_rate", "accounts.invalid_balance")}
    assert "is 8.00% tonight" in scan.anomalies[0].message


def test_a_reason_never_seen_before_spiking(history):
    """A reason absent from every earlier night had zero rows then."""
    con, run_at, tonight = history
    tonight[("quarantine_rate", "accounts.negative_balance")] = 0.05
    scan = scan_for_anomalies(con, run_at, tonight, {})
    assert raised_by(scan) == {("quarantine_rate", "accounts.negative_balance")}


def test_a_null_spike_in_a_key_column(history):
    con, run_at, tonight = history
    tonight[("nulls", "raw.customers.customerid")] = 40
    scan = scan_for_anomalies(con, run_at, tonight, {})
    assert raised_by(scan) == {("nulls", "raw.customers.customerid")}


def test_fewer_nulls_than_usual_is_no_anomaly(history):
    """Nulls, duplicates, quarantine and seconds only matter going up."""
    con, run_at, tonight = history
    tonight[("nulls", "raw.customers.customerid")] = 0
    tonight[("step_seconds", "staging")] = 0.5
    assert scan_for_anomalies(con, run_at, tonight, {}).anomalies == ()


def test_a_step_made_slow(history):
    con, run_at, tonight = history
    tonight[("step_seconds", "staging")] = 60.0
    scan = scan_for_anomalies(con, run_at, tonight, {})
    assert raised_by(scan) == {("step_seconds", "staging")}
    assert "is 60.0 s tonight" in scan.anomalies[0].message


def test_a_column_added_and_one_removed(history):
    con, run_at, tonight = history
    columns = {
        "accounts.csv": ("accountid", "customerid", "balance", "accounttype", "opened_on"),
        "customers.csv": CUSTOMERS_COLUMNS,
    }
    scan = scan_for_anomalies(con, run_at, tonight, columns)
    assert raised_by(scan) == {("schema_change", "accounts.csv")}
    assert scan.anomalies[0].message == (
        "schema_change of accounts.csv: opened_on added, branchcode removed since the last delivery"
    )


def test_a_renamed_column_and_a_new_column_order(history):
    con, run_at, tonight = history
    renamed = ("accountid", "customerid", "branch", "balance", "accounttype")
    reordered = ("name", "customerid", "hasloan")
    scan = scan_for_anomalies(
        con, run_at, tonight, {"accounts.csv": renamed, "customers.csv": reordered}
    )
    assert [a.message for a in scan.anomalies] == [
        "schema_change of accounts.csv: branchcode renamed to branch since the last delivery"
    ]


def test_a_four_day_gap_since_the_previous_delivery(history):
    con, run_at, tonight = history
    scan = scan_for_anomalies(con, run_at + timedelta(days=3), tonight, {})
    assert raised_by(scan) == {("hours_since_previous_delivery", "delivery")}
    (gap,) = scan.anomalies
    assert 95 < gap.value < 98 and gap.expected_high < 96


def test_a_blocking_rule_blocks(history, monkeypatch):
    con, run_at, tonight = history
    monkeypatch.setenv(
        ANOMALY_RULES_VAR,
        json.dumps({"rows_delivered": {"blocking": True}, "schema_change": {"blocking": True}}),
    )
    tonight[("rows_delivered", "customers")] *= 0.2
    tonight[("step_seconds", "marts")] = 60.0
    columns = {"customers.csv": ("customerid", "name")}
    scan = scan_for_anomalies(con, run_at, tonight, columns)
    blocking = {(a.metric, a.subject): a.as_check().blocking for a in scan.anomalies}
    assert blocking == {
        ("rows_delivered", "customers"): True,
        ("schema_change", "customers.csv"): True,
        ("step_seconds", "marts"): False,
    }


def test_no_judgement_before_the_minimum_history(tmp_path):
    rng = random.Random(7)
    with duckdb.connect(str(tmp_path / "warehouse.duckdb")) as con:
        run_at = FIRST_NIGHT
        for number in range(6):
            record(con, number, run_at, noisy_night(rng))
            run_at += timedelta(days=1)
        tonight = {**noisy_night(rng), ("rows_delivered", "accounts"): 1}
        scan = scan_for_anomalies(con, run_at, tonight, {})
    assert scan.anomalies == () and scan.judged == 0
    assert scan.waiting == len(ORDINARY) + 1


def test_failed_and_unchanged_runs_are_not_the_norm(history):
    """Only published runs that processed a delivery train the scan."""
    con, run_at, tonight = history
    for number, (published, processed) in enumerate([(False, True), (True, False)], start=50):
        record_run(
            con,
            RunRecord(
                run_id=f"odd-{number}",
                run_at=run_at - timedelta(minutes=number),
                outcome="failed" if not published else "passed",
                published=published,
                processed_delivery=processed,
                metrics={("rows_delivered", "accounts"): 5},
            ),
        )
    scan = scan_for_anomalies(con, run_at, tonight, {})
    assert scan.anomalies == ()


def record_scanned(con, run_id: str, run_at: datetime, night, scan, published=True) -> None:
    """A run as the pipeline records it: what it measured and the anomalies it raised."""
    record_run(
        con,
        RunRecord(
            run_id=run_id,
            run_at=run_at,
            outcome="warned" if published else "failed",
            published=published,
            processed_delivery=True,
            metrics={**night, **scan.measured()},
            delivered_columns={
                "accounts.csv": ACCOUNTS_COLUMNS,
                "customers.csv": CUSTOMERS_COLUMNS,
            },
            anomalies=tuple(a.recorded() for a in scan.anomalies),
        ),
    )


@pytest.mark.parametrize("published", [True, False], ids=["warning", "blocked-unpublished"])
def test_a_cleared_anomaly_is_resolved_once(history, published):
    """Raised by one run (published with a warning, or blocked and unpublished), back in
    band the next (a fixed delivery an hour later): resolved in that run's section, and not
    again in the run after."""
    con, run_at, spike = history
    spike[("quarantine_rate", "accounts.invalid_balance")] = 0.08
    raised = scan_for_anomalies(con, run_at, spike, {})
    assert raised_by(raised) == {("quarantine_rate", "accounts.invalid_balance")}
    assert raised.resolved == ()
    record_scanned(con, "spike", run_at, spike, raised, published)

    rng = random.Random(5)
    calm = {**noisy_night(rng), ("quarantine_rate", "accounts.invalid_balance"): 0.012}
    cleared = scan_for_anomalies(con, run_at + timedelta(hours=1), calm, {})
    assert cleared.anomalies == ()
    (resolved,) = cleared.section()["resolved"]
    low, high = cleared.bands[("quarantine_rate", "accounts.invalid_balance")]
    assert resolved == {
        "metric": "quarantine_rate",
        "subject": "accounts.invalid_balance",
        "value": 0.012,
        "expected_low": low,
        "expected_high": high,
        "raised_in_run": "spike",
        "message": (
            "quarantine_rate of accounts.invalid_balance is back to 1.20% tonight, in the "
            f"expected range of at most {high:.2%}, after an anomaly in run spike"
        ),
    }
    record_scanned(con, "calm", run_at + timedelta(hours=1), calm, cleared)

    later = scan_for_anomalies(con, run_at + timedelta(hours=2), noisy_night(rng), {})
    assert later.anomalies == () and later.resolved == ()


def test_an_anomaly_still_out_or_not_judged_is_not_resolved(history):
    con, run_at, spike = history
    spike[("step_seconds", "staging")] = 60.0
    spike[("nulls", "raw.customers.customerid")] = 40
    raised = scan_for_anomalies(con, run_at, spike, {})
    record_scanned(con, "spike", run_at, spike, raised)
    tonight = dict(noisy_night(random.Random(9)))
    tonight[("step_seconds", "staging")] = 60.0  # still slow
    del tonight[("nulls", "raw.customers.customerid")]  # not measured tonight
    scan = scan_for_anomalies(con, run_at + timedelta(days=1), tonight, {})
    assert raised_by(scan) == {("step_seconds", "staging")}
    assert scan.resolved == ()


def test_a_schema_change_is_never_resolved(history):
    """The changed columns are the new normal: the next delivery with them raises nothing
    and resolves nothing."""
    con, run_at, tonight = history
    columns = {"accounts.csv": (*ACCOUNTS_COLUMNS, "opened_on"), "customers.csv": CUSTOMERS_COLUMNS}
    raised = scan_for_anomalies(con, run_at, tonight, columns)
    assert raised_by(raised) == {("schema_change", "accounts.csv")}
    record_run(
        con,
        RunRecord(
            run_id="new-column",
            run_at=run_at,
            outcome="warned",
            published=True,
            processed_delivery=True,
            metrics=tonight,
            delivered_columns=columns,
            anomalies=tuple(a.recorded() for a in raised.anomalies),
        ),
    )
    scan = scan_for_anomalies(
        con, run_at + timedelta(days=1), noisy_night(random.Random(3)), columns
    )
    assert scan.anomalies == () and scan.resolved == ()


@pytest.mark.parametrize(
    ("setting", "message"),
    [
        ('{"row_count": {"blocking": true}}', "unknown metric 'row_count'"),
        ('{"nulls": {"sensitive": 3}}', "unknown field(s) sensitive for nulls"),
        ('{"nulls": {"direction": "sideways"}}', "direction of nulls must be up, down or both"),
        ("{nulls", "is not JSON"),
    ],
)
def test_a_wrong_rule_setting_is_named(setting, message):
    with pytest.raises(ValueError, match=rf"{ANOMALY_RULES_VAR}.*") as raised:
        anomaly_rules({ANOMALY_RULES_VAR: setting})
    assert message in str(raised.value)
