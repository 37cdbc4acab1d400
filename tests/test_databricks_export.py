"""The Databricks export against a workspace on loopback (tests/fake_databricks.py).

The published Parquet files come from flows/steps/publish.py's own export code, run on a small
warehouse holding marts tables of the contract's types. Each export runs inside a Prefect
flow on the session's test server, so each table is a real task run with real retries; the
delays are read both from the task runs' AwaitingRetry states (exact) and from when the
fake saw each attempt (measured, with a tolerance for Prefect's own round trips). The two
tables are exported at the same time, so faults meant for one table name it.
"""

from __future__ import annotations

import io
import itertools
import json
import logging
import re
import time
import uuid
from collections import Counter
from dataclasses import asdict
from pathlib import Path

import duckdb
import pyarrow.parquet as pq
import pytest
import requests.adapters
from fake_databricks import FakeDatabricks, RecordedRequest
from prefect import flow
from prefect.client.orchestration import get_client
from prefect.client.schemas.filters import (
    FlowRunFilter,
    FlowRunFilterId,
    LogFilter,
    LogFilterFlowRunId,
)
from prefect.client.schemas.sorting import LogSort
from prefect.logging.handlers import APILogWorker

from flows.external import databricks as databricks_export
from flows.external.databricks import (
    ARTIFACT_KEY,
    ExportOutcome,
    RetryPolicy,
    Timeouts,
    export_table,
    export_to_databricks,
    load_statement,
    resolve_settings,
    retry_on_transient,
    save_credentials_block_from_env,
)
from flows.external.databricks_errors import TransientExportError
from flows.external.databricks_workspace import sized_timeout, statement_wait
from flows.steps import publish

pytestmark = pytest.mark.usefixtures("prefect_harness")

TOKEN = "dapi-test-0123456789abcdef-secret"
WAREHOUSE_ID = "abc123def456"
RUN_ID = "7f0c6a52-run"
TABLES = ("account_summary", "customer_profile")
FAST = RetryPolicy(backoff_factor=0.05, jitter_factor=None)
QUICK = Timeouts(request_seconds=5, statement_wait_seconds=0, poll_seconds=0.01)


@pytest.fixture(scope="module")
def published(tmp_path_factory) -> Path:
    """The output folder of a small run: flows/steps/publish.py writes every file from marts and
    quarantine tables created with the contract's types."""
    root = tmp_path_factory.mktemp("published")
    warehouse = root / "warehouse.duckdb"
    with duckdb.connect(str(warehouse)) as con:
        con.execute("set TimeZone = 'UTC'")
        con.execute("create schema marts")
        con.execute("create schema staging")
        con.execute("""
            create table marts.account_summary as select * from (values
                ('A-1', 1::bigint, 14.50::decimal(18,2), 0.0100::decimal(6,4),
                 0.15::decimal(18,2), 14.65::decimal(18,2), timestamp '2026-01-31 02:30:00'),
                ('A-2', 2, 1000000000000000.00, 0.0250, 25000000000000.00,
                 1025000000000000.00, timestamp '2026-01-31 02:30:00'),
                ('=B', 2, 0.00, 0.0100, 0.00, 0.00, timestamp '2026-01-30 02:30:00')
            ) as t(account_id, customer_id, original_balance_amount, interest_rate_pct,
                   annual_interest_amount, new_balance_amount, calculated_at)
        """)
        con.execute("""
            create table marts.customer_profile as select * from (values
                (1::bigint, 'Ann Lee', false, 1::bigint, 0::bigint,
                 14.50::decimal(38,2), 0.15::decimal(38,2)),
                (2, 'Bob', true, 2, 1, 1000000000000000.00, 25000000000000.00)
            ) as t(customer_id, customer_name, has_loan, savings_account_count,
                   checking_account_count, total_savings_balance_amount,
                   total_annual_interest_amount)
        """)
        for table, raw in (
            ("quarantine_customers", ("raw_customer_id", "raw_name", "raw_has_loan")),
            (
                "quarantine_accounts",
                ("raw_account_id", "raw_customer_id", "raw_balance", "raw_account_type"),
            ),
        ):
            columns = ", ".join(f"{column} varchar" for column in raw)
            con.execute(
                f"""create table staging.{table} (quarantine_record_id uhugeint, {columns},
                    quarantine_reason varchar, _source_file varchar,
                    first_quarantined_at timestamp, resolved_at timestamp)"""
            )
            con.execute("create schema if not exists raw")
            con.execute(
                f"create table raw._lines_{table.removeprefix('quarantine_')} "
                "(_fingerprint uhugeint, _source_line bigint)"
            )
    output = root / "output"
    output.mkdir()
    publish.write_data_files(warehouse, output)
    return output


