"""Each anomaly raised or resolved tonight as a Prefect event, so that operators can route
or mute them per metric in Prefect's automations; the run's Slack summary lists them too.

Emitted inside the flow run: Prefect's events worker adds the flow run, flow and
deployment as related resources. An event is a courtesy: one that cannot be sent is a
warning, never a failed run.
"""

from __future__ import annotations

import logging

from prefect.events import emit_event

RAISED_EVENT = "ledgerflow.anomaly.raised"
RESOLVED_EVENT = "ledgerflow.anomaly.resolved"
PAYLOAD_KEYS = ("value", "expected_low", "expected_high", "message")


def emit_anomaly_events(report: dict, logger: logging.Logger | logging.LoggerAdapter) -> int:
    """One event per anomaly in the report's section; returns how many were sent."""
    scan = report["metrics"].get("anomalies", {})
    sent = 0
    for event, anomalies in (
        (RAISED_EVENT, scan.get("raised", [])),
        (RESOLVED_EVENT, scan.get("resolved", [])),
    ):
        for anomaly in anomalies:
            try:
                emitted = emit_event(
                    event=event,
                    resource=metric_resource(anomaly["metric"], anomaly["subject"]),
                    payload={
                        "run_id": report["run_id"],
                        **{key: anomaly.get(key) for key in PAYLOAD_KEYS},
                        **{
                            key: anomaly[key]
                            for key in ("blocking", "raised_in_run")
                            if key in anomaly
                        },
                    },
                )
            except Exception as error:  # noqa: BLE001
                logger.warning("could not emit %s for %s: %s", event, anomaly["message"], error)
                continue
            sent += emitted is not None
    return sent


def metric_resource(metric: str, subject: str) -> dict[str, str]:
    return {
        "prefect.resource.id": f"ledgerflow.metric.{metric}.{subject}",
        "prefect.resource.name": f"{metric} of {subject}",
        "ledgerflow.metric": metric,
        "ledgerflow.subject": subject,
    }
