"""The `ledgerflow run` command end to end (the real flow, on a Prefect test server):
exit codes, write–audit–publish, and what a failed run leaves behind."""

from __future__ import annotations

import hashlib
import json
import os
import re
import time
from uuid import UUID

import duckdb
import pytest
from conftest import CONTRACT_DATA_FILES, SAMPLE_DIR, copy_sample, latest_flow_run_state
from contract_oracle import expected_outputs

from flows.cli import main
from flows.config import LAYERS

PUBLISHED = [*CONTRACT_DATA_FILES, "quality_report.json"]


def fingerprint(folder):
    return {name: hashlib.sha256((folder / name).read_bytes()).hexdigest() for name in PUBLISHED}


@pytest.fixture(scope="module")
def published(prefect_harness, tmp_path_factory):
    """A warehouse and output folder after one good run of the sample."""
    root = tmp_path_factory.mktemp("cli")
    paths = {"warehouse": root / "warehouse.duckdb", "output": root / "output"}
    paths["exit_code"] = run_cli(SAMPLE_DIR, paths)
    return paths


def run_cli(input_dir, published):
    return main(
        [
            "run",
            "--input-dir",
            str(input_dir),
            "--output-dir",
            str(published["output"]),
            "--warehouse",
            str(published["warehouse"]),
        ]
    )


def test_sample_run_publishes_everything(published):
    assert published["exit_code"] == 0
    assert sorted(p.name for p in published["output"].iterdir() if p.is_file()) == sorted(
        [*PUBLISHED, "dashboard.html", "dbt_docs.html"]
    )
    report = json.loads((published["output"] / "quality_report.json").read_text())
    expected = expected_outputs(SAMPLE_DIR / "customers.csv", SAMPLE_DIR / "accounts.csv")
    assert report["status"] == "warned"  # the sample's quarantine rates are high on purpose
    assert report["summary"]["failed"] == 0
    counts = {}
    for row in expected.quarantine_accounts:
        counts[row.reason] = counts.get(row.reason, 0) + 1
    assert report["quarantine"]["accounts"] == dict(sorted(counts.items()))
    assert set(report) == {
        "timestamp",
        "run_id",
        "status",
        "summary",
        "failures",
        "quarantine",
        "metrics",
    }
    # No half-written leftovers of the publish.
    assert not [p for p in published["output"].iterdir() if p.name.startswith(".")]
    # Databricks is not configured here: the export is skipped, and the report says so.
    exports = report["metrics"]["exports"]
    assert {table: export["status"] for table, export in exports.items()} == {
        "account_summary": "skipped",
        "customer_profile": "skipped",
    }
    assert "DATABRICKS_HOST" in exports["account_summary"]["message"]


def stat_of(folder):
    return {name: (folder / name).stat().st_mtime_ns for name in CONTRACT_DATA_FILES}


# Every step of a run but freshness and the export, in order, as Prefect names its task.
CACHED_STEPS = [
    "ingest-delivery",
    "build-staging",
    "unit-tests-staging",
    "count-quarantine",
    "build-snapshots",
    "build-intermediate",
    "unit-tests-intermediate",
    "build-marts",
    "validate-expectations",
    "count-rows",
    "publish-outputs",
]


