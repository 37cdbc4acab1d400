"""The nightly account pipeline as one Prefect flow.

    customers.csv + accounts.csv
      -> ingest (source)            raw.* as text, with lineage columns
      -> source freshness
      -> dbt staging + quarantine   stg_*, quarantine_* (history)
      -> dbt snapshots              SCD2 history of the clean records
      -> dbt intermediate           current versions, interest
      -> dbt marts                  account_summary (incremental), customer_profile
      -> expectations               Great Expectations suites (expectations/*.json)
      -> audit                      every check's verdict, quarantine rates
      -> publish                    CSV + Parquet + quality_report.json, all or nothing
      -> export                     the published tables into Databricks (if configured)
      -> Slack                      the quality summary, whatever the outcome

A delivery whose content, code and published files are exactly those of the last publish
skips from ingestion to the report: freshness is measured again, the other checks carried
over (flows/unchanged_delivery.py).

The flow orders the steps; each step is a task in its own module. A step that fails
stops the steps after it, and both the run's quality report and its final state name it.
Only one run at a time works on a warehouse: a second one waits for the first.
"""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

from prefect import flow, get_run_logger, task
from prefect.runtime import flow_run
from prefect.states import Failed

from flows import (
    artifacts,
    databricks_export,
    dbt_layers,
    expectations,
    ingest,
    publish,
    slack,
    unchanged_delivery,
    warehouse_stats,
)
from flows.checks import CheckResult
from flows.config import DBT_LAYERS, FLOW_NAME, WAREHOUSE_LOCK_TIMEOUT_SECONDS, PipelineSettings
from flows.errors import BlockingChecksFailed, ExportFailed, LedgerflowError
from flows.quality_report import QualityAudit
from flows.warehouse_lock import exclusive_warehouse


@task(name="check-unchanged-delivery")
def check_unchanged_delivery(
    settings: PipelineSettings,
) -> tuple[dict[str, str] | None, unchanged_delivery.PublishedRun | None]:
    """The delivery's content hashes, and the last publish if this run would only repeat it."""
    if not unchanged_delivery.covers_whole_pipeline(settings.select):
        return None, None
    hashes = unchanged_delivery.delivery_sha256(settings.input_dir)
    if settings.full_refresh:
        return hashes, None
    previous = unchanged_delivery.find_reusable_publish(
        settings.warehouse, settings.output_dir, hashes
    )
    return hashes, previous


@task(name="ingest-delivery")
def ingest_delivery(
    settings: PipelineSettings, known_sha256: dict[str, str] | None
) -> list[ingest.IngestedFile]:
    """Load the delivery's files into raw.*; content the warehouse already holds is skipped.

    Never retried: every failure here is the data's, and the same bytes fail the same way.
    """
    files = ingest.ingest_delivery(settings.input_dir, settings.warehouse, known_sha256)
    logger = get_run_logger()
    for loaded in files:
        verb = "loaded" if loaded.reloaded else "unchanged, not re-loaded"
        logger.info(
            "%s: %s rows %s (sha256 %s)", loaded.file_name, loaded.rows, verb, loaded.sha256[:12]
        )
        if loaded.extra_columns:
            logger.warning(
                "%s has extra columns, kept in raw: %s",
                loaded.file_name,
                ", ".join(loaded.extra_columns),
            )
    return files


@task(name="source-freshness")
def check_source_freshness(project: dbt_layers.DbtProject) -> list[CheckResult]:
    return project.source_freshness()


@task(name="source-freshness-unchanged-delivery")
def check_source_freshness_unchanged(settings: PipelineSettings) -> list[CheckResult]:
    return unchanged_delivery.source_freshness(settings.warehouse)


def build_layer(project: dbt_layers.DbtProject, layer: str) -> dbt_layers.LayerResult:
    """One dbt layer; its nodes appear as Prefect tasks of this flow run."""
    return project.build_layer(layer)


@task(name="count-quarantine")
def count_quarantine(settings: PipelineSettings) -> dict[str, tuple[int, dict[str, int]]]:
    return warehouse_stats.quarantine_counts(settings.warehouse)


@task(name="validate-expectations")
def validate_expectations(settings: PipelineSettings) -> list[CheckResult]:
    """The Great Expectations suites in expectations/, pushed down to DuckDB as SQL."""
    return expectations.run_expectation_suites(settings.warehouse)


@task(name="count-rows")
def count_rows(settings: PipelineSettings) -> dict[str, dict[str, int]]:
    return warehouse_stats.layer_row_counts(settings.warehouse)


@task(name="profile-key-columns")
def profile_key_columns(settings: PipelineSettings) -> dict[str, dict[str, int]]:
    return warehouse_stats.key_column_profile(settings.warehouse)


@task(name="publish-outputs")
def publish_outputs(settings: PipelineSettings, run_id: str, report: dict) -> list[Path]:
    return publish.publish_outputs(settings.warehouse, settings.output_dir, run_id, report)


@task(name="remember-published-run")
def remember_published_run(
    settings: PipelineSettings, audit: QualityAudit, input_sha256: dict[str, str]
) -> None:
    unchanged_delivery.remember_published_run(
        settings.warehouse,
        audit.run_id,
        settings.output_dir,
        input_sha256,
        audit.checks,
        audit.report(),
        audit.key_columns,
    )


@task(name="publish-report")
def publish_report(settings: PipelineSettings, report: dict) -> Path:
    return publish.replace_published_report(settings.output_dir, report)


