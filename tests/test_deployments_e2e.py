"""The pipeline operated like production, end to end, on loopback.

A real `prefect server` (own PREFECT_HOME, SQLite), `make deploy`, a process worker, the
real Slack client posting to an HTTP receiver this test starts. What a user does with
`make server`, `make deploy`, `make worker` and `prefect deployment run`, checked through
the server's API.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import time
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
from conftest import CONTRACT_DATA_FILES, SAMPLE_DIR, copy_sample
from prefect_server import BIN, PrefectServer, stop
from slack_receiver import SlackReceiver

from flows.config import (
    ANOMALY_AUTOMATION,
    ANOMALY_RULES_VAR,
    FAILURE_AUTOMATION,
    FLOW_NAME,
    PROJECT_ROOT,
    WORK_POOL,
)

SCHEDULE_TIMEZONE = "Europe/Paris"
RUN_TIMEOUT_SECONDS = 300
TERMINAL = {"COMPLETED", "FAILED", "CRASHED", "CANCELLED"}


class Stack:
    """The server, the worker and the environment every client process gets."""

    def __init__(self, server: PrefectServer, root: Path, slack: SlackReceiver):
        self.root = root
        self.slack = slack
        self.api_url = server.api_url
        self.ui_url = server.ui_url
        self.logs: dict[str, Path] = {"server": server.log}
        self.env = {k: v for k, v in os.environ.items() if not k.startswith("PREFECT_")}
        self.env.update(
            PREFECT_HOME=str(root / "client-home"),
            PREFECT_API_URL=self.api_url,
            PREFECT_SERVER_ANALYTICS_ENABLED="false",
        )
        self.env.pop("SLACK_WEBHOOK_URL", None)
        self.processes: list[subprocess.Popen] = []

    def start(self, name: str, args: list[str], **env: str) -> subprocess.Popen:
        self.logs[name] = self.root / f"{name}.log"
        process = subprocess.Popen(
            args,
            cwd=PROJECT_ROOT,
            env={**self.env, **env},
            stdout=self.logs[name].open("w"),
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        self.processes.append(process)
        return process

    def run(self, args: list[str], **env: str) -> subprocess.CompletedProcess:
        return subprocess.run(
            args,
            check=False,
            cwd=PROJECT_ROOT,
            env={**self.env, **env},
            capture_output=True,
            text=True,
            timeout=300,
        )

    DEPLOY = ("make", "--no-print-directory", "deploy")

    def deploy_env(self) -> dict[str, str]:
        """`make deploy` gets the Slack URL and the schedule's time zone from the environment."""
        return {
            "SLACK_WEBHOOK_URL": self.slack.url,
            "LEDGERFLOW_SCHEDULE_TIMEZONE": SCHEDULE_TIMEZONE,
        }

    def deploy(self) -> subprocess.CompletedProcess:
        done = self.run(list(self.DEPLOY), **self.deploy_env())
        assert done.returncode == 0, done.stdout + done.stderr
        return done

    def deployments_and_automations(self) -> tuple[dict, list]:
        with self.client() as client:
            deployments = {d.name: d.id for d in client.read_deployments()}
            automations = client.read_automations_by_name(FAILURE_AUTOMATION)
        return deployments, [automation.id for automation in automations]

    def client(self):
        from prefect.client.orchestration import get_client
        from prefect.settings import PREFECT_API_URL, temporary_settings

        class _Client:
            def __enter__(inner):
                inner.settings = temporary_settings({PREFECT_API_URL: self.api_url})
                inner.settings.__enter__()
                inner.client = get_client(sync_client=True)
                return inner.client.__enter__()

            def __exit__(inner, *exc):
                inner.client.__exit__(*exc)
                inner.settings.__exit__(*exc)

        return _Client()

    def wait_for_run(self, run_id: str):
        deadline = time.monotonic() + RUN_TIMEOUT_SECONDS
        with self.client() as client:
            while time.monotonic() < deadline:
                run = client.read_flow_run(run_id)
                if run.state_type.value in TERMINAL:
                    return run
                time.sleep(1)
        raise TimeoutError(f"flow run {run_id} not finished after {RUN_TIMEOUT_SECONDS} s")

    def all_logs_text(self) -> str:
        return "\n".join(path.read_text(errors="replace") for path in self.logs.values())


