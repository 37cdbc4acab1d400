"""Ledgerflow's configuration: paths, file layouts, layers and thresholds, in one place.

Everything a run can be told comes in through `PipelineSettings`; everything else is a
constant here. Environment variables override the defaults where an operator needs to.
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping
from dataclasses import dataclass, field, fields, replace
from pathlib import Path

# A fresh Prefect home migrates its database on the first ephemeral start, which takes
# longer than Prefect's default 20 s wait on a small, busy machine.
os.environ.setdefault("PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS", "180")
# No telemetry (docs/operating.md, "Telemetry"), for this process and every one it starts:
# Prefect's ephemeral server, flow runs, dbt. An operator's own value wins. The server's
# analytics (its heartbeat to Prefect, which here also logged "Failed to send telemetry" on
# every start); Prefect's SDK events (new in 3.9, sent only where the server's analytics are
# on) and dbt's anonymous usage statistics (also off in dbt_project.yml) honour DO_NOT_TRACK.
os.environ.setdefault("PREFECT_SERVER_ANALYTICS_ENABLED", "false")
os.environ.setdefault("DO_NOT_TRACK", "1")

PROJECT_ROOT = Path(__file__).resolve().parent.parent
DBT_PROJECT_DIR = PROJECT_ROOT / "dbt_project"

DEFAULT_INPUT_DIR = PROJECT_ROOT / "data" / "sample"
DEFAULT_OUTPUT_DIR = PROJECT_ROOT / "output"
DEFAULT_WAREHOUSE = PROJECT_ROOT / "data" / "warehouse.duckdb"

FLOW_NAME = "account-summary-pipeline"

RAW_SCHEMA = "raw"

# dbt layers in build order; `--select` picks a subset, always run in this order.
DBT_LAYERS: dict[str, str] = {
    "staging": "path:models/staging",
    "snapshots": "path:models/snapshots",
    "intermediate": "path:models/intermediate",
    "marts": "path:models/marts",
}
# "source" is ingestion plus source freshness; it precedes the dbt layers.
LAYERS: tuple[str, ...] = ("source", *DBT_LAYERS)

# A quarantine rate above the first is a warning, above the second blocks publishing.
QUARANTINE_WARN_RATE = float(os.environ.get("LEDGERFLOW_QUARANTINE_WARN_RATE", "0.05"))
QUARANTINE_BLOCK_RATE = float(os.environ.get("LEDGERFLOW_QUARANTINE_BLOCK_RATE", "0.50"))

# DuckDB's memory ceiling in every connection of a run (dbt's included); above it DuckDB
# spills to disk where it can. The memory this process may use is the machine's, or the
# lowest limit of the memory cgroups it is in (its own and each one above it, whether a
# container's or one a test runs it in).
CGROUP_ROOTS = {"v2": Path("/sys/fs/cgroup"), "v1": Path("/sys/fs/cgroup/memory")}
CGROUP_LIMIT_FILES = {"v2": "memory.max", "v1": "memory.limit_in_bytes"}


def cgroup_memory_limit_files(proc_cgroup: Path = Path("/proc/self/cgroup")) -> tuple[Path, ...]:
    """The memory limit files of this process's cgroup and of every cgroup above it."""
    try:
        lines = proc_cgroup.read_text().splitlines()
    except OSError:
        return ()
    files = []
    for line in lines:
        _, controllers, path = line.split(":", 2)
        version = (
            "v2" if controllers == "" else "v1" if "memory" in controllers.split(",") else None
        )
        if version is None:
            continue
        folder = CGROUP_ROOTS[version] / path.lstrip("/")
        while True:
            files.append(folder / CGROUP_LIMIT_FILES[version])
            if folder == CGROUP_ROOTS[version] or folder == folder.parent:
                break
            folder = folder.parent
    return tuple(files)