def test_an_unchanged_delivery_rechecks_freshness_and_leaves_the_data_files(published, tmp_path):
    """The same bytes from another folder: every step's result comes from Prefect's cache
    (Cached, read through the API), no dbt layer runs, the data files are not even
    rewritten, the report is this run's with every check counted."""
    output = published["output"]
    first = json.loads((output / "quality_report.json").read_text())
    before, stats_before = fingerprint(output), stat_of(output)

    assert run_cli(copy_sample(tmp_path / "same-again"), published) == 0

    report = json.loads((output / "quality_report.json").read_text())
    assert report["run_id"] != first["run_id"]
    assert report["metrics"]["cached"] == {
        "same_delivery_as_run": first["run_id"],
        "steps": CACHED_STEPS,
    }
    states = task_run_states(report["run_id"])
    assert {name: states[name] for name in CACHED_STEPS} == dict.fromkeys(CACHED_STEPS, "Cached")
    assert states["source-freshness"] == "Completed"
    # No dbt node ran: a layer's nodes are tasks of its subflow, and none was created.
    assert not [name for name in states if name.startswith(("model ", "test ", "snapshot "))]
    for key in ("status", "summary", "failures", "quarantine"):
        assert report[key] == first[key], key
    assert report["metrics"]["rows"] == first["metrics"]["rows"]
    assert stat_of(output) == stats_before
    after = fingerprint(output)
    assert {n: after[n] for n in CONTRACT_DATA_FILES} == {n: before[n] for n in CONTRACT_DATA_FILES}


def test_without_its_cached_results_an_unchanged_delivery_runs_every_step_again(
    published, tmp_path
):
    """Prefect's result storage is only a shortcut: with it gone, the same delivery goes
    through every step again, as an empty change set, and publishes the same bytes."""
    from prefect.settings import PREFECT_LOCAL_STORAGE_PATH, temporary_settings

    output = published["output"]
    before = fingerprint(output)
    with temporary_settings({PREFECT_LOCAL_STORAGE_PATH: tmp_path / "new-storage"}):
        assert run_cli(copy_sample(tmp_path / "same-uncached"), published) == 0

    report = json.loads((output / "quality_report.json").read_text())
    assert report["metrics"]["cached"]["steps"] == []
    assert report["metrics"]["cached"]["same_delivery_as_run"] is not None
    states = task_run_states(report["run_id"])
    assert {name: states[name] for name in CACHED_STEPS} == dict.fromkeys(CACHED_STEPS, "Completed")
    assert [name for name in states if name.startswith("model ")]
    after = fingerprint(output)
    assert {n: after[n] for n in CONTRACT_DATA_FILES} == {n: before[n] for n in CONTRACT_DATA_FILES}


def task_run_states(flow_run_id: str) -> dict[str, str]:
    """The state of each task run of a flow run and of its layers' subflows, by task name."""
    from prefect import get_client
    from prefect.client.schemas.filters import (
        FlowRunFilter,
        FlowRunFilterId,
        FlowRunFilterParentTaskRunId,
    )

    def runs_of(flow_runs: list) -> list:
        if not flow_runs:
            return []
        flow_filter = FlowRunFilter(id=FlowRunFilterId(any_=flow_runs))
        return client.read_task_runs(flow_run_filter=flow_filter, limit=200)

    with get_client(sync_client=True) as client:
        steps = runs_of([UUID(flow_run_id)])
        parents = FlowRunFilterParentTaskRunId(any_=[run.id for run in steps])
        layers = client.read_flow_runs(
            flow_run_filter=FlowRunFilter(parent_task_run_id=parents), limit=200
        )
        nodes = runs_of([layer.id for layer in layers])
    return {run.name.rsplit("-", 1)[0]: run.state.name for run in [*steps, *nodes]}


def test_only_the_same_code_and_settings_reuse_a_publish(published, monkeypatch):
    from flows.steps import step_cache

    def reused_run() -> str | None:
        _, key = step_cache.scan_delivery.fn(
            SAMPLE_DIR, published["output"], published["warehouse"], LAYERS, False, "another"
        )
        return key.same_as_run

    assert reused_run() is not None
    monkeypatch.setattr(step_cache, "QUARANTINE_WARN_RATE", 0.06)
    assert reused_run() is None