@pytest.fixture(scope="module")
def stack(e2e_prefect_server, tmp_path_factory):
    """Deployed, with a worker; the failing delivery's run and the second `make deploy`
    are started here, so they overlap (the adhoc deployment runs one flow at a time, so
    the good delivery's runs start only when the failing one has ended)."""
    root = tmp_path_factory.mktemp("e2e")
    with SlackReceiver() as slack:
        stack = Stack(e2e_prefect_server, root, slack)
        try:
            stack.first_deploy = stack.deploy()
            stack.deployed = stack.deployments_and_automations()
            stack.start(
                "worker",
                [str(BIN / "prefect"), "worker", "start", "--pool", WORK_POOL],
                PREFECT_WORKER_QUERY_SECONDS="1",
            )
            # One warehouse for both deliveries, as in production: a failed delivery must
            # leave it fit for the next one.
            stack.warehouse = root / "warehouse.duckdb"
            stack.failing = start_failing_delivery_run(stack, root / "failing")
            stack.second_deploy = stack.start(
                "deploy-again", list(stack.DEPLOY), **stack.deploy_env()
            )
            yield stack
        finally:
            # Workers before the server: a worker without its server keeps retrying.
            for process in stack.processes:
                stop(process)


def start_failing_delivery_run(stack: Stack, folder: Path) -> dict:
    delivery = copy_sample(folder / "header-only")
    (delivery / "accounts.csv").write_text("AccountID,CustomerID,Balance,AccountType\n")
    output = folder / "output"
    run_id = _started(
        stack, "adhoc", input_dir=delivery, output_dir=output, warehouse=stack.warehouse
    )
    return {"run_id": run_id, "output": output}


def _deployment_run(stack: Stack, deployment: str, **parameters: str) -> subprocess.Popen:
    """`prefect deployment run`, as a user types it."""
    args = [str(BIN / "prefect"), "deployment", "run", f"{FLOW_NAME}/{deployment}"]
    for name, value in parameters.items():
        args += ["-p", f"{name}={value}"]
    return stack.start(f"run-{deployment}-{len(stack.processes)}", args)


def _run_id(stack: Stack, process: subprocess.Popen, name: str) -> str:
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        found = re.search(r"UUID: ([0-9a-f-]{36})", stack.logs[name].read_text())
        if found:
            return found.group(1)
        if process.poll() is not None and not found:
            break
        time.sleep(0.5)
    raise AssertionError(f"no flow run id in: {stack.logs[name].read_text()}")


def _started(stack: Stack, deployment: str, **parameters: str) -> str:
    process = _deployment_run(stack, deployment, **parameters)
    return _run_id(stack, process, list(stack.logs)[-1])


def test_make_deploy_creates_everything_and_is_idempotent(stack):
    first = stack.first_deploy.stdout
    assert "work pool ledgerflow-process: created" in first
    assert "Slack block ledgerflow-slack: created" in first
    assert "automation ledgerflow-run-failed-to-slack: created" in first
    assert f"automation {ANOMALY_AUTOMATION}: created" in first
    deployments, automations = stack.deployed
    assert set(deployments) == {"daily", "full-check", "adhoc", "marts-only"}
    assert len(automations) == 1

    assert stack.second_deploy.wait(timeout=300) == 0, stack.logs["deploy-again"].read_text()
    again = stack.logs["deploy-again"].read_text()
    for line in (
        "work pool ledgerflow-process: unchanged",
        "Slack block ledgerflow-slack: unchanged",
        "automation ledgerflow-run-failed-to-slack: unchanged",
        f"automation {ANOMALY_AUTOMATION}: unchanged",
    ):
        assert line in again
    assert stack.deployments_and_automations() == (deployments, automations)
    with stack.client() as client:
        assert client.read_work_pool(WORK_POOL).type == "process"


def test_daily_schedule_created_scheduled_runs_at_two_local_time(stack):
    from prefect.client.schemas.filters import DeploymentFilter, DeploymentFilterName

    deadline = time.monotonic() + 60
    with stack.client() as client:
        while time.monotonic() < deadline:
            runs = client.read_flow_runs(
                deployment_filter=DeploymentFilter(name=DeploymentFilterName(any_=["daily"])),
                limit=10,
            )
            if runs:
                break
            time.sleep(1)
    assert runs, "the daily schedule created no runs"
    assert {run.state_name for run in runs} == {"Scheduled"}
    for run in runs:
        local = run.expected_start_time.astimezone(ZoneInfo(SCHEDULE_TIMEZONE))
        assert (local.hour, local.minute) == (2, 0)
        assert run.parameters["input_dir"] == "data/incoming"


