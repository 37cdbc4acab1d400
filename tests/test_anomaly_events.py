"""Anomalies raised and resolved become Prefect events; emitting never fails a run."""

from __future__ import annotations

import logging

from flows.quality import anomaly_events

REPORT = {
    "run_id": "r-2",
    "metrics": {
        "anomalies": {
            "raised": [
                {"metric": "step_seconds", "subject": "staging", "value": 60.0,
                 "expected_low": None, "expected_high": 20.0, "blocking": False,
                 "message": "step_seconds of staging is 60.0 s tonight"},
            ],
            "resolved": [
                {"metric": "nulls", "subject": "raw.customers.customerid", "value": 3,
                 "expected_low": None, "expected_high": 9.0, "raised_in_run": "r-1",
                 "message": "nulls of raw.customers.customerid is back to 3 tonight"},
            ],
        }
    },
}  # fmt: skip


def test_each_anomaly_is_an_event_on_its_metric(monkeypatch):
    sent = []
    monkeypatch.setattr(anomaly_events, "emit_event", lambda **event: sent.append(event) or event)
    assert anomaly_events.emit_anomaly_events(REPORT, logging.getLogger("t")) == 2
    raised, resolved = sent
    assert raised["event"] == "ledgerflow.anomaly.raised"
    assert raised["resource"]["prefect.resource.id"] == "ledgerflow.metric.step_seconds.staging"
    assert raised["payload"]["expected_high"] == 20.0 and raised["payload"]["run_id"] == "r-2"
    assert resolved["event"] == "ledgerflow.anomaly.resolved"
    assert resolved["payload"]["raised_in_run"] == "r-1"


def test_an_event_that_cannot_be_sent_is_a_warning(monkeypatch, caplog):
    def unreachable(**event):
        raise ConnectionError("API unreachable")

    monkeypatch.setattr(anomaly_events, "emit_event", unreachable)
    with caplog.at_level(logging.WARNING):
        assert anomaly_events.emit_anomaly_events(REPORT, logging.getLogger("t")) == 0
    assert "could not emit ledgerflow.anomaly.raised" in caplog.text


def test_the_anomaly_automation_reacts_to_both_events_on_any_metric():
    from deployments.automations import _spec, anomaly_automation

    trigger = _spec(anomaly_automation("00000000-0000-0000-0000-000000000001"))["trigger"]
    assert trigger["match"] == {"prefect.resource.id": "ledgerflow.metric.*"}
    assert trigger["expect"] == ["ledgerflow.anomaly.raised", "ledgerflow.anomaly.resolved"]
    resource = anomaly_events.metric_resource("nulls", "raw.customers.customerid")
    assert resource["prefect.resource.id"].startswith("ledgerflow.metric.")