def test_an_unchanged_delivery_still_goes_stale(published, tmp_path, capsys):
    """Freshness is measured again on an unchanged delivery: data 49 hours old blocks."""
    before = fingerprint(published["output"])
    shift = "update raw._file_loads set first_loaded_at = first_loaded_at {sign} interval 49 hour"
    with duckdb.connect(str(published["warehouse"])) as con:
        con.execute(shift.format(sign="-"))
    try:
        assert run_cli(copy_sample(tmp_path / "same-later"), published) == 1
    finally:
        with duckdb.connect(str(published["warehouse"])) as con:
            con.execute(shift.format(sign="+"))

    assert "blocking checks failed at source_freshness" in capsys.readouterr().err
    assert fingerprint(published["output"]) == before
    failed = json.loads((published["output"] / "failed" / "quality_report.json").read_text())
    errors = {f["test"]: f["message"] for f in failed["failures"] if f["severity"] == "error"}
    assert set(errors) == {"source_freshness_accounts", "source_freshness_customers"}
    for table in ("accounts", "customers"):
        message = errors[f"source_freshness_{table}"]
        assert re.fullmatch(rf"newest data in {table} is 49\.\d h old \(error\)", message)


def test_a_published_file_touched_since_means_a_full_run(published, tmp_path):
    """Reuse trusts the published files only as the last publish left them."""
    output = published["output"]
    before = fingerprint(output)
    os.utime(output / "customer_profile.csv", ns=(1, 1))

    assert run_cli(copy_sample(tmp_path / "same-touched"), published) == 0

    report = json.loads((output / "quality_report.json").read_text())
    # A run of its own: at most the unit tests, keyed on the code alone, are Cached.
    cached = report["metrics"].get("cached", {"same_delivery_as_run": None, "steps": []})
    assert cached["same_delivery_as_run"] is None
    assert set(cached["steps"]) <= {"unit-tests-staging", "unit-tests-intermediate"}
    assert "staging" in report["metrics"]["duration_seconds"]
    after = fingerprint(output)
    assert {n: after[n] for n in CONTRACT_DATA_FILES} == {n: before[n] for n in CONTRACT_DATA_FILES}


BROKEN = {
    "missing_file": (None, "accounts.csv: file not found"),
    "missing_column": (
        b"AccountID,CustomerID,Balance\nA1,1,5\n",
        "accounts.csv line 1: missing required column(s) AccountType",
    ),
    "empty": (b"", "accounts.csv: empty file"),
    "not_utf8": (
        b"AccountID,CustomerID,Balance,AccountType\nA1,1,5,savings\nA\xe92,1,5,savings\n",
        "accounts.csv line 3: not valid UTF-8",
    ),
    "field_count": (
        b"AccountID,CustomerID,Balance,AccountType\nA1,1,5,savings\nA2,1,5\n",
        "accounts.csv line 3: not CSV",
    ),
    "unterminated_quote": (
        b'AccountID,CustomerID,Balance,AccountType\nA1,1,5,savings\n"A2,1,5,savings\n',
        "accounts.csv line 3: not CSV: unterminated",
    ),
}


@pytest.mark.parametrize("case", list(BROKEN))
def test_bad_input_exits_2_and_leaves_published_outputs_untouched(
    published, tmp_path, capsys, case
):
    content, message = BROKEN[case]
    delivery = copy_sample(tmp_path / "delivery")
    if content is None:
        (delivery / "accounts.csv").unlink()
    else:
        (delivery / "accounts.csv").write_bytes(content)
    before = fingerprint(published["output"])

    assert run_cli(delivery, published) == 2

    assert message in capsys.readouterr().err
    assert fingerprint(published["output"]) == before
    failed = json.loads((published["output"] / "failed" / "quality_report.json").read_text())
    assert failed["status"] == "failed"
    assert failed["metrics"]["stopped_at"]["step"] == "ingest"


