"""The nightly account pipeline as one Prefect flow.

    customers.csv + accounts.csv
      -> ingest (source)            raw.* as text, with lineage columns
      -> source freshness
      -> dbt staging + quarantine   stg_*, quarantine_* (history)
      -> dbt snapshots              SCD2 history of the clean records
      -> dbt intermediate           current versions, interest
      -> dbt marts                  account_summary, customer_profile (versioned)
      -> expectations               Great Expectations suites (expectations/*.json)
      -> audit                      row counts, key-column profile, every check's verdict,
                                    tonight's metrics against the run history (anomalies)
      -> publish                    CSV + Parquet + quality_report.json, and the warehouse's
                                    changes: all or nothing
      -> dbt docs                   dbt_docs.html beside them, when the code changed
      -> export                     the published tables into Databricks (if configured)
      -> run history                what the run measured and how it ended (history.*),
                                    for every run that held the warehouse, failed ones too
      -> dashboard                  dashboard.html from that history, beside the report
      -> Slack                      the quality summary, whatever the outcome

Each step but source freshness carries Prefect's cache policy: a delivery whose content,
code and published files are exactly those of the last publish is the empty change set,
and its run finds every step's result in Prefect's cache (Cached in the UI), measures
freshness again and writes only its report (flows/steps/step_cache.py).

The flow only orders the steps; each step is a task next to its work in flows/steps/, and
each dbt layer a subflow of its own, its dbt nodes tasks inside it.
A run holds its warehouse and output folder from its first step to its last (another run
waits). A blocking check stops the run right after the step that found it; any stop before
the publish undoes the run's warehouse changes (flows/runtime/wap.py), so the next run
builds on the last published state. The quality report, the Slack summary and the run's
final state all name the step it stopped at.
"""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from prefect import Task, flow, get_run_logger
from prefect.runtime import deployment, flow_run
from prefect.states import Failed

from flows.config import (
    DBT_LAYERS,
    FLOW_NAME,
    FLOW_TIMEOUT_SECONDS,
    WAREHOUSE_LOCK_TIMEOUT_SECONDS,
    PipelineSettings,
)
from flows.errors import (
    BlockingChecksFailed,
    ExportFailed,
    InternalError,
    LedgerflowError,
    WarehouseBusy,
)
from flows.external.databricks import export_to_databricks
from flows.external.slack import notify_quality_summary
from flows.quality.anomalies import scan_run
from flows.quality.anomaly_events import emit_anomaly_events
from flows.quality.artifacts import create_report_artifacts
from flows.quality.dashboard import dashboard_location
from flows.quality.history import record_audited_run
from flows.quality.key_columns import key_column_profile
from flows.quality.report import QualityAudit, console_summary
from flows.runtime.run_lock import exclusive_run
from flows.runtime.run_url import flow_run_url
from flows.steps.audit import count_quarantine, count_rows
from flows.steps.dashboard import write_dashboard
from flows.steps.dbt_docs import write_dbt_docs
from flows.steps.dbt_layers import LAYER_STEPS, UNIT_TEST_STEPS, DbtProject
from flows.steps.expectations import validate_expectations
from flows.steps.freshness import check_source_freshness
from flows.steps.ingest import ingest_delivery
from flows.steps.publish import (
    PUBLISHED_DATA_FILES,
    publish_outputs,
    replace_published_report,
    write_failed_report,
)
from flows.steps.start import start_run, undo_unpublished_run
from flows.steps.step_cache import (
    code_changed_since_last_publish,
    content_sha256,
    remember_published_state,
    scan_delivery,
)


