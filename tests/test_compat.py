"""The patches of other libraries refuse to run on versions they were not written for.

flows/runtime/compat.py (Prefect, prefect-dbt, Great Expectations, dbt-duckdb) and
dbt_project/macros/compat.sql (dbt's own macros) each check the installed version first.
And each Python patch is still needed: its `test_upstream_…` test shows the problem in the
unpatched library.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
from conftest import run_dbt

from flows.config import DBT_PROJECT_DIR
from flows.runtime import compat
from flows.runtime.dbt_parse import parse_target, parsed_manifest
from flows.steps.dbt_layers import target_path


def test_the_installed_versions_are_the_supported_ones():
    compat.require_versions(compat.PREFECT_VERSIONS)
    compat.require_versions(compat.GREAT_EXPECTATIONS_VERSIONS)
    compat.require_versions(compat.DBT_DUCKDB_VERSIONS)


@pytest.mark.parametrize(
    ("supported", "package"),
    [(compat.PREFECT_VERSIONS, "prefect-dbt"), (compat.GREAT_EXPECTATIONS_VERSIONS, None)],
)
def test_a_python_patch_refuses_another_version(supported, package):
    package = package or next(iter(supported))

    def installed(name: str) -> str:
        return "9.0.0" if name == package else compat.version(name)

    with pytest.raises(compat.UnsupportedVersion) as raised:
        compat.require_versions(supported, installed=installed)
    assert f"{package} 9.0.0 is installed" in str(raised.value)
    assert "re-check the patch" in str(raised.value)


def test_each_python_patch_checks_the_version_before_patching(monkeypatch):
    monkeypatch.setattr(
        compat, "version", lambda name: "0.1.0" if name == "great_expectations" else "3.9.1"
    )
    patch = compat.keep_one_duckdb_connection_in_great_expectations.__wrapped__
    with pytest.raises(compat.UnsupportedVersion):
        patch()
    monkeypatch.setattr(compat, "version", lambda name: "0.1.0")
    with pytest.raises(compat.UnsupportedVersion):
        compat.share_prefect_state_across_dbt_node_threads.__wrapped__()
    with pytest.raises(compat.UnsupportedVersion):
        compat.pass_parsed_manifest_through_prefect_dbt.__wrapped__()
    with pytest.raises(compat.UnsupportedVersion):
        compat.close_dbt_duckdb_connection()


def dbt(tmp_path: Path, *args: str) -> subprocess.CompletedProcess:
    return run_dbt(tmp_path, *args, env={"LEDGERFLOW_WAREHOUSE": str(tmp_path / "c.duckdb")})


def test_the_dbt_overrides_refuse_another_dbt_version(tmp_path):
    """is_incremental() runs when an incremental model compiles: with a dbt version the
    overrides were not written for, the compile stops with the guard's message."""
    unsupported = "{compat_dbt_versions: ['0.0.']}"
    done = dbt(tmp_path, "compile", "--select", "account_summary", "--vars", unsupported)
    assert done.returncode != 0
    output = done.stdout + done.stderr
    assert "macros/compat.sql overrides dbt's is_incremental()" in output
    assert "was written for dbt 0.0.x" in output
    supported = dbt(tmp_path, "compile", "--select", "account_summary")
    assert supported.returncode == 0, supported.stdout[-2000:]


def test_every_dbt_override_calls_the_guard():
    """Each macro of compat.sql but the guard itself starts by calling it."""
    source = (DBT_PROJECT_DIR / "macros" / "compat.sql").read_text()
    macros = source.split("{% macro ")[1:]
    assert len(macros) >= 3
    for macro in macros:
        name = macro.split("(", 1)[0]
        if name != "assert_supported_dbt_version":
            body = macro.split("-%}", 1)[1]
            assert body.lstrip().startswith("{%- do assert_supported_dbt_version("), name