def test_header_only_delivery_blocks_publishing_then_next_good_delivery_publishes(
    published, tmp_path, capsys
):
    delivery = copy_sample(tmp_path / "header-only")
    (delivery / "accounts.csv").write_text("AccountID,CustomerID,Balance,AccountType\n")
    before = fingerprint(published["output"])

    assert run_cli(delivery, published) == 1
    # No rows means no load time: freshness fails and stops the run before any dbt layer.
    err = capsys.readouterr().err
    assert "blocking checks failed at source_freshness: source_freshness_accounts" in err
    assert fingerprint(published["output"]) == before
    failed = json.loads((published["output"] / "failed" / "quality_report.json").read_text())
    assert failed["metrics"]["stopped_at"]["step"] == "source_freshness"
    assert [(f["test"], f["message"]) for f in failed["failures"] if f["severity"] == "error"] == [
        ("source_freshness_accounts", "accounts holds no rows, so it has no load time (error)")
    ]

    # The next good delivery (one balance changed) goes through and replaces every file.
    fixed = copy_sample(tmp_path / "fixed")
    accounts = (fixed / "accounts.csv").read_text(encoding="utf-8").replace("5000.00", "5100.00", 1)
    (fixed / "accounts.csv").write_text(accounts, encoding="utf-8")
    assert run_cli(fixed, published) == 0
    after = fingerprint(published["output"])
    assert after["account_summary.csv"] != before["account_summary.csv"]
    assert after["quality_report.json"] != before["quality_report.json"]


def test_unknown_layer_is_a_usage_error(capsys):
    with pytest.raises(SystemExit) as raised:
        main(["run", "--select", "bronze"])
    assert raised.value.code == 2
    assert "invalid choice: 'bronze'" in capsys.readouterr().err


def test_report_is_published_as_artifacts_with_metrics(published):
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import (
        ArtifactFilter,
        ArtifactFilterFlowRunId,
        ArtifactFilterKey,
    )

    report = json.loads((published["output"] / "quality_report.json").read_text())
    # Filtered on the server by this run: the session's other runs made many more
    # artifacts under the same keys than one page holds.
    with get_client(sync_client=True) as client:
        found = {
            artifact.key: artifact
            for artifact in client.read_artifacts(
                artifact_filter=ArtifactFilter(
                    key=ArtifactFilterKey(
                        any_=["quality-report", "quality-failures", "run-metrics", "dashboard"]
                    ),
                    flow_run_id=ArtifactFilterFlowRunId(any_=[UUID(report["run_id"])]),
                ),
            )
        }
    assert set(found) == {"quality-report", "quality-failures", "run-metrics", "dashboard"}
    assert "Outputs published" in found["quality-report"].data
    dashboard = published["output"] / "dashboard.html"
    assert found["dashboard"].data == f"[{dashboard}]({dashboard.as_uri()})"
    assert f"Dashboard: {dashboard} ({dashboard.as_uri()})" in found["quality-report"].data
    assert dashboard.is_file()
    assert "quarantine_rate_accounts" in str(found["quality-failures"].data)
    profile = report["metrics"]["key_columns"]
    assert profile["account_summary.account_id"] == {"nulls": 0, "duplicates": 0}
    # A delivery's missing and shared ids are its quarantine counts: nothing counted twice.
    quarantined = report["quarantine"]["customers"]
    assert profile["raw.customers.customerid"] == {
        "nulls": quarantined["missing_customer_id"],
        "duplicates": quarantined["duplicate_customer_id"],
    }
    assert profile["raw.customers.customerid"]["duplicates"] >= 1


