"""A run past its flow timeout ends TimedOut, the state the failure automation reports.

Prefect ends the flow run's state at the timeout; the flow's body, held here at a wait
failpoint, is not interrupted by it (see docs/operating.md): the test releases it."""

from __future__ import annotations

from conftest import SAMPLE_DIR

from flows.pipeline import account_summary_pipeline
from flows.runtime import failpoints


def test_a_run_held_past_its_timeout_ends_timed_out(prefect_harness, tmp_path, monkeypatch):
    release = tmp_path / "release"
    monkeypatch.setenv(failpoints.ENV, "ingest=wait")
    monkeypatch.setenv(failpoints.RELEASE_ENV, str(release))
    held = account_summary_pipeline.with_options(timeout_seconds=20)
    try:
        state = held(
            input_dir=str(SAMPLE_DIR), output_dir=str(tmp_path / "output"),
            warehouse=str(tmp_path / "warehouse.duckdb"), return_state=True,
        )  # fmt: skip
    finally:
        release.touch()
    assert state.name == "TimedOut", state.message