@pytest.fixture
def fake(monkeypatch) -> FakeDatabricks:
    with FakeDatabricks(token=TOKEN) as server:
        monkeypatch.setenv("DATABRICKS_HOST", server.host)
        monkeypatch.setenv("DATABRICKS_TOKEN", TOKEN)
        monkeypatch.setenv("DATABRICKS_HTTP_PATH", f"/sql/1.0/warehouses/{WAREHOUSE_ID}")
        # A block name of this test's own: no other test's block can stand in for the env.
        monkeypatch.setenv("LEDGERFLOW_DATABRICKS_BLOCK", f"test-{uuid.uuid4().hex[:12]}")
        for name in (
            "LEDGERFLOW_DATABRICKS_CATALOG",
            "LEDGERFLOW_DATABRICKS_SCHEMA",
            "LEDGERFLOW_DATABRICKS_VOLUME",
            "LEDGERFLOW_DATABRICKS_DEADLINE_SECONDS",
        ):
            monkeypatch.delenv(name, raising=False)
        yield server


@flow(name="databricks-export-test")
def export_flow(
    output_dir: str, run_id: str, retry: RetryPolicy, timeouts: Timeouts
) -> list[ExportOutcome]:
    return export_to_databricks(Path(output_dir), run_id, retry=retry, timeouts=timeouts)


def run_export(
    output: Path, retry: RetryPolicy = FAST, timeouts: Timeouts = QUICK, run_id: str = RUN_ID
) -> tuple[list[ExportOutcome], uuid.UUID]:
    state = export_flow(str(output), run_id, retry, timeouts, return_state=True)
    return state.result(), state.state_details.flow_run_id


def task_runs(flow_run_id: uuid.UUID) -> dict[str, object]:
    """The flow run's export task runs by table, with their state histories."""
    with get_client(sync_client=True) as client:
        runs = client.read_task_runs(
            flow_run_filter=FlowRunFilter(id=FlowRunFilterId(any_=[flow_run_id])), limit=50
        )
        return {
            run.name.removeprefix("export-databricks-"): (
                run,
                client.read_task_run_states(run.id),
            )
            for run in runs
        }


# Prefect stamps the AwaitingRetry state a few milliseconds after it computes the retry's
# scheduled time; on a busy machine 7.5 ms was seen.
SCHEDULING_SLACK = 0.03


def retry_delays(flow_run_id: uuid.UUID, table: str) -> list[float]:
    """The delays Prefect scheduled before each retry of the table's task run."""
    _, states = task_runs(flow_run_id)[table]
    return [
        (s.state_details.scheduled_time - s.timestamp).total_seconds()
        for s in states
        if s.name == "AwaitingRetry"
    ]


def gaps(requests: list[RecordedRequest]) -> list[float]:
    return [later.at - earlier.at for earlier, later in itertools.pairwise(requests)]


def parquet_rows(data: bytes | Path) -> list[dict]:
    source = io.BytesIO(data) if isinstance(data, bytes) else data
    return pq.read_table(source).to_pylist()


def volume_path(table: str, run_id: str = RUN_ID) -> str:
    return f"/Volumes/main/ledgerflow/exports/ledgerflow/{run_id}/{table}.parquet"