def available_memory_bytes(cgroup_files: tuple[Path, ...] | None = None) -> int:
    """The machine's memory, or a lower cgroup limit: 'max' or an unset v1 limit (a number
    near 2**63) means none."""
    available = os.sysconf("SC_PHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
    for path in cgroup_memory_limit_files() if cgroup_files is None else cgroup_files:
        try:
            limit = path.read_text().strip()
        except OSError:
            continue
        if limit.isdigit():
            available = min(available, int(limit))
    return available


# The default is fixed, not a share of the machine: a run keeps to the same memory
# (2.5 GB for the whole process tree at 10M accounts, Prefect's API server included)
# wherever it runs, and DuckDB spills the rest to disk. Only a machine (or container) with
# less than that gets 80% of what it has.
DUCKDB_DEFAULT_MEMORY_LIMIT_MB = 1280
DUCKDB_MEMORY_LIMIT = os.environ.get("LEDGERFLOW_DUCKDB_MEMORY_LIMIT") or (
    f"{min(DUCKDB_DEFAULT_MEMORY_LIMIT_MB, available_memory_bytes() * 8 // 10 // 2**20)}MB"
)


def count_setting(environ: Mapping[str, str], var: str, default: int) -> int:
    """A positive whole number from the environment, else the default; ValueError naming
    the variable when it is set to anything else."""
    raw = environ.get(var)
    if not raw:
        return default
    if not raw.strip().isdigit() or int(raw) < 1:
        raise ValueError(f"{var}={raw!r} is not a positive whole number")
    return int(raw)


def seconds_setting(environ: Mapping[str, str], var: str, default: float) -> float:
    """A positive number of seconds from the environment, else the default; ValueError
    naming the variable when it is set to anything else."""
    raw = environ.get(var)
    if not raw:
        return default
    try:
        seconds = float(raw)
    except ValueError:
        seconds = float("nan")
    if not 0 < seconds < float("inf"):
        raise ValueError(f"{var}={raw!r} is not a positive number of seconds")
    return seconds


# Limits on a delivery file (flows/steps/delivery_csv.py), checked before anything whose
# size follows them is built: a file past one fails at ingestion as bad input, naming the
# file, the line and the limit. A bank's export has tens of columns and lines of a few
# hundred bytes, so the defaults leave every real file far inside them, while a malformed
# file costs an error message instead of the machine's memory.
# - columns: the header's width (every column is a reader buffer and a map entry);
# - line bytes: a record's length (DuckDB's own default, written here so that the limit is
#   a decision); it must stay above the 1 MiB chunks the content hash reads, which is what
#   lets that pass measure long lines exactly;
# - field bytes: one value's length.
CSV_MAX_COLUMNS_VAR = "LEDGERFLOW_CSV_MAX_COLUMNS"
CSV_MAX_LINE_BYTES_VAR = "LEDGERFLOW_CSV_MAX_LINE_BYTES"
CSV_MAX_FIELD_BYTES_VAR = "LEDGERFLOW_CSV_MAX_FIELD_BYTES"
CSV_MAX_COLUMNS = count_setting(os.environ, CSV_MAX_COLUMNS_VAR, 1_000)
CSV_MAX_LINE_BYTES = count_setting(os.environ, CSV_MAX_LINE_BYTES_VAR, 2_000_000)
CSV_MAX_FIELD_BYTES = count_setting(os.environ, CSV_MAX_FIELD_BYTES_VAR, 100_000)
# The buffer keeps DuckDB's ratio of 16 lines: a record longer than the buffer is silently
# dropped (unquoted) or misreported as an unterminated quote (quoted) by DuckDB 2.0.1.
CSV_BUFFER_BYTES = 16 * CSV_MAX_LINE_BYTES

# --- Run history and anomalies (flows/quality/history.py, flows/quality/anomalies.py) -----
# Every run is remembered in the warehouse's own schema, which a run's undo never touches:
# a failed run is part of the history too.
HISTORY_SCHEMA = "history"


@dataclass(frozen=True)
class AnomalyRule:
    """How one metric is judged against its trailing history.

    The expected band is median +/- sensitivity x spread, over the last `window` published
    runs that processed a delivery, once at least `min_history` of them hold the metric.
    The spread is the robust one (1.4826 x MAD, a standard deviation for normal noise) but
    never below `min_relative` x |median| nor `min_absolute`: a series that never varied has
    a MAD of 0, and without a floor its first wobble would be an alert. `direction` says
    which side matters ("up", "down" or "both"). A blocking rule's anomaly stops the
    publish; any other is a warning.
    """

    direction: str = "both"
    sensitivity: float = 4.0
    window: int = 14
    min_history: int = 7
    min_relative: float = 0.1
    min_absolute: float = 1.0
    blocking: bool = False


# One rule per metric; metrics are named in the history as (metric, subject).
DEFAULT_ANOMALY_RULES: dict[str, AnomalyRule] = {
    # Volume: a drop is a lost file or a broken extract, a surge a double delivery.
    "rows_delivered": AnomalyRule(direction="both", min_relative=0.05, min_absolute=10),
    "rows_published": AnomalyRule(direction="both", min_relative=0.05, min_absolute=10),
    # Records added plus records gone since the last delivery, per file.
    "change_set": AnomalyRule(direction="up", min_relative=0.5, min_absolute=50),
    # Share of a table's delivered rows quarantined for one reason.
    "quarantine_rate": AnomalyRule(direction="up", min_relative=0.25, min_absolute=0.005),
    "nulls": AnomalyRule(direction="up", min_relative=0.25, min_absolute=2),
    "duplicates": AnomalyRule(direction="up", min_relative=0.25, min_absolute=2),
    # Seconds per step: small steps jitter by a second or two on a busy machine.
    "step_seconds": AnomalyRule(direction="up", min_relative=0.25, min_absolute=3),
    # Hours since the last delivery that was processed: a nightly feed is ~24.
    "hours_since_previous_delivery": AnomalyRule(direction="up", min_relative=0.1, min_absolute=6),
}
# Columns added, removed or renamed against the last delivery: no statistics, any change.
SCHEMA_CHANGE_BLOCKING = False
# Overrides, one place for an operator: a JSON object of rule fields per metric, and
# "schema_change" for the schema rule, e.g.
# LEDGERFLOW_ANOMALY_RULES='{"rows_delivered": {"blocking": true}, "schema_change": {"blocking": true}}'
ANOMALY_RULES_VAR = "LEDGERFLOW_ANOMALY_RULES"


def anomaly_rules(
    environ: Mapping[str, str] = os.environ,
) -> tuple[dict[str, AnomalyRule], bool]:
    """The rules in force (defaults with the environment's overrides) and whether a schema
    change blocks; ValueError naming the variable on an unknown metric or field."""
    raw = environ.get(ANOMALY_RULES_VAR) or "{}"
    try:
        overrides = json.loads(raw)
    except json.JSONDecodeError as error:
        raise ValueError(f"{ANOMALY_RULES_VAR} is not JSON: {error}") from None
    rules = dict(DEFAULT_ANOMALY_RULES)
    schema_blocking = SCHEMA_CHANGE_BLOCKING
    known_fields = {f.name for f in fields(AnomalyRule)}
    for metric, changes in overrides.items():
        if metric == "schema_change":
            schema_blocking = bool(changes.get("blocking", schema_blocking))
            continue
        if metric not in rules:
            raise ValueError(
                f"{ANOMALY_RULES_VAR}: unknown metric {metric!r}; "
                f"choose from {', '.join([*rules, 'schema_change'])}"
            )
        unknown = set(changes) - known_fields
        if unknown:
            raise ValueError(
                f"{ANOMALY_RULES_VAR}: unknown field(s) {', '.join(sorted(unknown))} for "
                f"{metric}; choose from {', '.join(sorted(known_fields))}"
            )
        rules[metric] = replace(rules[metric], **changes)
        if rules[metric].direction not in ("up", "down", "both"):
            raise ValueError(f"{ANOMALY_RULES_VAR}: direction of {metric} must be up, down or both")
    return rules, schema_blocking


# One run at a time per warehouse: a second run waits this long for the first, then gives up.
WAREHOUSE_LOCK_TIMEOUT_SECONDS = float(
    os.environ.get("LEDGERFLOW_WAREHOUSE_LOCK_TIMEOUT_SECONDS", "3600")
)

# A run still going after this long ends TimedOut, which the failure automation reports;
# generous, so that only a run that hangs reaches it.
FLOW_TIMEOUT_VAR = "LEDGERFLOW_FLOW_TIMEOUT_SECONDS"
FLOW_TIMEOUT_SECONDS = seconds_setting(os.environ, FLOW_TIMEOUT_VAR, 4 * 3600.0)

# Slack: the webhook URL comes from the environment, else from the block `make deploy`
# saves, else from a Secret block; none of them configured means no Slack messages.
SLACK_WEBHOOK_URL_ENV = "SLACK_WEBHOOK_URL"
SLACK_WEBHOOK_BLOCK = "ledgerflow-slack"
SLACK_WEBHOOK_SECRET_BLOCK = "slack-webhook-url"
SLACK_TIMEOUT_SECONDS = 10  # one attempt
SLACK_RETRIES = 3  # after 1, 2 and 4 seconds
SLACK_BACKOFF_SECONDS = float(os.environ.get("LEDGERFLOW_SLACK_BACKOFF_SECONDS", "1"))
# The whole post, every attempt and delay included; past it the summary is given up with a
# warning. Without it a Slack that never answers cost 4 x 10 s + 7 s of delays per run.
# Read when the post starts, like the Databricks settings below.
SLACK_DEADLINE_VAR = "LEDGERFLOW_SLACK_DEADLINE_SECONDS"
SLACK_DEADLINE_DEFAULT_SECONDS = 30.0

# What `make deploy` creates on the Prefect server.
WORK_POOL = "ledgerflow-process"
FAILURE_AUTOMATION = "ledgerflow-run-failed-to-slack"
# Its sibling: each anomaly event a run sends (flows/quality/anomaly_events.py) to Slack.
ANOMALY_AUTOMATION = "ledgerflow-anomaly-to-slack"
SCHEDULE_TIMEZONE_ENV = "LEDGERFLOW_SCHEDULE_TIMEZONE"
DEFAULT_SCHEDULE_TIMEZONE = "UTC"


@dataclass(frozen=True)
class PipelineSettings:
    """What one run reads, writes and builds."""

    input_dir: Path = DEFAULT_INPUT_DIR
    output_dir: Path = DEFAULT_OUTPUT_DIR
    warehouse: Path = DEFAULT_WAREHOUSE
    select: tuple[str, ...] = field(default=LAYERS)
    full_refresh: bool = False
    # Every check on whole tables instead of tonight's change set (a weekly deployment
    # runs it; dbt_project/macros/change_sets.sql).
    full_check: bool = False

    @classmethod
    def from_params(
        cls,
        input_dir: str | Path | None = None,
        output_dir: str | Path | None = None,
        warehouse: str | Path | None = None,
        select: list[str] | tuple[str, ...] | None = None,
        full_refresh: bool = False,
        full_check: bool = False,
    ) -> PipelineSettings:
        chosen = tuple(select) if select else LAYERS
        unknown = [layer for layer in chosen if layer not in LAYERS]
        if unknown:
            raise ValueError(
                f"unknown layer(s) {', '.join(unknown)}; choose from {', '.join(LAYERS)}"
            )
        return cls(
            input_dir=Path(input_dir or DEFAULT_INPUT_DIR).resolve(),
            output_dir=Path(output_dir or DEFAULT_OUTPUT_DIR).resolve(),
            warehouse=Path(warehouse or DEFAULT_WAREHOUSE).resolve(),
            # Always in pipeline order, whatever order the caller listed them in.
            select=tuple(layer for layer in LAYERS if layer in chosen),
            full_refresh=full_refresh,
            full_check=full_check,
        )


# --- Databricks export (flows/external/databricks.py) -------------------------------------
# Read when an export starts, not at import, so a deployment's environment is the one used.
# The connection comes from the same variables dbt's `databricks` target reads
# (dbt_project/profiles.yml), or from a DatabricksCredentials block (host and token; the
# warehouse is always DATABRICKS_HTTP_PATH, /sql/1.0/warehouses/<id>).
DATABRICKS_HOST_VAR = "DATABRICKS_HOST"
DATABRICKS_TOKEN_VAR = "DATABRICKS_TOKEN"
DATABRICKS_HTTP_PATH_VAR = "DATABRICKS_HTTP_PATH"
DATABRICKS_BLOCK_VAR = "LEDGERFLOW_DATABRICKS_BLOCK"
DATABRICKS_BLOCK_DEFAULT = "ledgerflow-databricks"
# Tables land in <catalog>.<schema>.<table>; the Parquet files go through a volume of that
# schema, which must exist (CREATE VOLUME once, when the schema is set up).
DATABRICKS_CATALOG_VAR = "LEDGERFLOW_DATABRICKS_CATALOG"
DATABRICKS_CATALOG_DEFAULT = "main"
DATABRICKS_SCHEMA_VAR = "LEDGERFLOW_DATABRICKS_SCHEMA"
DATABRICKS_SCHEMA_DEFAULT = "ledgerflow"
DATABRICKS_VOLUME_VAR = "LEDGERFLOW_DATABRICKS_VOLUME"
DATABRICKS_VOLUME_DEFAULT = "exports"
# Transient failures are retried 3 times after 1, 2, 4 s (x backoff), with jitter so that
# many runs failing together do not retry in lockstep.
DATABRICKS_RETRIES = 3
DATABRICKS_BACKOFF_SECONDS = 1.0
DATABRICKS_RETRY_JITTER_FACTOR = 0.5
# A request's timeout is sized to what it carries: a base for the workspace to answer, plus
# the upload at the slowest throughput still taken for a working link (1 MB/s), so a 3 kB
# file waits 10 s, not the minutes a large one may need. A statement request adds the time
# the statement API holds it open (0 or 5..50 s). Then the bound on a statement's whole run,
# polls included, before it is cancelled; and the poll pace.
DATABRICKS_REQUEST_TIMEOUT_SECONDS = 10.0
DATABRICKS_MIN_UPLOAD_BYTES_PER_SECOND = 1_000_000
DATABRICKS_STATEMENT_WAIT_SECONDS = 30
DATABRICKS_STATEMENT_TIMEOUT_SECONDS = 600.0
DATABRICKS_POLL_SECONDS = 2.0
# One deadline for the whole export step, both tables (exported at the same time) and every
# request, poll, retry and retry delay: past it each table not loaded fails, naming it, so a
# workspace that accepts connections and never answers holds the run this long at most.
DATABRICKS_DEADLINE_VAR = "LEDGERFLOW_DATABRICKS_DEADLINE_SECONDS"
DATABRICKS_DEADLINE_DEFAULT_SECONDS = 300.0
# Polling a statement stops this long before the deadline, so that cancelling it still fits:
# a statement left running could replace the table after the run reported it not loaded.
DATABRICKS_CANCEL_RESERVE_SECONDS = 2.0
# The flow waits for the tables' task runs this long past the deadline: their own timeouts
# end them by the deadline, and recording their final states takes a moment more.
DATABRICKS_DEADLINE_GRACE_SECONDS = 5.0