def test_a_mostly_quarantined_delivery_stops_after_staging(published, tmp_path, capsys):
    """More than half of accounts.csv quarantined: the run stops after staging, before the
    snapshots record the broken delivery as history."""
    delivery = copy_sample(tmp_path / "mostly-broken")
    lines = (delivery / "accounts.csv").read_text(encoding="utf-8").splitlines(keepends=True)
    # Two records in three get an invalid type; enough savings accounts remain for the marts.
    broken = [
        line.replace("avings", "avingz", 1).replace("hecking", "hequing", 1) if index % 3 else line
        for index, line in enumerate(lines[1:])
    ]
    (delivery / "accounts.csv").write_text(lines[0] + "".join(broken), encoding="utf-8")
    before = fingerprint(published["output"])
    current_versions = "select count(*) from snapshots.accounts_snapshot where valid_to is null"
    with duckdb.connect(str(published["warehouse"])) as con:
        current_before = con.execute(current_versions).fetchone()[0]

    assert run_cli(delivery, published) == 1

    assert "blocking checks failed at staging: quarantine_rate_accounts" in capsys.readouterr().err
    assert fingerprint(published["output"]) == before
    # Had the snapshots run, every newly quarantined account would have been closed.
    with duckdb.connect(str(published["warehouse"])) as con:
        assert con.execute(current_versions).fetchone()[0] == current_before
    failed = json.loads((published["output"] / "failed" / "quality_report.json").read_text())
    assert failed["status"] == "failed"
    rate = next(f for f in failed["failures"] if f["test"] == "quarantine_rate_accounts")
    assert rate["severity"] == "error"


def test_a_failed_export_keeps_the_local_publish_and_exits_3(published, tmp_path, monkeypatch):
    """account_summary's load is refused (HTTP 400, not retried); customer_profile still
    loads; the new outputs stay published; the run exits 3 and its report says why."""
    from fake_databricks import FakeDatabricks

    delivery = copy_sample(tmp_path / "next")
    accounts = (
        (delivery / "accounts.csv").read_text(encoding="utf-8").replace("5000.00", "5200.00", 1)
    )
    (delivery / "accounts.csv").write_text(accounts, encoding="utf-8")
    before = fingerprint(published["output"])
    with FakeDatabricks(token="dapi-cli-test-token") as fake:
        monkeypatch.setenv("DATABRICKS_HOST", fake.host)
        monkeypatch.setenv("DATABRICKS_TOKEN", "dapi-cli-test-token")
        monkeypatch.setenv("DATABRICKS_HTTP_PATH", "/sql/1.0/warehouses/abc123")
        fake.fail("PUT", 400, table="account_summary")

        assert run_cli(delivery, published) == 3

    after = fingerprint(published["output"])
    assert after["account_summary.csv"] != before["account_summary.csv"]  # published anyway
    report = json.loads((published["output"] / "quality_report.json").read_text())
    exports = report["metrics"]["exports"]
    assert exports["account_summary"]["status"] == "failed"
    assert exports["customer_profile"] == {
        "status": "loaded",
        "target": "main.ledgerflow.customer_profile",
        "rows": 21,
        "message": exports["customer_profile"]["message"],
    }
    assert list(fake.tables) == ["`main`.`ledgerflow`.`customer_profile`"]
    assert "dapi-cli-test-token" not in json.dumps(report)


# Bounds on hangs, not performance figures: the deadline, plus the report, the artifacts
# and the flow's end on a busy machine. Without the deadlines these runs took minutes.
MARGIN = 5.0


def changed_delivery(folder, balance="5300.00"):
    """The sample with one balance changed: a delivery the warehouse has not seen."""
    delivery = copy_sample(folder)
    accounts = (
        (delivery / "accounts.csv").read_text(encoding="utf-8").replace("5000.00", balance, 1)
    )
    (delivery / "accounts.csv").write_text(accounts, encoding="utf-8")
    return delivery