def requests_for(fake: FakeDatabricks, table: str) -> list[RecordedRequest]:
    """The table's requests in the order they arrived: its upload and its statement."""
    return [r for r in fake.requests if table in r.path or table.encode() in r.body]


@pytest.fixture
def sdk_urls(monkeypatch) -> list[str]:
    """Every URL the SDK sends a request to, whatever the host (it sends through requests;
    Prefect's own client is httpx)."""
    urls: list[str] = []
    send = requests.adapters.HTTPAdapter.send

    def recording_send(adapter, request, *args, **kwargs):
        urls.append(request.url)
        return send(adapter, request, *args, **kwargs)

    monkeypatch.setattr(requests.adapters.HTTPAdapter, "send", recording_send)
    return urls


def test_each_table_is_uploaded_then_loaded_by_one_statement(published, fake, sdk_urls) -> None:
    outcomes, _ = run_export(published)

    assert [(o.table, o.target, o.status, o.rows) for o in outcomes] == [
        ("account_summary", "main.ledgerflow.account_summary", "loaded", 3),
        ("customer_profile", "main.ledgerflow.customer_profile", "loaded", 2),
    ]
    assert len(fake.requests) == 4
    for request in fake.requests:
        assert request.headers["authorization"] == f"Bearer {TOKEN}"
    for table in TABLES:
        upload, statement = requests_for(fake, table)
        assert (upload.method, upload.path) == ("PUT", "/api/2.0/fs/files" + volume_path(table))
        assert (statement.method, statement.path) == ("POST", "/api/2.0/sql/statements")
        assert upload.query == {"overwrite": ["true"]}
        assert upload.headers["content-type"] == "application/octet-stream"
        assert upload.body == (published / f"{table}.parquet").read_bytes()
        assert statement.query == {}
        assert statement.headers["content-type"] == "application/json"
        assert statement.json() == {
            "warehouse_id": WAREHOUSE_ID,
            "statement": load_statement(table, volume_path(table)),
            "parameters": [
                {
                    "name": "target_table",
                    "value": f"`main`.`ledgerflow`.`{table}`",
                    "type": "STRING",
                }
            ],
            "wait_timeout": "0s",
            "on_wait_timeout": "CONTINUE",
            "disposition": "INLINE",
            "format": "JSON_ARRAY",
        }
        assert fake.tables[f"`main`.`ledgerflow`.`{table}`"].to_pylist() == parquet_rows(
            published / f"{table}.parquet"
        )
    # Nothing else, to the workspace (no host metadata, no OIDC discovery) or anywhere.
    assert sorted(sdk_urls) == sorted(fake.host + r.path_with_query for r in fake.requests)


def test_the_sdks_own_settings_in_the_environment_change_nothing(
    published, fake, monkeypatch, sdk_urls
) -> None:
    """The export gives the SDK its host, token and timeouts; other DATABRICKS_* variables
    (another auth method, debug headers) leave its requests as they are."""
    monkeypatch.setenv("DATABRICKS_CLIENT_ID", "some-service-principal")
    monkeypatch.setenv("DATABRICKS_CLIENT_SECRET", "does-not-matter")
    monkeypatch.setenv("DATABRICKS_DEBUG_HEADERS", "true")
    outcomes, _ = run_export(published)

    assert [o.status for o in outcomes] == ["loaded", "loaded"]
    assert Counter((r.method, r.headers["authorization"]) for r in fake.requests) == {
        ("PUT", f"Bearer {TOKEN}"): 2,
        ("POST", f"Bearer {TOKEN}"): 2,
    }
    assert all(url.startswith(fake.host + "/api/2.0/") for url in sdk_urls)