@flow(name=FLOW_NAME, log_prints=True, timeout_seconds=FLOW_TIMEOUT_SECONDS)
def account_summary_pipeline(
    input_dir: str | None = None,
    output_dir: str | None = None,
    warehouse: str | None = None,
    select: list[str] | None = None,
    full_refresh: bool = False,
    full_check: bool = False,
):
    """Run the account pipeline on one delivery and publish its outputs if every blocking check passes."""
    settings = PipelineSettings.from_params(
        input_dir, output_dir, warehouse, select, full_refresh, full_check
    )
    run_id = str(flow_run.get_id() or datetime.now(UTC).strftime("local-%Y%m%dT%H%M%S%f"))
    audit = QualityAudit(run_id, datetime.now(UTC))
    failure: LedgerflowError | None = None
    outcomes = []
    try:
        with exclusive_run(
            settings.warehouse,
            settings.output_dir,
            run_id,
            WAREHOUSE_LOCK_TIMEOUT_SECONDS,
            get_run_logger(),
        ):
            try:
                with audit.step("start"):
                    audit.run_at = start_run(settings.warehouse, settings.output_dir)
                with DbtProject.for_run(
                    settings, audit.run_at, check_whole_tables(settings)
                ) as dbt:
                    run_steps(settings, audit, dbt)
                    write_docs(settings, audit, dbt)
                # Exports beyond the output folder come after the local publish, which
                # they never undo.
                with audit.step("export"):
                    outcomes = export_to_databricks(settings.output_dir, run_id)
                    audit.record_exports(outcomes)
                with audit.step("report"):
                    replace_published_report(settings.output_dir, audit.report())
            # Every fault ends in a known state, a bug's too.
            except Exception as error:  # noqa: BLE001
                failure = as_run_error(error, audit)
                keep_known_state(settings, audit, failure)
            remember_and_show(settings, audit)
    except WarehouseBusy as error:
        failure = error
        audit.record_failure("start", str(error))
    return finish(settings, audit, failure, outcomes)


def run_steps(settings: PipelineSettings, audit: QualityAudit, dbt: DbtProject) -> list[Path]:
    """The pipeline's steps in order, up to the publish; returns the published files."""
    with audit.step("scan"):
        input_scans, key = scan_delivery(
            settings.input_dir,
            settings.output_dir,
            settings.warehouse,
            settings.select,
            settings.full_refresh or settings.full_check,
            audit.run_id,
        )
    if key.same_as_run is not None:
        get_run_logger().info(
            "delivery, code and published files unchanged since run %s: its steps' results "
            "are looked up in Prefect's cache; source freshness is measured again",
            key.same_as_run,
        )
        audit.reuse_results_of(key.same_as_run)

    if "source" in settings.select:
        with audit.step("ingest"):
            for loaded in run_step(
                audit,
                ingest_delivery,
                settings.input_dir,
                settings.warehouse,
                audit.run_at,
                input_scans,
                cache_key=key.key,
            ):
                audit.record_ingested(loaded)
            if input_scans is not None:
                audit.delivery_sha256 = content_sha256(input_scans)
        with audit.step("source_freshness"):
            audit.add_checks(check_source_freshness(settings.warehouse))
            stop_if_blocked(audit, "source_freshness")

    for layer in (layer for layer in DBT_LAYERS if layer in settings.select):
        with audit.step(layer):
            audit.record_layer(run_step(audit, LAYER_STEPS[layer], dbt, layer, cache_key=key.key))
            if dbt.has_unit_tests(layer):
                audit.record_layer(
                    run_step(audit, UNIT_TEST_STEPS[layer], dbt, layer, cache_key=key.code)
                )
            if layer == "staging":
                quarantine = run_step(
                    audit, count_quarantine, settings.warehouse, cache_key=key.key
                )
                for table, counted in quarantine.items():
                    audit.record_quarantine(table, counted.rows_in, counted.by_reason)
                    audit.quarantine_keys[table] = counted.keys_by_reason
            stop_if_blocked(audit, layer)

    with audit.step("expectations"):
        audit.add_checks(
            run_step(audit, validate_expectations, settings.warehouse, cache_key=key.key)
        )

    with audit.step("audit"):
        row_counts = run_step(audit, count_rows, settings.warehouse, cache_key=key.key)
        for table, counts in row_counts.items():
            audit.record_rows(table, **counts)
        audit.key_columns = key_column_profile(audit.quarantine, audit.checks)
        if audit.processed_delivery:  # tonight's delivery against the run history
            audit.record_anomaly_scan(scan_run(settings.warehouse, audit))
        stop_if_blocked(audit, "audit")

    with audit.step("publish"):
        published = run_step(
            audit,
            publish_outputs,
            settings.warehouse,
            settings.output_dir,
            audit.run_id,
            audit.run_at,
            audit.report(),
            cache_key=key.key,
        )
        audit.published = True
        if key.key is not None and publish_outputs.name not in audit.cached_steps:
            remember_published_state(
                settings.warehouse,
                audit.run_id,
                settings.output_dir,
                content_sha256(input_scans),
                key.key,
            )
    return published


def write_docs(settings: PipelineSettings, audit: QualityAudit, dbt: DbtProject) -> None:
    """dbt's docs beside the published dashboard, while dbt still holds the warehouse (the
    catalog reads it): a courtesy, which never changes the run's outcome."""
    if not audit.published:
        return
    try:
        write_dbt_docs(dbt, settings.output_dir)
    except Exception:  # noqa: BLE001
        get_run_logger().exception("could not write dbt's docs")