def test_a_workspace_that_never_answers_costs_the_export_deadline_and_exits_3(
    published, tmp_path, monkeypatch
):
    """Databricks takes the connections in and never answers: both tables fail by the
    deadline (8 s here), together, and the run ends then, its new outputs published."""
    from fake_databricks import FakeDatabricks

    before = fingerprint(published["output"])
    with FakeDatabricks(token="dapi-cli-test-token") as fake:
        monkeypatch.setenv("DATABRICKS_HOST", fake.host)
        monkeypatch.setenv("DATABRICKS_TOKEN", "dapi-cli-test-token")
        monkeypatch.setenv("DATABRICKS_HTTP_PATH", "/sql/1.0/warehouses/abc123")
        monkeypatch.setenv("LEDGERFLOW_DATABRICKS_DEADLINE_SECONDS", "8")
        fake.black_hole()

        assert run_cli(changed_delivery(tmp_path / "next"), published) == 3
        # Measured before the fake lets go: a thread still waiting on it would show here.
        from_first_request = time.monotonic() - fake.requests[0].at

    assert from_first_request < 8 + MARGIN
    report = json.loads((published["output"] / "quality_report.json").read_text())
    assert report["metrics"]["duration_seconds"]["export"] < 8 + MARGIN
    exports = report["metrics"]["exports"]
    for table in ("account_summary", "customer_profile"):
        assert exports[table]["status"] == "failed"
        assert exports[table]["message"].startswith(
            f"{table}: not loaded within the export deadline of 8 s "
            "(LEDGERFLOW_DATABRICKS_DEADLINE_SECONDS)"
        )
    assert [r.method for r in fake.requests] == ["PUT", "PUT"]
    after = fingerprint(published["output"])
    assert after["account_summary.csv"] != before["account_summary.csv"]  # published anyway
    assert "dapi-cli-test-token" not in json.dumps(report)


def test_a_slack_that_never_answers_costs_its_deadline_and_the_run_succeeds(
    published, tmp_path, monkeypatch, caplog
):
    """The delivery the test above published, again (so the short path runs): Slack takes
    the post in and never answers; the run warns after 3 s and exits 0."""
    from slack_receiver import SlackReceiver

    with SlackReceiver(black_hole=True) as slack:
        monkeypatch.setenv("SLACK_WEBHOOK_URL", slack.url)
        monkeypatch.setenv("LEDGERFLOW_SLACK_DEADLINE_SECONDS", "3")

        assert run_cli(changed_delivery(tmp_path / "again"), published) == 0
        from_first_post = time.monotonic() - slack.attempts[0]

    assert from_first_post < 3 + MARGIN
    assert len(slack.attempts) == 1
    warnings = [r.getMessage() for r in caplog.records if r.levelname == "WARNING"]
    assert any(
        "not posted within the Slack deadline of 3 s (LEDGERFLOW_SLACK_DEADLINE_SECONDS)" in w
        for w in warnings
    ), warnings
    assert not any(slack.url in r.getMessage() for r in caplog.records)


def test_an_unexpected_exception_is_an_internal_error_in_a_known_state(
    published, tmp_path, monkeypatch, capsys, caplog
):
    """A bug in a step (here, an exception raised where the marts have been built): exit 4,
    the warehouse undone, a failed report and a Slack summary that name the step, the
    published files untouched."""
    from slack_receiver import SlackReceiver

    from flows.runtime.failpoints import ENV

    before = fingerprint(published["output"])
    balance_query = (
        "select original_balance_amount from marts.account_summary where account_id = 'A001'"
    )
    with duckdb.connect(str(published["warehouse"])) as con:
        (balance_before,) = con.execute(balance_query).fetchone()
    delivery = copy_sample(tmp_path / "next")
    accounts = (delivery / "accounts.csv").read_text()
    (delivery / "accounts.csv").write_text(accounts.replace("5000.00,Savings", "5100.17,Savings"))
    with SlackReceiver() as slack:
        monkeypatch.setenv("SLACK_WEBHOOK_URL", slack.url)
        monkeypatch.setenv(ENV, "marts=raise")
        assert run_cli(delivery, published) == 4
        summary = slack.wait_for("outputs NOT published")
    assert "Stopped at *marts*: internal error at marts: FailpointRaised" in summary
    dashboard = published["output"] / "failed" / "dashboard.html"
    assert f"Dashboard: {dashboard} ({dashboard.as_uri()})" in summary.splitlines()
    assert dashboard.is_file()
    assert "internal error at marts" in capsys.readouterr().err
    # The flow's prints are its log lines (log_prints), on the console and in Prefect.
    assert any(
        r.getMessage().endswith(f"dashboard: {dashboard} ({dashboard.as_uri()})")
        for r in caplog.records
    )
    assert fingerprint(published["output"]) == before
    failed = json.loads((published["output"] / "failed" / "quality_report.json").read_text())
    assert failed["status"] == "failed"
    assert failed["metrics"]["stopped_at"]["step"] == "marts"
    assert failed["metrics"]["stopped_at"]["outputs_published"] is False
    with duckdb.connect(str(published["warehouse"])) as con:
        (balance,) = con.execute(balance_query).fetchone()
    assert balance == balance_before  # the marts' new version was undone
    assert latest_flow_run_state().message.startswith(
        "stopped at marts: internal error at marts: FailpointRaised"
    )