def test_the_statement_keeps_the_contract_types() -> None:
    statement = load_statement("account_summary", volume_path("account_summary"))
    assert statement == (
        "CREATE OR REPLACE TABLE IDENTIFIER(:target_table) AS\n"
        "SELECT\n"
        "    cast(`account_id` as STRING) as `account_id`,\n"
        "    cast(`customer_id` as BIGINT) as `customer_id`,\n"
        "    cast(`original_balance_amount` as DECIMAL(18,2)) as `original_balance_amount`,\n"
        "    cast(`interest_rate_pct` as DECIMAL(6,4)) as `interest_rate_pct`,\n"
        "    cast(`annual_interest_amount` as DECIMAL(18,2)) as `annual_interest_amount`,\n"
        "    cast(`new_balance_amount` as DECIMAL(18,2)) as `new_balance_amount`,\n"
        "    cast(`calculated_at` as TIMESTAMP) as `calculated_at`\n"
        f"FROM read_files('{volume_path('account_summary')}', format => 'parquet')"
    )
    profile = load_statement("customer_profile", volume_path("customer_profile"))
    assert "cast(`has_loan` as BOOLEAN)" in profile
    assert "cast(`total_annual_interest_amount` as DECIMAL(38,2))" in profile


def test_loading_the_same_data_again_leaves_the_same_tables(published, fake) -> None:
    run_export(published)
    first = {name: table.to_pylist() for name, table in fake.tables.items()}
    run_export(published)  # a retry of the whole run: same volume paths, overwritten
    run_export(published, run_id="a-later-run")  # the next run, same data
    assert {name: table.to_pylist() for name, table in fake.tables.items()} == first
    assert len(fake.requests_to("POST", "/api/2.0/sql/statements")) == 6
    statements = {r.json()["statement"].split(" AS\n")[0] for r in fake.requests_to("POST")}
    assert statements == {"CREATE OR REPLACE TABLE IDENTIFIER(:target_table)"}


def test_503s_are_retried_after_1_2_4_seconds(published, fake) -> None:
    """The real backoff factor, without jitter: three 503s, then the upload goes through."""
    fake.fail("PUT", 503, times=3, table="account_summary")
    outcomes, flow_run_id = run_export(published, retry=RetryPolicy(jitter_factor=None))

    assert [o.status for o in outcomes] == ["loaded", "loaded"]
    assert retry_delays(flow_run_id, "account_summary") == pytest.approx(
        [1.0, 2.0, 4.0], abs=SCHEDULING_SLACK
    )
    assert retry_delays(flow_run_id, "customer_profile") == []
    uploads = fake.requests_to("PUT", "/api/2.0/fs/files" + volume_path("account_summary"))
    assert len(uploads) == 4
    for measured, delay in zip(gaps(uploads), (1, 2, 4), strict=True):
        assert delay - 0.05 <= measured <= delay + 1.0, gaps(uploads)


def test_rate_limits_and_server_errors_are_retried(published, fake) -> None:
    for status in (429, 500, 502):
        fake.fail("POST", status, table="account_summary")
    outcomes, flow_run_id = run_export(published)
    assert [o.status for o in outcomes] == ["loaded", "loaded"]
    assert retry_delays(flow_run_id, "account_summary") == pytest.approx([0.05, 0.1, 0.2], abs=0.02)
    assert len(fake.requests_to("POST", "/api/2.0/sql/statements")) == 5


def test_timeouts_are_retried_with_growing_delays(published, fake) -> None:
    """The fake answers the statement later than the client waits, twice."""
    fake.delay("POST", seconds=1.0, times=2, table="account_summary")
    retry = RetryPolicy(backoff_factor=0.2, jitter_factor=None)
    timeouts = Timeouts(request_seconds=0.3, statement_wait_seconds=0, poll_seconds=0.01)
    outcomes, flow_run_id = run_export(published, retry=retry, timeouts=timeouts)

    assert [o.status for o in outcomes] == ["loaded", "loaded"]
    assert retry_delays(flow_run_id, "account_summary") == pytest.approx(
        [0.2, 0.4], abs=SCHEDULING_SLACK
    )
    # Each attempt: an upload, then a statement that times out after 0.3 s.
    uploads = fake.requests_to("PUT", "/api/2.0/fs/files" + volume_path("account_summary"))
    assert len(uploads) == 3
    for measured, delay in zip(gaps(uploads), (0.2, 0.4), strict=True):
        assert 0.3 + delay - 0.05 <= measured <= 0.3 + delay + 1.0, gaps(uploads)


