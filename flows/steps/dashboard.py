"""The dashboard file, written last with every run: beside the published files, or for a
run that did not publish, beside its failed report (flows/quality/dashboard.py draws it)."""

from __future__ import annotations

from pathlib import Path

from prefect import task

from flows.quality.dashboard import DASHBOARD_NAME, RUNS_SHOWN, Tonight, render_dashboard
from flows.quality.history import recent_history
from flows.quality.report import QualityAudit
from flows.runtime import wap
from flows.runtime.dbt_parse import parsed_manifest_file
from flows.runtime.run_url import flow_run_url
from flows.runtime.warehouse import connect
from flows.steps.audit import LAYER_RELATIONS
from flows.steps.dbt_docs import DOCS_NAME
from flows.steps.publish import FAILED_DIR_NAME, PUBLISHED_DATA_FILES


@task(name="write-dashboard")
def write_dashboard(warehouse: Path, output_dir: Path, audit: QualityAudit) -> Path:
    with connect(warehouse) as con:
        history = recent_history(con, RUNS_SHOWN)
    folder = output_dir if audit.published else output_dir / FAILED_DIR_NAME
    tonight = Tonight(
        report=audit.report(),
        published=audit.published,
        bands=audit.anomaly_scan.bands if audit.anomaly_scan else {},
        quarantine_keys=audit.quarantine_keys,
        rows_by_relation={
            relation.split(".")[-1]: audit.rows[table][label]
            for table, layers in LAYER_RELATIONS.items()
            for label, relation in layers.items()
            if label in audit.rows.get(table, {})
        },
        published_files=PUBLISHED_DATA_FILES,
        run_url=flow_run_url(),  # the address Slack's summary links to
        # Docs are written with a publish: a failed run's folder has none to link.
        docs=DOCS_NAME if (folder / DOCS_NAME).is_file() else None,
    )
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / DASHBOARD_NAME
    wap.write_durably(path, render_dashboard(history, tonight, parsed_manifest_file(warehouse)))
    return path