def cli_process(input_dir, warehouse, output, env, log=None):
    import subprocess
    import sys

    from flows.config import PROJECT_ROOT

    return subprocess.Popen(
        [sys.executable, "-m", "flows.cli", "run", "--input-dir", str(input_dir),
         "--output-dir", str(output), "--warehouse", str(warehouse)],
        env=env,
        cwd=PROJECT_ROOT,
        stdout=subprocess.PIPE if log is None else log,
        stderr=subprocess.STDOUT,
        text=True,
    )  # fmt: skip


def test_two_runs_started_together_run_one_after_the_other(prefect_harness, tmp_path):
    """Two `ledgerflow run` processes on one warehouse and one output folder: the second
    waits (saying for whom), then runs normally; both exit 0; the second's files stay."""
    from prefect.settings import get_current_settings

    from flows.runtime import failpoints

    # Unbuffered, so that the second's "waiting" line reaches its log file as it is said.
    env = {**os.environ, "PREFECT_API_URL": str(get_current_settings().api.url),
           "PYTHONUNBUFFERED": "1"}  # fmt: skip
    warehouse, output = tmp_path / "warehouse.duckdb", tmp_path / "output"
    second_delivery = copy_sample(tmp_path / "second")
    accounts = (second_delivery / "accounts.csv").read_text()
    (second_delivery / "accounts.csv").write_text(accounts + "A951,1,BR09,777.00,savings\n")

    # The first holds the warehouse at ingest until the second has said it is waiting:
    # the overlap is certain, whatever either process's start-up costs.
    release = tmp_path / "release-first"
    first = cli_process(SAMPLE_DIR, warehouse, output, {
        **env, failpoints.ENV: "ingest=wait", failpoints.RELEASE_ENV: str(release)})  # fmt: skip
    lock = warehouse.with_name(warehouse.name + ".lock")
    deadline = time.monotonic() + 180
    while not (lock.exists() and lock.read_text()):  # the first holds the warehouse
        assert first.poll() is None and time.monotonic() < deadline
        time.sleep(0.1)
    second_log_path = tmp_path / "second.log"
    with second_log_path.open("w") as second_log:
        second = cli_process(second_delivery, warehouse, output, env, log=second_log)
        deadline = time.monotonic() + 180
        while "is in use by run" not in second_log_path.read_text():
            assert first.poll() is None and second.poll() is None
            assert time.monotonic() < deadline, second_log_path.read_text()
            time.sleep(0.1)
        release.touch()
        first_out, _ = first.communicate(timeout=300)
        second.wait(timeout=300)
    second_out = second_log_path.read_text()

    assert (first.returncode, second.returncode) == (0, 0), first_out + second_out
    first_run = re.search(r"Run (\S+): warned", first_out).group(1)
    assert f"is in use by run {first_run}" in second_out
    summary = (output / "account_summary.csv").read_text()
    assert "A951," in summary  # the second run's delivery is what is published
    report = json.loads((output / "quality_report.json").read_text())
    assert report["run_id"] == re.search(r"Run (\S+): warned", second_out).group(1)
