"""The nightly account pipeline as one Prefect flow.

    customers.csv + accounts.csv
      -> ingest (source)            raw.* as text, with lineage columns
      -> source freshness
      -> dbt staging + quarantine   stg_*, quarantine_* (history)
      -> dbt snapshots              SCD2 history of the clean records
      -> dbt intermediate           current versions, interest
      -> dbt marts                  account_summary (incremental), customer_profile
      -> expectations               Great Expectations suites (expectations/*.json)
      -> audit                      row counts, key-column profile, every check's verdict
      -> publish                    CSV + Parquet + quality_report.json, all or nothing
      -> export                     the published tables into Databricks (if configured)
      -> Slack                      the quality summary, whatever the outcome

A delivery whose content, code and published files are exactly those of the last publish
skips from freshness to the report, its other checks carried over.

The flow only orders the steps; each step is a task next to its work in flows/steps/.
A blocking check stops the run right after the step that found it (a stale or mostly
quarantined delivery must not reach the snapshots' history); the run's quality report and
its final state both name that step. Only one run at a time works on a warehouse.
"""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

from prefect import flow, get_run_logger
from prefect.runtime import flow_run
from prefect.states import Failed

from flows.config import DBT_LAYERS, FLOW_NAME, WAREHOUSE_LOCK_TIMEOUT_SECONDS, PipelineSettings
from flows.errors import BlockingChecksFailed, ExportFailed, LedgerflowError
from flows.external.databricks import export_to_databricks
from flows.external.slack import notify_quality_summary
from flows.quality.artifacts import create_report_artifacts
from flows.quality.key_columns import key_column_profile
from flows.quality.report import QualityAudit, console_summary
from flows.runtime.warehouse_lock import exclusive_warehouse
from flows.steps.audit import count_quarantine, count_rows
from flows.steps.dbt_layers import DbtProject
from flows.steps.expectations import validate_expectations
from flows.steps.freshness import check_source_freshness
from flows.steps.ingest import ingest_delivery
from flows.steps.publish import (
    PUBLISHED_DATA_FILES,
    publish_outputs,
    replace_published_report,
    write_failed_report,
)
from flows.steps.unchanged_delivery import (
    PublishedRun,
    check_unchanged_delivery,
    content_sha256,
    forget_published_run,
    remember_published_run,
)


@flow(name=FLOW_NAME, log_prints=True)
def account_summary_pipeline(
    input_dir: str | None = None,
    output_dir: str | None = None,
    warehouse: str | None = None,
    select: list[str] | None = None,
    full_refresh: bool = False,
):
    """Run the account pipeline on one delivery and publish its outputs if every blocking check passes."""
    settings = PipelineSettings.from_params(input_dir, output_dir, warehouse, select, full_refresh)
    run_at = datetime.now(UTC)
    run_id = str(flow_run.get_id() or run_at.strftime("local-%Y%m%dT%H%M%S%f"))
    audit = QualityAudit(run_id, run_at)

    try:
        with exclusive_warehouse(
            settings.warehouse, run_id, WAREHOUSE_LOCK_TIMEOUT_SECONDS, get_run_logger()
        ):
            published = run_steps(settings, audit)
    except LedgerflowError as error:
        return finish_unpublished(settings, audit, error)

    # Exports beyond the output folder come after the local publish, which they never undo.
    with audit.step("export"):
        outcomes = export_to_databricks(settings.output_dir, run_id)
        audit.record_exports(outcomes)
    report = audit.report()
    replace_published_report(settings.output_dir, report)
    create_report_artifacts(report, published=True)
    print(console_summary(report, settings.output_dir, published))
    notify_quality_summary(report, True, flow_run.name, flow_run.ui_url)
    failed = [outcome for outcome in outcomes if outcome.status == "failed"]
    if failed:
        error = ExportFailed("; ".join(outcome.message for outcome in failed))
        get_run_logger().error("published locally, but an export failed: %s", error)
        return Failed(message=f"stopped at export (outputs published): {error}", data=error)
    return report