def test_a_blocking_check_fails_the_run_publishes_nothing_and_alerts_slack(stack):
    run_id, output = stack.failing["run_id"], stack.failing["output"]
    run = stack.wait_for_run(run_id)

    assert run.state_name == "Failed"
    assert run.state.message.startswith("stopped at source_freshness: blocking checks failed")
    assert not [p for p in output.glob("*") if p.is_file()]  # only output/failed/ was written
    assert json.loads((output / "failed" / "quality_report.json").read_text())["status"] == "failed"
    alert = stack.slack.wait_for(f"{run.name} is Failed")
    assert "Deployment: adhoc" in alert
    assert "stopped at source_freshness" in alert
    assert re.search(rf"{stack.ui_url}/(flow-)?runs/flow-run/{run_id}", alert)  # a link to the run
    summary = stack.slack.wait_for(f"run `{run.name}`: *failed*, outputs NOT published")
    assert "Stopped at *source_freshness*" in summary


def test_a_good_delivery_publishes_and_a_second_run_at_once_is_cancelled(stack, tmp_path):
    from prefect.client.schemas.filters import (
        DeploymentFilter,
        DeploymentFilterName,
        FlowRunFilter,
        FlowRunFilterId,
        FlowRunFilterParentFlowRunId,
    )

    stack.wait_for_run(stack.failing["run_id"])  # one adhoc run at a time

    delivery = copy_sample(tmp_path / "good")
    output = tmp_path / "output"
    parameters = {"input_dir": delivery, "output_dir": output, "warehouse": stack.warehouse}

    first = _started(stack, "adhoc", **parameters)
    second = _started(stack, "adhoc", **parameters)
    runs = {run_id: stack.wait_for_run(run_id) for run_id in (first, second)}

    by_state = {run.state_name: run for run in runs.values()}
    assert set(by_state) == {"Completed", "Cancelled"}
    assert "concurrency limit" in by_state["Cancelled"].state.message.lower()
    done = by_state["Completed"]
    published = sorted(p.name for p in output.iterdir() if p.is_file())
    assert published == sorted(
        [*CONTRACT_DATA_FILES, "quality_report.json", "dashboard.html", "dbt_docs.html"]
    )

    with stack.client() as client:
        history = client.read_flow_runs(
            deployment_filter=DeploymentFilter(name=DeploymentFilterName(any_=["adhoc"])),
            limit=20,
        )
        # The run reads as the pipeline's layers: one subflow per dbt layer, in order, each
        # holding its dbt nodes as task runs.
        layers = client.read_flow_runs(
            flow_run_filter=FlowRunFilter(
                parent_flow_run_id=FlowRunFilterParentFlowRunId(any_=[done.id])
            ),
            limit=20,
        )
        layer_tasks = {
            layer.name: {
                task.name
                for task in client.read_task_runs(
                    flow_run_filter=FlowRunFilter(id=FlowRunFilterId(any_=[layer.id])), limit=200
                )
            }
            for layer in layers
        }
        order = [layer.name for layer in sorted(layers, key=lambda layer: layer.start_time)]
    assert done.id in {run.id for run in history}
    builds = [name for name in order if not name.endswith(" unit tests")]
    assert builds == ["dbt staging", "dbt snapshots", "dbt intermediate", "dbt marts"]
    # A layer's unit tests, when they run (not Cached from an earlier run of the same code),
    # follow its build.
    for name in set(order) - set(builds):
        assert order.index(name) > order.index(name.removesuffix(" unit tests")), order
    assert {layer.state_name for layer in layers} == {"Completed"}
    for layer, model in [
        ("dbt staging", "model stg_accounts"),
        ("dbt snapshots", "model accounts_snapshot"),
        ("dbt marts", "model account_summary"),
    ]:
        assert any(name.startswith(model) for name in layer_tasks[layer]), (layer, model)
    # dbt's lineage as assets: account_summary from its history, that from intermediate.
    lineage = materialized_assets(stack, "/marts/account_summary")
    summary_asset = next(key for key in lineage if key.endswith("/marts/account_summary"))
    assert summary_asset.startswith("duckdb://")
    assert {key.rsplit("/", 1)[1] for key in lineage[summary_asset]} == {"account_summary_history"}
    history = next(key for key in lineage if key.endswith("/marts/account_summary_history"))
    assert {key.rsplit("/", 1)[1] for key in lineage[history]} >= {
        "int_savings_accounts_interest_calculated"
    }

    summary = stack.slack.wait_for(f"run `{done.name}`: *warned*, outputs published")
    assert "Published: account_summary 32 rows, customer_profile 21 rows" in summary
    assert "Quarantined accounts: 27" in summary