def test_a_run_parses_the_project_once_for_every_layer(sample_run):
    """Every layer ran on the manifest parsed beforehand: dbt wrote its run results in the
    run's target folder but never parsed there (a parse leaves partial_parse.msgpack)."""
    run_target = target_path(sample_run.warehouse)
    assert (run_target / "run_results.json").is_file()
    assert not (run_target / "partial_parse.msgpack").exists()
    assert (parse_target(sample_run.warehouse) / "partial_parse.msgpack").is_file()


def test_the_parse_does_not_depend_on_the_warehouse_folder(tmp_path):
    """Warehouses named alike share one parse, whatever their folder (dbt hashes the
    profile's path into its partial-parse check: the parse sees a stand-in)."""
    first = parsed_manifest(tmp_path / "one" / "warehouse.duckdb")
    again = parsed_manifest(tmp_path / "two" / "warehouse.duckdb")
    assert again is first
    other = parsed_manifest(tmp_path / "one" / "nightly.duckdb")
    node = other.nodes["model.ledgerflow.account_summary"]
    assert node.database == "nightly"
    assert first.nodes["model.ledgerflow.account_summary"].database == "warehouse"


# Each patch of flows/runtime/compat.py against the problem it works around. The first test
# of each pair runs the library as it is, unpatched, and asserts that it still misbehaves:
# when an upgrade fixes the problem upstream, that test fails, and the patch can go.


def test_upstream_prefect_rebuilds_settings_in_every_hydrated_context():
    """prefect-dbt hands every dbt node's thread a serialized context, and hydrating it
    validates a new Settings (re-reading profiles.toml, pyproject.toml, .env).
    Without the problem: drop the settings half of share_prefect_state_across_dbt_node_threads."""
    from prefect.context import SettingsContext, serialize_context
    from prefect.settings import get_current_settings

    hydrated = SettingsContext(**serialize_context()["settings_context"])
    assert hydrated.settings is not get_current_settings()
    assert hydrated.settings == get_current_settings()


def test_the_patch_shares_prefect_settings_with_dbt_node_threads():
    import prefect_dbt.core.runner
    from prefect.context import SettingsContext
    from prefect.settings import get_current_settings

    compat.share_prefect_state_across_dbt_node_threads()
    context = prefect_dbt.core.runner.serialize_context()
    assert SettingsContext(**context["settings_context"]).settings is get_current_settings()


def client_tls_context(client) -> object:
    return client._client._transport._pool._ssl_context


def test_upstream_prefect_builds_a_tls_context_per_client(monkeypatch):
    """Every API client loads the CA bundle into an SSLContext of its own.
    Without the problem: drop the TLS half of share_prefect_state_across_dbt_node_threads."""
    import ssl

    import prefect.client.orchestration
    from prefect.client.orchestration import SyncPrefectClient

    monkeypatch.setattr(prefect.client.orchestration, "ssl", ssl)
    first, second = (SyncPrefectClient("http://127.0.0.1:9/api") for _ in range(2))
    assert client_tls_context(first) is not client_tls_context(second)


def test_the_patch_shares_one_tls_context_between_clients():
    from prefect.client.orchestration import SyncPrefectClient

    compat.share_prefect_state_across_dbt_node_threads()
    first, second = (SyncPrefectClient("http://127.0.0.1:9/api") for _ in range(2))
    assert client_tls_context(first) is client_tls_context(second)


class Stop(Exception):
    pass