def run_steps(settings: PipelineSettings, audit: QualityAudit) -> list[Path]:
    """The pipeline's steps in order; returns the published files."""
    input_scans, previous = check_unchanged_delivery(
        settings.input_dir,
        settings.output_dir,
        settings.warehouse,
        settings.select,
        settings.full_refresh,
    )
    if previous is not None:
        return republish_unchanged_delivery(settings, audit, previous)
    # From here the warehouse changes: until this run publishes, nothing can be reused.
    forget_published_run(settings.warehouse)

    project = DbtProject(
        settings.warehouse, audit.run_at.strftime("%Y-%m-%d %H:%M:%S.%f"), settings.full_refresh
    )
    if "source" in settings.select:
        with audit.step("ingest"):
            for loaded in ingest_delivery(settings.input_dir, settings.warehouse, input_scans):
                audit.record_rows(loaded.table, delivered=loaded.rows)
        with audit.step("source_freshness"):
            audit.add_checks(check_source_freshness(settings.warehouse))
            stop_if_blocked(audit, "source_freshness")

    for layer in (layer for layer in DBT_LAYERS if layer in settings.select):
        with audit.step(layer):
            audit.add_checks(project.build_layer(layer).checks)
            if layer == "staging":
                for table, (rows_in, by_reason) in count_quarantine(settings.warehouse).items():
                    audit.record_quarantine(table, rows_in, by_reason)
            stop_if_blocked(audit, layer)

    with audit.step("expectations"):
        audit.add_checks(validate_expectations(settings.warehouse))

    with audit.step("audit"):
        for table, counts in count_rows(settings.warehouse).items():
            audit.record_rows(table, **counts)
        audit.key_columns = key_column_profile(audit.quarantine, audit.checks)
        stop_if_blocked(audit, "audit")

    with audit.step("publish"):
        published = publish_outputs(
            settings.warehouse, settings.output_dir, audit.run_id, audit.report()
        )
        if input_scans is not None:
            remember_published_run(
                settings.warehouse,
                audit.run_id,
                settings.output_dir,
                content_sha256(input_scans),
                audit.checks,
                audit.report(),
                audit.key_columns,
            )
    return published


def republish_unchanged_delivery(
    settings: PipelineSettings, audit: QualityAudit, previous: PublishedRun
) -> list[Path]:
    """The delivery, the code and the published files are those of an earlier publish, so
    its data files stay and only the report is new: freshness, the one check that depends
    on the clock, is measured again; every other check is carried over."""
    get_run_logger().info(
        "delivery unchanged since run %s, and so are the code and the published files: "
        "re-checking source freshness and carrying over the other %s checks",
        previous.run_id,
        len(previous.checks),
    )
    audit.carry_over(previous.run_id, previous.rows, previous.quarantine, previous.key_columns)
    with audit.step("source_freshness"):
        audit.add_checks(check_source_freshness(settings.warehouse))
        stop_if_blocked(audit, "source_freshness")
    audit.add_checks(previous.carried_checks())
    with audit.step("publish"):
        report_path = replace_published_report(settings.output_dir, audit.report())
    return [settings.output_dir / name for name in PUBLISHED_DATA_FILES] + [report_path]


def stop_if_blocked(audit: QualityAudit, step: str) -> None:
    if audit.blocking_failures:
        names = ", ".join(check.name for check in audit.blocking_failures[:10])
        raise BlockingChecksFailed(step, names)


def finish_unpublished(settings: PipelineSettings, audit: QualityAudit, error: LedgerflowError):
    """A run that published nothing: its report beside the outputs, artifacts, Slack, and a
    Failed state whose message names the step (the failure alert quotes it)."""
    report = audit.report()
    write_failed_report(settings.output_dir, report)
    create_report_artifacts(report, published=False)
    notify_quality_summary(report, False, flow_run.name, flow_run.ui_url)
    stopped_at = audit.stopped_at or "start"
    get_run_logger().error("stopped at %s: %s", stopped_at, error)
    # Callers of the flow still get the error itself, with its exit code.
    return Failed(message=f"stopped at {stopped_at}: {error}", data=error)