@task(name="write-failed-report")
def write_failed_report(settings: PipelineSettings, report: dict) -> Path:
    return publish.write_failed_report(settings.output_dir, report)


@task(name="report-artifacts")
def create_report_artifacts(report: dict, published: bool) -> None:
    artifacts.create_report_artifacts(report, published)


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
            published = run_steps(settings, audit, run_at)
    except LedgerflowError as error:
        report = audit.report()
        write_failed_report(settings, report)
        create_report_artifacts(report, published=False)
        slack.notify_quality_summary(report, False, flow_run.name, flow_run.ui_url)
        stopped_at = audit.stopped_at or "start"
        get_run_logger().error("stopped at %s: %s", stopped_at, error)
        # The state's message names the step (the failure alert quotes it); callers of
        # the flow still get the error itself, with its exit code.
        return Failed(message=f"stopped at {stopped_at}: {error}", data=error)

    # Exports beyond the output folder come after the local publish, which they never undo.
    with audit.step("export"):
        outcomes = databricks_export.export_to_databricks(settings.output_dir, run_id)
        audit.exports = {outcome.table: export_summary(outcome) for outcome in outcomes}
    report = audit.report()
    publish.replace_published_report(settings.output_dir, report)
    create_report_artifacts(report, published=True)
    print(_summary(report, settings, published))
    slack.notify_quality_summary(report, True, flow_run.name, flow_run.ui_url)
    failed = [outcome for outcome in outcomes if outcome.status == "failed"]
    if failed:
        error = ExportFailed("; ".join(outcome.message for outcome in failed))
        get_run_logger().error("published locally, but an export failed: %s", error)
        return Failed(message=f"stopped at export (outputs published): {error}", data=error)
    return report


def export_summary(outcome: databricks_export.ExportOutcome) -> dict:
    return {
        "status": outcome.status,
        "target": outcome.target,
        "rows": outcome.rows,
        "message": outcome.message,
    }


def run_steps(settings: PipelineSettings, audit: QualityAudit, run_at: datetime) -> list[Path]:
    """The pipeline's steps in order; returns the published files.

    A blocking check stops the run right after the step that found it: a stale or mostly
    quarantined delivery must not reach the snapshots' history.
    """
    input_sha256, previous = check_unchanged_delivery(settings)
    if previous is not None:
        return reuse_unchanged_publish(settings, audit, previous)
    # From here the warehouse changes: until this run publishes, nothing can be reused.
    unchanged_delivery.forget_published_run(settings.warehouse)

    project = dbt_layers.DbtProject(
        settings.warehouse, run_at.strftime("%Y-%m-%d %H:%M:%S.%f"), settings.full_refresh
    )
    if "source" in settings.select:
        with audit.step("ingest"):
            for loaded in ingest_delivery(settings, input_sha256):
                audit.record_rows(loaded.table, delivered=loaded.rows)
        with audit.step("source_freshness"):
            audit.add_checks(check_source_freshness(project))
            stop_if_blocked(audit, "source_freshness")

    for layer in (layer for layer in DBT_LAYERS if layer in settings.select):
        with audit.step(layer):
            audit.add_checks(build_layer(project, layer).checks)
            if layer == "staging":
                for table, (rows_in, by_reason) in count_quarantine(settings).items():
                    audit.record_quarantine(table, rows_in, by_reason)
            stop_if_blocked(audit, layer)

    with audit.step("expectations"):
        audit.add_checks(validate_expectations(settings))

    with audit.step("audit"):
        for table, counts in count_rows(settings).items():
            audit.record_rows(table, **counts)
        audit.key_columns = profile_key_columns(settings)
        stop_if_blocked(audit, "audit")

    with audit.step("publish"):
        published = publish_outputs(settings, audit.run_id, audit.report())
        if input_sha256 is not None:
            remember_published_run(settings, audit, input_sha256)
    return published


def reuse_unchanged_publish(
    settings: PipelineSettings, audit: QualityAudit, previous: unchanged_delivery.PublishedRun
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
        audit.add_checks(check_source_freshness_unchanged(settings))
        stop_if_blocked(audit, "source_freshness")
    audit.add_checks(previous.carried_checks())
    with audit.step("publish"):
        report_path = publish_report(settings, audit.report())
    return [settings.output_dir / name for name in publish.EXPORTS] + [report_path]


def stop_if_blocked(audit: QualityAudit, step: str) -> None:
    if audit.blocking_failures:
        names = ", ".join(check.name for check in audit.blocking_failures[:10])
        raise BlockingChecksFailed(step, names)


def _summary(report: dict, settings: PipelineSettings, published: list[Path]) -> str:
    rows = report["metrics"]["rows"]
    lines = [
        f"Run {report['run_id']}: {report['status']} ({report['summary']['passed']}/{report['summary']['total_tests']} checks passed)"
    ]
    for table in ("customers", "accounts"):
        delivered = rows.get(table, {}).get("delivered", "-")
        quarantined = report["quarantine"].get(table, {})
        lines.append(
            f"  {table}: {delivered} rows in, {sum(quarantined.values())} quarantined {quarantined or ''}"
        )
    lines.append(
        f"  account_summary: {rows.get('accounts', {}).get('account_summary', 0)} rows published"
    )
    lines.append(
        f"  customer_profile: {rows.get('customers', {}).get('customer_profile', 0)} rows published"
    )
    lines.append(f"  outputs in {settings.output_dir}: {', '.join(p.name for p in published)}")
    return "\n".join(lines)