def test_connection_errors_are_retried_until_retries_run_out(published, fake, monkeypatch) -> None:
    monkeypatch.setenv("DATABRICKS_HOST", "http://127.0.0.1:9")  # nothing listens there
    outcomes, flow_run_id = run_export(published, retry=RetryPolicy(3, 0.01, None))
    assert [o.status for o in outcomes] == ["failed", "failed"]
    assert "connection error (ConnectionError" in outcomes[0].message
    assert retry_delays(flow_run_id, "account_summary") == pytest.approx(
        [0.01, 0.02, 0.04], abs=0.01
    )


def test_a_400_is_not_retried_and_the_other_table_still_loads(published, fake) -> None:
    fake.fail("PUT", 400, table="account_summary")
    outcomes, flow_run_id = run_export(published)

    summary, profile = outcomes
    assert (summary.status, summary.target, summary.rows) == (
        "failed",
        "main.ledgerflow.account_summary",
        None,
    )
    assert "HTTP 400 INVALID_PARAMETER_VALUE: injected 400" in summary.message
    assert profile.status == "loaded"
    assert retry_delays(flow_run_id, "account_summary") == []
    assert len(fake.requests_to("PUT")) == 2  # one per table
    run, _ = task_runs(flow_run_id)["account_summary"]
    assert run.state.is_failed()


def test_a_failed_statement_is_not_retried(published, fake) -> None:
    fake.script_statements(
        ["FAILED"], error={"error_code": "BAD_REQUEST", "message": "[DELTA_FAILED] no"}
    )
    outcomes, flow_run_id = run_export(published)

    assert [o.status for o in outcomes] == ["failed", "failed"]
    assert re.search(
        r"statement stmt-000[12] FAILED: BAD_REQUEST: \[DELTA_FAILED\] no", outcomes[0].message
    )
    assert len(fake.requests_to("POST", "/api/2.0/sql/statements")) == 2
    assert retry_delays(flow_run_id, "account_summary") == []
    assert fake.tables == {}


def test_a_long_statement_is_polled_to_completion(published, fake) -> None:
    fake.script_statements(["PENDING", "RUNNING", "RUNNING", "SUCCEEDED"])
    outcomes, _ = run_export(published)

    assert [o.status for o in outcomes] == ["loaded", "loaded"]
    polls = fake.requests_to("GET", "/api/2.0/sql/statements/")
    assert Counter(r.path for r in polls) == {
        "/api/2.0/sql/statements/stmt-0001": 3,
        "/api/2.0/sql/statements/stmt-0002": 3,
    }
    for poll in polls:
        assert (poll.query, poll.body) == ({}, b"")
        assert poll.headers["authorization"] == f"Bearer {TOKEN}"
    assert fake.cancelled == []


def test_a_statement_past_its_bound_is_cancelled_then_retried(published, fake) -> None:
    fake.script_statements(["PENDING"])  # a warehouse that never starts
    timeouts = Timeouts(request_seconds=5, statement_wait_seconds=0, statement_timeout_seconds=0.2)
    outcomes, flow_run_id = run_export(published, RetryPolicy(1, 0.2, None), timeouts)

    assert [o.status for o in outcomes] == ["failed", "failed"]
    assert "still PENDING after 0.2 s; cancelled" in outcomes[0].message
    assert retry_delays(flow_run_id, "account_summary") == pytest.approx(
        [0.2], abs=SCHEDULING_SLACK
    )
    assert sorted(fake.cancelled) == ["stmt-0001", "stmt-0002", "stmt-0003", "stmt-0004"]