def materialized_assets(stack: Stack, expected_suffix: str) -> dict[str, set[str]]:
    """Each asset materialized so far -> the upstream assets its event names, once an asset
    ending in `expected_suffix` is among them (the server stores events in batches)."""
    from prefect.events.filters import EventFilter, EventNameFilter

    name = EventNameFilter(name=["prefect.asset.materialization.succeeded"])
    deadline = time.monotonic() + 30
    with stack.client() as client:
        while True:
            events = client.read_events(EventFilter(event=name), limit=50).events
            lineage = {
                event.resource.id: {r.id for r in event.related if r.role == "asset"}
                for event in events
            }
            if any(key.endswith(expected_suffix) for key in lineage):
                return lineage
            if time.monotonic() > deadline:
                raise AssertionError(f"no materialization of *{expected_suffix}: {lineage}")
            time.sleep(1)


def test_ledgerflow_status_reads_the_history_from_the_server(stack):
    done = stack.run([str(BIN / "ledgerflow"), "status"])
    assert done.returncode == 0, done.stderr
    out = done.stdout
    assert out.startswith(f"Prefect API: {stack.api_url}")
    assert re.search(r"Last successful run: \S+ \(deployment adhoc, .*took \d+\.\d s", out)
    assert "account_summary 32 rows, customer_profile 21 rows" in out
    assert re.search(
        r"Last failed run: \S+ \(deployment adhoc.*\n  stopped at source_freshness", out
    )
    # The earliest scheduled run: daily's (02:00), but on Sundays from 02:00 to 03:00 in the
    # schedule's time zone, full-check's (Sundays 03:00).
    assert re.search(r"Next scheduled: \S+ \(deployment (daily|full-check)", out)
    print(out)  # the output docs/operating.md quotes