def test_upstream_prefect_dbt_does_not_hand_dbt_its_manifest(tmp_path, monkeypatch):
    """PrefectDbtRunner(manifest=…) holds the parsed manifest but builds dbt's runner
    without it, so dbt parses the project again on every invocation.
    Without the problem: drop pass_parsed_manifest_through_prefect_dbt and reusing_manifest.
    That the patch works: test_a_run_parses_the_project_once_for_every_layer."""
    import prefect_dbt.core.runner
    from dbt.cli.main import dbtRunner
    from prefect_dbt import PrefectDbtRunner, PrefectDbtSettings

    manifest = parsed_manifest(tmp_path / "warehouse.duckdb")
    given = []

    class RecordingDbtRunner(dbtRunner):
        def __init__(self, manifest=None, callbacks=None):
            given.append(manifest)
            raise Stop

    monkeypatch.setattr(prefect_dbt.core.runner, "dbtRunner", RecordingDbtRunner)
    settings = PrefectDbtSettings(
        project_dir=DBT_PROJECT_DIR,
        profiles_dir=DBT_PROJECT_DIR,
        target_path=tmp_path / "target",
    )
    runner = PrefectDbtRunner(settings=settings, raise_on_failure=False, manifest=manifest)
    with pytest.raises(Stop):
        runner.invoke(["build", "--select", "account_summary"])
    assert given == [None]


def test_upstream_great_expectations_loses_duckdb_results(sample_run, monkeypatch):
    """GX hands a DuckDB connection back to SQLAlchemy's pool before it reads the rows of a
    query, and DuckDB drops the result: every expectation that reads rows fails (a row
    count reads None), only the column names (read by reflection) pass. Without the
    problem: drop keep_one_duckdb_connection_in_great_expectations. The patch passes them."""
    import great_expectations.execution_engine.sqlalchemy_execution_engine as engine

    from flows.steps import expectations

    def validate() -> dict[tuple[str, str], object]:
        results = expectations.validate_expectations.fn(sample_run.warehouse)
        return {(r.model, r.name): r for r in results}

    unpatched = tuple(
        d for d in engine._PERSISTED_CONNECTION_DIALECTS if getattr(d, "value", d) != "duckdb"
    )
    with monkeypatch.context() as without_patch:
        without_patch.setattr(engine, "_PERSISTED_CONNECTION_DIALECTS", unpatched)
        without_patch.setattr(
            expectations, "keep_one_duckdb_connection_in_great_expectations", lambda: None
        )
        results = validate()
    reading_rows = {k: r for k, r in results.items() if "columns_to_match_set" not in k[1]}
    assert reading_rows
    assert {r.status for r in reading_rows.values()} == {"fail"}
    row_count = results["raw_accounts", "expect_table_row_count_to_be_between"]
    assert "has None rows" in row_count.message
    assert {r.status for r in validate().values()} == {"pass"}


def other_process_opens(warehouse: Path) -> subprocess.CompletedProcess:
    code = f"import duckdb; duckdb.connect({str(warehouse)!r}).close()"
    return subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=False
    )


def test_upstream_dbt_duckdb_keeps_the_warehouse_locked(tmp_path, monkeypatch):
    """After an in-process dbt invocation, dbt-duckdb keeps its DuckDB connection, and with
    it the lock on the warehouse file, for the life of the process; its public
    close_all_connections() only drops the reference. Without the problem: drop
    close_dbt_duckdb_connection. The patch releases the file."""
    from dbt.adapters.duckdb.connections import DuckDBConnectionManager
    from dbt.cli.main import dbtRunner

    from flows.runtime.dbt_parse import DBT_INVOCATION_LOCK

    warehouse = tmp_path / "warehouse.duckdb"
    manifest = parsed_manifest(warehouse)
    monkeypatch.setenv("LEDGERFLOW_WAREHOUSE", str(warehouse))
    args = ["compile", "--select", "account_summary", "--project-dir", str(DBT_PROJECT_DIR)]
    args += ["--profiles-dir", str(DBT_PROJECT_DIR), "--target-path", str(tmp_path / "t")]
    with DBT_INVOCATION_LOCK:
        try:
            assert dbtRunner(manifest=manifest).invoke(args).success
            held = other_process_opens(warehouse)
            assert held.returncode != 0 and "lock" in held.stderr
            assert DuckDBConnectionManager._ENV is not None
            compat.close_dbt_duckdb_connection()
            released = other_process_opens(warehouse)
            assert released.returncode == 0, released.stderr
        finally:
            compat.close_dbt_duckdb_connection()