def test_a_canceled_statement_is_retried(published, fake) -> None:
    fake.script_statements(["CANCELED"])
    outcomes, flow_run_id = run_export(published, RetryPolicy(1, 0.2, None))
    assert "was CANCELED" in outcomes[0].message
    assert retry_delays(flow_run_id, "customer_profile") == pytest.approx(
        [0.2], abs=SCHEDULING_SLACK
    )


def test_not_configured_means_skipped_not_failed(published, fake, monkeypatch) -> None:
    for name in ("DATABRICKS_HOST", "DATABRICKS_TOKEN"):
        monkeypatch.delenv(name)
    outcomes, flow_run_id = run_export(published)

    assert [(o.status, o.target, o.rows) for o in outcomes] == [("skipped", None, None)] * 2
    assert "DATABRICKS_HOST and DATABRICKS_TOKEN not set" in outcomes[0].message
    assert "no DatabricksCredentials block" in outcomes[0].message
    for run, _ in task_runs(flow_run_id).values():
        assert run.state.type.value == "COMPLETED"
        assert run.state.name == "Skipped"
        assert "DATABRICKS_HOST and DATABRICKS_TOKEN not set" in run.state.message
    assert fake.requests == []


def test_a_malformed_warehouse_path_fails_without_a_request(published, fake, monkeypatch) -> None:
    monkeypatch.setenv("DATABRICKS_HTTP_PATH", "/sql/protocolv1/o/0/0000-000000-abcdef")
    outcomes, _ = run_export(published)
    assert [o.status for o in outcomes] == ["failed", "failed"]
    assert "DATABRICKS_HTTP_PATH is not a SQL warehouse path" in outcomes[0].message
    assert fake.requests == []


def test_the_credentials_block_stands_in_for_the_environment(published, fake, monkeypatch) -> None:
    assert save_credentials_block_from_env() is True
    for name in ("DATABRICKS_HOST", "DATABRICKS_TOKEN"):
        monkeypatch.delenv(name)
    assert save_credentials_block_from_env() is False

    outcomes, _ = run_export(published)
    assert [o.status for o in outcomes] == ["loaded", "loaded"]
    assert fake.requests[0].headers["authorization"] == f"Bearer {TOKEN}"


def test_the_token_appears_in_no_log_outcome_artifact_or_run(published, fake, caplog) -> None:
    # The workspace's error repeats the request's headers, token included.
    fake.fail("PUT", 400, echo_headers=True, table="account_summary")
    fake.fail("POST", 503, echo_headers=True, table="customer_profile")
    caplog.set_level(logging.DEBUG)
    outcomes, flow_run_id = run_export(published)
    APILogWorker.drain_all(timeout=10)

    assert [o.status for o in outcomes] == ["failed", "loaded"]
    assert "[REDACTED]" in outcomes[0].message
    with get_client(sync_client=True) as client:
        logs = client.read_logs(
            log_filter=LogFilter(flow_run_id=LogFilterFlowRunId(any_=[flow_run_id])),
            sort=LogSort.TIMESTAMP_ASC,
            limit=200,
        )
        artifacts = client.read_artifacts(limit=50)
        flow_run = client.read_flow_run(flow_run_id)
    prefect_logs = "\n".join(log.message for log in logs)
    assert "Retry 1/3" in prefect_logs  # the 503 was logged, redacted
    assert "[REDACTED]" in prefect_logs
    export_artifacts = [a for a in artifacts if a.key == ARTIFACT_KEY]
    assert export_artifacts
    runs = task_runs(flow_run_id)
    everything = "\n".join(
        [
            caplog.text,
            prefect_logs,
            json.dumps([asdict(o) for o in outcomes]),
            json.dumps([a.model_dump(mode="json") for a in export_artifacts]),
            flow_run.model_dump_json(),
            *(run.model_dump_json() for run, _ in runs.values()),
            *(state.model_dump_json() for _, states in runs.values() for state in states),
        ]
    )
    assert TOKEN not in everything
    assert TOKEN[5:20] not in everything