def test_no_server_configured_is_said_plainly(tmp_path):
    env = {k: v for k, v in os.environ.items() if not k.startswith("PREFECT_")}
    env["PREFECT_HOME"] = str(tmp_path)
    done = subprocess.run(
        [str(BIN / "ledgerflow"), "status"],
        check=False,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 2
    assert "no Prefect server configured: PREFECT_API_URL is not set" in done.stderr


def test_the_webhook_url_appears_nowhere(stack):
    """Not in any process's output, any run's logs or artifacts, nor in the messages."""
    from prefect.client.schemas.filters import LogFilter

    secret = stack.slack.url.split("/services/", 1)[1]
    with stack.client() as client:
        logs = [
            log
            for offset in range(0, 5000, 200)
            for log in client.read_logs(log_filter=LogFilter(), limit=200, offset=offset)
        ]
        artifacts = client.read_artifacts(limit=100)
    assert logs and artifacts
    assert secret not in " ".join(log.message for log in logs)
    assert secret not in " ".join(str(artifact.data) for artifact in artifacts)
    assert secret not in stack.all_logs_text()
    assert secret not in " ".join(stack.slack.texts())


def test_the_automation_compares_its_event_sets_in_any_order():
    """`make deploy` compares the automation it wants with the server's; the trigger's
    event sets come back as lists in set-iteration order, which is not stable."""
    from deployments.automations import _sorted_string_lists, _spec, failure_automation

    spec = _spec(failure_automation("00000000-0000-0000-0000-000000000001"))
    assert spec["trigger"]["expect"] == [
        "prefect.flow-run.Crashed",
        "prefect.flow-run.Failed",
        "prefect.flow-run.TimedOut",
    ]
    # Lists of strings are sets to compare; lists of objects (the actions) keep their order.
    actions = [{"type": "b"}, {"type": "a"}]
    assert _sorted_string_lists({"expect": ["b", "a"], "actions": actions}) == {
        "expect": ["a", "b"],
        "actions": actions,
    }


def test_a_deployment_run_waits_for_a_cli_run_on_the_same_warehouse(stack, tmp_path):
    """`ledgerflow run` from a shell and a run of another deployment (marts-only) on one
    warehouse: the deployment's run waits for the CLI's, naming it, and both succeed."""
    stack.wait_for_run(stack.failing["run_id"])
    delivery = copy_sample(tmp_path / "cli-delivery")
    accounts = (delivery / "accounts.csv").read_text()
    (delivery / "accounts.csv").write_text(accounts + "A952,1,BR09,321.00,savings\n")
    output = tmp_path / "output"
    cli = stack.start(
        "cli-run",
        [str(BIN / "ledgerflow"), "run", "--input-dir", str(delivery), "--output-dir",
         str(output), "--warehouse", str(stack.warehouse)],
    )  # fmt: skip
    lock = stack.warehouse.with_name(stack.warehouse.name + ".lock")
    deadline = time.monotonic() + 120
    while not (lock.exists() and lock.read_text()):
        assert cli.poll() is None and time.monotonic() < deadline, stack.logs["cli-run"].read_text()
        time.sleep(0.1)
    holder = json.loads(lock.read_text())["holder"]
    marts_only = _started(stack, "marts-only", output_dir=output, warehouse=stack.warehouse)

    assert cli.wait(timeout=RUN_TIMEOUT_SECONDS) == 0, stack.logs["cli-run"].read_text()
    run = stack.wait_for_run(marts_only)
    assert run.state_name == "Completed", run.state.message
    assert f"is in use by run {holder}" in stack.logs["worker"].read_text()
    assert "A952," in (output / "account_summary.csv").read_text()


def test_an_anomaly_reaches_slack_through_its_automation_and_is_resolved_later(stack, tmp_path):
    """`ledgerflow run`s against the server on their own warehouse, the volume rule's
    minimum history lowered to one run: an ordinary delivery, then one with 12 of its 63
    accounts raises rows_delivered of accounts, whose event the anomaly automation posts
    to Slack, templates rendered; the next ordinary delivery resolves it."""
    warehouse = tmp_path / "warehouse.duckdb"
    rules = json.dumps({"rows_delivered": {"min_history": 1}})

    def night(name: str, delivery: Path) -> dict:
        output = tmp_path / name / "output"
        process = stack.start(
            f"anomaly-{name}",
            [str(BIN / "ledgerflow"), "run", "--input-dir", str(delivery), "--output-dir",
             str(output), "--warehouse", str(warehouse)],
            **{ANOMALY_RULES_VAR: rules},
        )  # fmt: skip
        assert process.wait(timeout=RUN_TIMEOUT_SECONDS) == 0, stack.logs[f"anomaly-{name}"]
        return json.loads((output / "quality_report.json").read_text())

    night("first", SAMPLE_DIR)
    fewer = copy_sample(tmp_path / "fewer")
    lines = (fewer / "accounts.csv").read_text(encoding="utf-8").splitlines(keepends=True)
    (fewer / "accounts.csv").write_text("".join(lines[:13]), encoding="utf-8")
    anomalous = night("fewer", fewer)
    (raised,) = anomalous["metrics"]["anomalies"]["raised"]
    assert (raised["metric"], raised["subject"]) == ("rows_delivered", "accounts")

    # The automation's message, not the run's summary (which lists it too).
    alert = stack.slack.wait_for("Ledgerflow ledgerflow.anomaly.raised", timeout=60)
    assert "rows_delivered of accounts" in alert
    assert raised["message"] in alert
    assert "Metric: rows_delivered of accounts" in alert
    assert f"Run: {anomalous['run_id']}" in alert
    assert "{{" not in alert and "}}" not in alert

    normal = night("normal", SAMPLE_DIR)
    (resolved,) = normal["metrics"]["anomalies"]["resolved"]
    assert (resolved["metric"], resolved["subject"]) == ("rows_delivered", "accounts")
    assert resolved["raised_in_run"] == anomalous["run_id"]
    assert f"• resolved: {resolved['message']}" in stack.slack.wait_for("• resolved: ")
    cleared = stack.slack.wait_for("Ledgerflow ledgerflow.anomaly.resolved", timeout=60)
    assert resolved["message"] in cleared
    assert f"Run: {normal['run_id']}" in cleared
    assert "{{" not in cleared and "}}" not in cleared