def run_step(audit: QualityAudit, step: Task, *args: Any, **kwargs: Any) -> Any:
    """Run one of the run's tasks and return its result; the audit notes a step whose
    result came from Prefect's cache (flows/steps/step_cache.py)."""
    state = step(*args, return_state=True, **kwargs)
    if state.name == "Cached":
        audit.cached_steps.append(step.name)
    return state.result()


def check_whole_tables(settings: PipelineSettings) -> bool:
    """Every check on whole tables (else on tonight's change set): asked for, or a full
    refresh, or code that changed since the last publish."""
    if settings.full_check or settings.full_refresh:
        return True
    return code_changed_since_last_publish(settings.warehouse)


def remember_and_show(settings: PipelineSettings, audit: QualityAudit) -> None:
    """The run history, for every run that held the warehouse, then the dashboard drawn
    from it: courtesies like the report of a failed run, which never change an outcome.
    The audit names the dashboard once it is written, for the summaries that follow."""

    def show() -> None:
        audit.dashboard = write_dashboard(settings.warehouse, settings.output_dir, audit)

    for what, courtesy in (
        ("record the run in the run history", lambda: record_audited_run(
            settings.warehouse, audit, deployment.name
        )),
        ("write the dashboard", show),
    ):  # fmt: skip
        try:
            courtesy()
        except Exception:  # noqa: BLE001
            get_run_logger().exception("could not %s", what)


def stop_if_blocked(audit: QualityAudit, step: str) -> None:
    if audit.blocking_failures:
        names = ", ".join(check.name for check in audit.blocking_failures[:10])
        raise BlockingChecksFailed(step, names)


def as_run_error(error: Exception, audit: QualityAudit) -> LedgerflowError:
    """The error the run ends with: the pipeline's own, or an internal error naming the
    step for anything else (a bug, a disk or database error)."""
    step = audit.stopped_at or "start"
    if isinstance(error, LedgerflowError):
        return error
    get_run_logger().exception("internal error at %s", step)
    return InternalError(step, error)


def keep_known_state(
    settings: PipelineSettings, audit: QualityAudit, failure: LedgerflowError
) -> None:
    """Still holding the locks: undo the warehouse changes of a run that did not publish,
    and write the report where it belongs (over the published one if this run published)."""
    audit.record_failure(audit.stopped_at or "start", str(failure))
    if not audit.published:
        audit.published = undo_unpublished_run(
            settings.warehouse, settings.output_dir, audit.run_at
        )
    report = audit.report()
    try:
        if audit.published:
            replace_published_report(settings.output_dir, report)
        else:
            write_failed_report(settings.output_dir, report)
    # The report is a courtesy here: the failure is what matters.
    except Exception:  # noqa: BLE001
        get_run_logger().exception("could not write the report of the failed run")


def finish(
    settings: PipelineSettings,
    audit: QualityAudit,
    failure: LedgerflowError | None,
    outcomes: list,
):
    """Artifacts, the console summary and Slack for every outcome; the run's final state."""
    report = audit.report()
    logger = get_run_logger()
    for courtesy in (
        lambda: create_report_artifacts(report, audit.published, audit.dashboard),
        lambda: emit_anomaly_events(report, logger),
        lambda: notify_quality_summary(
            report, audit.published, flow_run.name, flow_run_url(), audit.dashboard
        ),
    ):
        try:
            courtesy()
        except Exception:  # artifacts and Slack never change an outcome
            logger.exception("could not tell the world about this run")
    if failure is None:
        failed = [outcome for outcome in outcomes if outcome.status == "failed"]
        if failed:
            failure = ExportFailed("; ".join(outcome.message for outcome in failed))
            audit.stopped_at = "export"
    if audit.published:
        published = [settings.output_dir / name for name in PUBLISHED_DATA_FILES]
        print(console_summary(report, settings.output_dir, published, audit.dashboard))
    elif audit.dashboard is not None:
        print(
            f"Run {audit.run_id} published nothing; dashboard: {dashboard_location(audit.dashboard)}"
        )
    if failure is None:
        return report
    where = audit.stopped_at or "start"
    if audit.published:
        where += " (outputs published)"
    logger.error("stopped at %s: %s", where, failure)
    # The state's message names the step (the failure alert quotes it); callers of the
    # flow still get the error itself, with its exit code.
    return Failed(message=f"stopped at {where}: {failure}", data=failure)