def test_default_retry_options() -> None:
    assert export_table.name == "export-databricks"
    assert export_table.retries == 3
    assert export_table.retry_delay_seconds == [1.0, 2.0, 4.0]
    assert export_table.retry_jitter_factor == 0.5
    assert export_table.retry_condition_fn is retry_on_transient


# A workspace configured through the environment, as resolve_settings reads it.
WORKSPACE_ENV = {
    "DATABRICKS_HOST": "adb-1.azuredatabricks.net",
    "DATABRICKS_TOKEN": TOKEN,
    "DATABRICKS_HTTP_PATH": "/sql/1.0/warehouses/abc123",
}


def test_settings_never_show_the_token() -> None:
    settings = resolve_settings({**WORKSPACE_ENV, "LEDGERFLOW_DATABRICKS_CATALOG": "bank"})
    assert settings.target is not None
    assert settings.target.warehouse_id == "abc123"
    assert settings.target.table_name("account_summary") == "bank.ledgerflow.account_summary"
    assert TOKEN not in repr(settings)
    assert TOKEN not in str(settings)


def test_a_missing_warehouse_is_named() -> None:
    settings = resolve_settings({"DATABRICKS_HOST": "adb-1.net", "DATABRICKS_TOKEN": TOKEN})
    assert (settings.target, settings.skipped) == (None, "DATABRICKS_HTTP_PATH not set")


def test_names_that_would_need_quoting_are_refused() -> None:
    settings = resolve_settings({**WORKSPACE_ENV, "LEDGERFLOW_DATABRICKS_SCHEMA": "ledger'; drop"})
    assert settings.target is None
    assert settings.invalid.startswith("LEDGERFLOW_DATABRICKS_SCHEMA=")


def test_transient_errors_are_the_only_ones_retried() -> None:
    from prefect.states import Failed

    assert retry_on_transient(None, None, Failed(data=TransientExportError("503")))
    assert not retry_on_transient(None, None, Failed(data=ValueError("bad")))
    assert not retry_on_transient(
        None, None, Failed(data=databricks_export.PermanentExportError("400"))
    )


# --- deadlines -----------------------------------------------------------------------------
# Bounds on hangs, not performance: each allows Prefect's own round trips (a second or two on
# a busy machine) on top of the deadline; without the deadline these took minutes.
MARGIN = 3.0


def test_both_tables_are_uploaded_at_the_same_time(published, fake) -> None:
    fake.delay("PUT", seconds=0.5, times=2)
    outcomes, _ = run_export(published)

    assert [o.status for o in outcomes] == ["loaded", "loaded"]
    uploads = fake.requests_to("PUT")
    assert len(uploads) == 2
    # The second upload arrived while the first was still being answered.
    assert max(r.at for r in uploads) < min(fake.answered_at(r) for r in uploads)


def test_a_workspace_that_never_answers_costs_the_deadline_and_names_it(
    published, fake, monkeypatch
) -> None:
    """Requests time out at the deadline however long their own timeout (5 s here), and the
    timeouts are not retried once no time is left."""
    fake.black_hole()
    monkeypatch.setenv("LEDGERFLOW_DATABRICKS_DEADLINE_SECONDS", "1.5")
    started = time.monotonic()
    outcomes, flow_run_id = run_export(published)
    elapsed = time.monotonic() - started

    assert elapsed < 1.5 + MARGIN
    assert [o.status for o in outcomes] == ["failed", "failed"]
    for outcome in outcomes:
        assert outcome.message.startswith(
            f"{outcome.table}: not loaded within the export deadline of 1.5 s "
            "(LEDGERFLOW_DATABRICKS_DEADLINE_SECONDS); last error: upload to "
        )
        assert "timed out (ReadTimeout)" in outcome.message
        assert retry_delays(flow_run_id, outcome.table) == []
    assert Counter(r.method for r in fake.requests) == {"PUT": 2}  # both sent, at once


