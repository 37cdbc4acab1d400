"""No telemetry by default: the effective settings, as dbt and Prefect resolve them.

dbt's anonymous usage statistics are off in dbt_project.yml (`flags:`); Prefect's server
analytics and its SDK events are off through PREFECT_SERVER_ANALYTICS_ENABLED=false and
DO_NOT_TRACK=1, set by flows/config.py for the project's processes and by the Makefile
for what its targets start (docs/operating.md, "Telemetry"). Each test reads the settings
in a process that did not inherit this test process's environment for them.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import DBT

from flows.config import DBT_PROJECT_DIR, PROJECT_ROOT
from flows.steps.dbt_layers import target_path

# Every variable that turns telemetry off; the tests remove them so that what they read
# comes from the project's own settings.
OVERRIDES = ("DO_NOT_TRACK", "DBT_SEND_ANONYMOUS_USAGE_STATS", "PREFECT_SERVER_ANALYTICS_ENABLED")


def clean_environment(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in OVERRIDES}
    return {**env, **extra}


def python(code: str, env: dict[str, str], timeout: float = 300) -> subprocess.CompletedProcess:
    done = subprocess.run(
        [sys.executable, "-c", code],
        cwd=PROJECT_ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-4000:]
    return done


def run_results_flag(target: Path) -> bool:
    return json.loads((target / "run_results.json").read_text())["args"][
        "send_anonymous_usage_stats"
    ]


def test_dbt_by_hand_sends_no_usage_stats(tmp_path):
    """A bare `dbt` invocation, none of the variables set: dbt_project.yml's flag alone."""
    done = subprocess.run(
        [str(DBT), "compile", "--select", "nothing_at_all"]
        + ["--project-dir", str(DBT_PROJECT_DIR), "--profiles-dir", str(DBT_PROJECT_DIR)]
        + ["--target-path", str(tmp_path / "target"), "--log-path", str(tmp_path / "logs")],
        env=clean_environment(LEDGERFLOW_WAREHOUSE=str(tmp_path / "t.duckdb")),
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )
    assert done.returncode == 0, done.stdout[-2000:]
    assert run_results_flag(tmp_path / "target") is False


def test_the_pipelines_dbt_sends_no_usage_stats(sample_run):
    """The flow's own dbt invocations (in-process, through prefect-dbt)."""
    assert run_results_flag(target_path(sample_run.warehouse)) is False


READ_PREFECT_SETTINGS = """
import json, os
{imports}
from prefect.settings import get_current_settings
from prefect.analytics import is_telemetry_enabled
print(json.dumps({{
    "server_analytics": get_current_settings().server.analytics_enabled,
    "sdk_telemetry": is_telemetry_enabled(),
    "DO_NOT_TRACK": os.environ.get("DO_NOT_TRACK"),
}}))
"""
OFF = {"server_analytics": False, "sdk_telemetry": False, "DO_NOT_TRACK": "1"}


def test_the_projects_processes_run_without_telemetry():
    """A fresh process that starts as the CLI does (flows.config first, then Prefect)."""
    code = READ_PREFECT_SETTINGS.format(imports="import flows.cli, flows.config")
    assert json.loads(python(code, clean_environment()).stdout) == OFF


def test_the_ephemeral_server_runs_without_analytics():
    """The server a run starts for itself when no API URL is set reports its analytics
    off, and logs no failed telemetry call."""
    code = """
import flows.config
from prefect.client.orchestration import get_client
with get_client(sync_client=True) as client:
    answer = client.request("GET", "/admin/settings")
    print(answer.json()["server"]["analytics_enabled"])
"""
    env = clean_environment()
    env.pop("PREFECT_API_URL", None)
    done = python(code, env)
    assert done.stdout.split()[-1] == "False"
    assert "telemetry" not in (done.stdout + done.stderr).lower()


@pytest.mark.parametrize("target", ["server", "worker"])
def test_the_make_targets_start_prefect_without_telemetry(tmp_path, target):
    """`make server` and `make worker`, with a stand-in `prefect` that records the
    environment it is started with; Prefect's settings read in that environment."""
    fake_bin = tmp_path / "bin"
    fake_bin.mkdir()
    recorded = tmp_path / "env.json"
    stand_in = fake_bin / "prefect"
    stand_in.write_text(
        f"#!{sys.executable}\nimport json, os\n"
        f"open({str(recorded)!r}, 'w').write(json.dumps(dict(os.environ)))\n"
    )
    stand_in.chmod(0o755)
    done = subprocess.run(
        ["make", "-s", "-o", "install", target, f"BIN={fake_bin}"],
        cwd=PROJECT_ROOT,
        env=clean_environment(),
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    env = json.loads(recorded.read_text())
    code = READ_PREFECT_SETTINGS.format(imports="")
    assert json.loads(python(code, env).stdout) == OFF
