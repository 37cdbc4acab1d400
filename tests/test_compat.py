"""The patches of other libraries refuse to run on versions they were not written for.

flows/runtime/compat.py (Prefect, prefect-dbt, Great Expectations) and
dbt_project/macros/compat.sql (dbt's own macros) each check the installed version first.
"""

from __future__ import annotations

import subprocess
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