def test_no_retry_is_scheduled_past_the_deadline(published, fake, monkeypatch) -> None:
    """503s every time, retried after 2, 4, 8 s, within 5 s: the first retry fits, the
    second would start after the deadline, so the table fails after two attempts."""
    fake.fail("PUT", 503, times=8)
    monkeypatch.setenv("LEDGERFLOW_DATABRICKS_DEADLINE_SECONDS", "5")
    retry = RetryPolicy(backoff_factor=2.0, jitter_factor=None)
    started = time.monotonic()
    outcomes, flow_run_id = run_export(published, retry=retry)

    assert time.monotonic() - started < 5 + MARGIN
    for outcome in outcomes:
        assert outcome.status == "failed"
        assert "not loaded within the export deadline of 5 s" in outcome.message
        assert "HTTP 503" in outcome.message
        assert retry_delays(flow_run_id, outcome.table) == pytest.approx(
            [2.0], abs=SCHEDULING_SLACK
        )
    assert len(fake.requests_to("PUT")) == 4


def test_polling_stops_before_the_deadline_and_cancels_the_statement(
    published, fake, monkeypatch
) -> None:
    """A warehouse that never starts the statement: polling ends with time kept back for the
    cancel, so the statement is not left to replace the table after the run gave up."""
    fake.script_statements(["PENDING"])
    monkeypatch.setenv("LEDGERFLOW_DATABRICKS_DEADLINE_SECONDS", "1.5")
    timeouts = Timeouts(request_seconds=5, statement_wait_seconds=0, poll_seconds=0.05,
                        cancel_reserve_seconds=0.5)  # fmt: skip
    started = time.monotonic()
    outcomes, flow_run_id = run_export(published, timeouts=timeouts)

    assert time.monotonic() - started < 1.5 + MARGIN
    for outcome in outcomes:
        assert outcome.status == "failed"
        assert "not loaded within the export deadline of 1.5 s" in outcome.message
        assert re.search(r"statement stmt-000[12] still PENDING at the deadline", outcome.message)
        assert retry_delays(flow_run_id, outcome.table) == []
    assert sorted(fake.cancelled) == ["stmt-0001", "stmt-0002"]
    cancels = [r for r in fake.requests_to("POST") if r.path.endswith("/cancel")]
    assert sorted((r.path, r.query == {}, r.body) for r in cancels) == [
        ("/api/2.0/sql/statements/stmt-0001/cancel", True, b""),
        ("/api/2.0/sql/statements/stmt-0002/cancel", True, b""),
    ]
    assert fake.tables == {}


def test_request_timeouts_are_sized_to_the_payload() -> None:
    assert sized_timeout(10, 0, 1_000_000) == 10
    assert sized_timeout(10, 3_000, 1_000_000) == pytest.approx(10.003)
    assert sized_timeout(10, 250_000_000, 1_000_000) == 260
    defaults = Timeouts()
    assert (defaults.request_seconds, defaults.min_upload_bytes_per_second) == (10, 1_000_000)


def test_the_statement_wait_is_shortened_to_what_the_deadline_leaves() -> None:
    assert statement_wait(30, 280) == 30
    assert statement_wait(30, 12.5) == 12
    assert statement_wait(30, 4.9) == 0  # the API takes 0 or 5..50 s
    assert statement_wait(0, 280) == 0


def test_the_deadline_setting() -> None:
    assert resolve_settings(WORKSPACE_ENV).deadline_seconds == 300
    settings = resolve_settings({**WORKSPACE_ENV, "LEDGERFLOW_DATABRICKS_DEADLINE_SECONDS": "8"})
    assert settings.deadline_seconds == 8
    for bad in ("soon", "0", "-5", "inf"):
        settings = resolve_settings(
            {**WORKSPACE_ENV, "LEDGERFLOW_DATABRICKS_DEADLINE_SECONDS": bad}
        )
        assert settings.target is None
        assert settings.invalid == (
            f"LEDGERFLOW_DATABRICKS_DEADLINE_SECONDS={bad!r} is not a positive number of seconds"
        )
