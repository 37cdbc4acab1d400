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
import signal
import socket
import subprocess
import time
import urllib.request
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
from conftest import CONTRACT_DATA_FILES, copy_sample
from slack_receiver import SlackReceiver

from flows.config import FLOW_NAME, PROJECT_ROOT

BIN = Path(os.environ.get("VIRTUAL_ENV") or PROJECT_ROOT / ".venv") / "bin"
SCHEDULE_TIMEZONE = "Europe/Paris"
RUN_TIMEOUT_SECONDS = 300
TERMINAL = {"COMPLETED", "FAILED", "CRASHED", "CANCELLED"}


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _wait_until_healthy(url: str, process: subprocess.Popen, timeout: float = 180) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"prefect server exited with {process.returncode}")
        try:
            with urllib.request.urlopen(f"{url}/health", timeout=2) as answer:
                if answer.status == 200:
                    return
        except OSError:
            pass
        time.sleep(0.5)
    raise TimeoutError(f"prefect server not healthy after {timeout} s")


def _stop(process: subprocess.Popen) -> None:
    if process.poll() is not None:
        return
    os.killpg(process.pid, signal.SIGINT)
    try:
        process.wait(timeout=20)
    except subprocess.TimeoutExpired:
        os.killpg(process.pid, signal.SIGKILL)
        process.wait()


class Stack:
    """The server, the worker and the environment every client process gets."""

    def __init__(self, root: Path, slack: SlackReceiver):
        self.root = root
        self.slack = slack
        self.port = _free_port()
        self.api_url = f"http://127.0.0.1:{self.port}/api"
        self.ui_url = f"http://127.0.0.1:{self.port}"
        self.logs: dict[str, Path] = {}
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

    def deploy(self) -> subprocess.CompletedProcess:
        """`make deploy`, with the Slack URL and the schedule's time zone from the environment."""
        done = self.run(
            ["make", "--no-print-directory", "deploy"],
            SLACK_WEBHOOK_URL=self.slack.url,
            LEDGERFLOW_SCHEDULE_TIMEZONE=SCHEDULE_TIMEZONE,
        )
        assert done.returncode == 0, done.stdout + done.stderr
        return done

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
def stack(tmp_path_factory):
    root = tmp_path_factory.mktemp("e2e")
    with SlackReceiver() as slack:
        stack = Stack(root, slack)
        server = stack.start(
            "server",
            [
                str(BIN / "prefect"),
                "server",
                "start",
                "--host",
                "127.0.0.1",
                "--port",
                str(stack.port),
            ],
            PREFECT_HOME=str(root / "server-home"),
            PREFECT_UI_URL=stack.ui_url,
        )
        worker = None
        try:
            _wait_until_healthy(stack.api_url, server)
            stack.first_deploy = stack.deploy()
            worker = stack.start(
                "worker",
                [str(BIN / "prefect"), "worker", "start", "--pool", "ledgerflow-process"],
                PREFECT_WORKER_QUERY_SECONDS="2",
            )
            yield stack
        finally:
            # Workers before the server: a worker without its server keeps retrying.
            if worker is not None:
                _stop(worker)
            _stop(server)


def _deployment_run(stack: Stack, deployment: str, **parameters: str) -> subprocess.Popen:
    """`prefect deployment run … --watch`, as a user types it."""
    args = [str(BIN / "prefect"), "deployment", "run", f"{FLOW_NAME}/{deployment}"]
    for name, value in parameters.items():
        args += ["-p", f"{name}={value}"]
    args += ["--watch", "--watch-interval", "1", "--watch-timeout", str(RUN_TIMEOUT_SECONDS)]
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
    with stack.client() as client:
        before = {d.name: (d.id, d.updated) for d in client.read_deployments()}
        automations_before = client.read_automations_by_name("ledgerflow-run-failed-to-slack")
    assert set(before) == {"daily", "adhoc", "marts-only"}

    again = stack.deploy().stdout
    for line in (
        "work pool ledgerflow-process: unchanged",
        "Slack block ledgerflow-slack: unchanged",
        "automation ledgerflow-run-failed-to-slack: unchanged",
    ):
        assert line in again
    with stack.client() as client:
        after = {d.name: d.id for d in client.read_deployments()}
        automations_after = client.read_automations_by_name("ledgerflow-run-failed-to-slack")
        pool = client.read_work_pool("ledgerflow-process")
    assert after == {name: ids[0] for name, ids in before.items()}
    assert [a.id for a in automations_after] == [a.id for a in automations_before]
    assert pool.type == "process"


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


def test_a_blocking_check_fails_the_run_publishes_nothing_and_alerts_slack(stack, tmp_path):
    delivery = copy_sample(tmp_path / "header-only")
    (delivery / "accounts.csv").write_text("AccountID,CustomerID,Balance,AccountType\n")
    output = tmp_path / "output"

    run_id = _started(
        stack, "adhoc", input_dir=delivery, output_dir=output, warehouse=tmp_path / "wh.duckdb"
    )
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
    )

    delivery = copy_sample(tmp_path / "good")
    output = tmp_path / "output"
    parameters = {"input_dir": delivery, "output_dir": output, "warehouse": tmp_path / "wh.duckdb"}

    first = _started(stack, "adhoc", **parameters)
    second = _started(stack, "adhoc", **parameters)
    runs = {run_id: stack.wait_for_run(run_id) for run_id in (first, second)}

    by_state = {run.state_name: run for run in runs.values()}
    assert set(by_state) == {"Completed", "Cancelled"}
    assert "concurrency limit" in by_state["Cancelled"].state.message.lower()
    done = by_state["Completed"]
    published = sorted(p.name for p in output.iterdir() if p.is_file())
    assert published == sorted([*CONTRACT_DATA_FILES, "quality_report.json"])

    with stack.client() as client:
        history = client.read_flow_runs(
            deployment_filter=DeploymentFilter(name=DeploymentFilterName(any_=["adhoc"])),
            limit=20,
        )
        task_names = {
            task.name
            for task in client.read_task_runs(
                flow_run_filter=FlowRunFilter(id=FlowRunFilterId(any_=[done.id])), limit=200
            )
        }
    assert done.id in {run.id for run in history}
    assert any(name.startswith("model stg_accounts") for name in task_names)  # dbt nodes as tasks

    summary = stack.slack.wait_for(f"run `{done.name}`: *warned*, outputs published")
    assert "Published: account_summary 32 rows, customer_profile 21 rows" in summary
    assert "Quarantined accounts: 27" in summary


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
    assert re.search(r"Next scheduled: \S+ \(deployment daily", out)
    print(out)  # the output the README quotes


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
