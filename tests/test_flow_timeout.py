"""A run past its flow timeout is stopped where it is and ends TimedOut, the state the
failure automation reports; the next run undoes what it left and publishes."""

from __future__ import annotations

import json
import os
import subprocess
import sys

from conftest import SAMPLE_DIR, latest_flow_run_state

from flows.config import FLOW_TIMEOUT_VAR, PROJECT_ROOT
from flows.errors import EXIT_PUBLISHED, EXIT_TIMED_OUT
from flows.runtime import failpoints


def ledgerflow_run(tmp_path, env: dict[str, str]) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "flows.cli", "run", "--input-dir", str(SAMPLE_DIR),
         "--output-dir", str(tmp_path / "output"),
         "--warehouse", str(tmp_path / "warehouse.duckdb")],
        check=False, env=env, cwd=PROJECT_ROOT, capture_output=True, text=True, timeout=300,
    )  # fmt: skip


def test_a_run_held_past_its_timeout_is_stopped_and_the_next_run_publishes(
    prefect_harness, tmp_path
):
    from prefect.settings import get_current_settings

    env = {**os.environ, "PREFECT_API_URL": str(get_current_settings().api.url)}
    # Held at ingest for ever (the release file is never made): only the timeout ends it.
    held = ledgerflow_run(tmp_path, {
        **env, FLOW_TIMEOUT_VAR: "5", failpoints.ENV: "ingest=wait",
        failpoints.RELEASE_ENV: str(tmp_path / "never")})  # fmt: skip

    assert held.returncode == EXIT_TIMED_OUT, held.stdout + held.stderr
    assert f"time limit of 5 s ({FLOW_TIMEOUT_VAR})" in held.stderr
    assert "Traceback" not in held.stderr
    assert latest_flow_run_state().name == "TimedOut"
    assert not (tmp_path / "output" / "account_summary.csv").exists()

    after = ledgerflow_run(tmp_path, env)
    assert after.returncode == EXIT_PUBLISHED, after.stdout + after.stderr
    report = json.loads((tmp_path / "output" / "quality_report.json").read_text())
    assert report["status"] in ("passed", "warned")
    assert (tmp_path / "output" / "account_summary.csv").exists()
