"""Every patch of another library's internals, in one place, each for the versions it was
written against.

A patch replaces something private, so an upgrade can silently make it wrong. Each one
therefore checks the installed version first and refuses to run on any other
(`UnsupportedVersion`, naming the package, the version found and the versions it was
written for); the upgrade must re-check the patch and widen the range. For each patch,
tests/test_compat.py has a `test_upstream_…` test that runs the library unpatched and
asserts that it still misbehaves: when an upgrade fixes the problem, that test fails and
the patch can go. All four were re-checked on Prefect 3.9.1, prefect-dbt 0.7.25,
great_expectations 1.24.1 and dbt-duckdb 1.11.1: each is still needed.

- Prefect's cost per dbt node (prefect-dbt runs each node's task in a thread of its own):
  every such thread rebuilt Prefect's settings from a serialized copy (re-reading
  profiles.toml, pyproject.toml and .env), and every new API client loaded the CA bundle
  into a new TLS context. py-spy put most of a layer's overhead there (staging, 44 nodes:
  8.1 s warm against 3.3 s for dbt alone, 4.6 s with both patches). Threads of one process
  can share the settings objects, and one `ssl.SSLContext` per set of arguments can serve
  every connection. No Prefect setting turns either off. Tests:
  test_upstream_prefect_rebuilds_settings_in_every_hydrated_context,
  test_upstream_prefect_builds_a_tls_context_per_client.
- Great Expectations' SQL engine hands a connection back to SQLAlchemy's pool before it
  reads the rows of a query, and DuckDB drops a result whose connection was returned
  (every expectation that reads rows then fails: a row count reads None). GX keeps one
  connection for the dialects that need it (SQLite, SQL Server, ...); DuckDB is added to
  that list. Neither a StaticPool nor `pool_reset_on_return=None` helps: the rows are read
  after the `with` block that returned the connection (tried with GX 1.24.1). Test:
  test_upstream_great_expectations_loses_duckdb_results.

- prefect-dbt's runner builds a `dbtRunner` without the manifest it holds, so every
  invocation parses the project again (0.2-5 s each, see flows/runtime/dbt_parse.py). The
  runner's module gets a `dbtRunner` that takes the manifest set for the invocation at hand
  (`reusing_manifest`), as dbt's own `dbtRunner(manifest=…)` allows. Test:
  test_upstream_prefect_dbt_does_not_hand_dbt_its_manifest.

- dbt-duckdb keeps its in-process DuckDB connection in a class attribute for the life of
  the process, and with it DuckDB's lock on the warehouse file; nothing public closes it
  (`close_all_connections` only drops the reference). A run closes it before it lets go
  of the warehouse, so the next run, in another process, can open the file. Test:
  test_upstream_dbt_duckdb_keeps_the_warehouse_locked. dbt-duckdb's own way out, the
  profile's `keep_open: false`, closes DuckDB whenever no dbt connection is in use, and so
  opens it again for about every node: on the sample 68 opens in one run instead of 1,
  the layers after staging 3.6 s instead of 2.6 s, and each close checkpoints the file. One
  close at the end of the run costs nothing of that.

The dbt side's overrides live in `dbt_project/macros/compat.sql`, with its own guard.
"""

from __future__ import annotations

import functools
import ssl
import types
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from importlib.metadata import version
from typing import Any

# Package -> the version prefixes each patch was written and tested against.
PREFECT_VERSIONS = {"prefect": ("3.9.",), "prefect-dbt": ("0.7.",)}
GREAT_EXPECTATIONS_VERSIONS = {"great_expectations": ("1.24.",)}
DBT_DUCKDB_VERSIONS = {"dbt-duckdb": ("1.11.",)}


class UnsupportedVersion(RuntimeError):
    """An installed library is not a version a patch here was written for."""


def require_versions(
    supported: dict[str, tuple[str, ...]], installed: Callable[[str], str] | None = None
) -> None:
    """Raise UnsupportedVersion unless every package's installed version is supported."""
    for package, prefixes in supported.items():
        found = (installed or version)(package)
        if not found.startswith(prefixes):
            raise UnsupportedVersion(
                f"{package} {found} is installed; flows/runtime/compat.py patches it and was "
                f"written for {' or '.join(p + 'x' for p in prefixes)}: re-check the patch "
                "before widening the range"
            )


@functools.cache
def share_prefect_state_across_dbt_node_threads() -> None:
    """Settings and TLS contexts shared by the threads prefect-dbt runs dbt nodes in.

    Idempotent; call before the first dbt node runs."""
    require_versions(PREFECT_VERSIONS)
    import prefect.client.orchestration
    import prefect_dbt.core.runner
    from prefect.context import SettingsContext, serialize_context

    if prefect_dbt.core.runner.serialize_context is not serialize_context:
        raise UnsupportedVersion("prefect-dbt no longer calls prefect.context.serialize_context")
    if prefect.client.orchestration.ssl is not ssl:
        raise UnsupportedVersion("Prefect's client no longer uses the ssl module directly")

    def serialize_context_sharing_settings(*args: Any, **kwargs: Any) -> dict[str, Any]:
        context = serialize_context(*args, **kwargs)
        current = SettingsContext.get()
        if current is not None:
            context["settings_context"] = {
                "profile": current.profile,
                "settings": current.settings,
            }
        return context

    # The `ssl` names Prefect's client module uses, with contexts created once per argument
    # set (`cafile` included, so a configured CA bundle is still the one used).
    shared_ssl = types.SimpleNamespace(
        SSLContext=ssl.SSLContext,
        CERT_NONE=ssl.CERT_NONE,
        create_default_context=functools.lru_cache(maxsize=8)(ssl.create_default_context),
    )
    prefect_dbt.core.runner.serialize_context = serialize_context_sharing_settings
    prefect.client.orchestration.ssl = shared_ssl


# The parsed manifest for the dbt invocation under way in this context, if any.
_INVOCATION_MANIFEST: ContextVar[Any] = ContextVar("ledgerflow_dbt_manifest", default=None)


@contextmanager
def reusing_manifest(manifest: Any) -> Iterator[None]:
    """prefect-dbt invocations in this block run on `manifest` instead of parsing."""
    pass_parsed_manifest_through_prefect_dbt()
    token = _INVOCATION_MANIFEST.set(manifest)
    try:
        yield
    finally:
        _INVOCATION_MANIFEST.reset(token)


@functools.cache
def pass_parsed_manifest_through_prefect_dbt() -> None:
    """prefect-dbt's runner hands dbt the manifest set by `reusing_manifest`.

    Idempotent."""
    require_versions(PREFECT_VERSIONS)
    import prefect_dbt.core.runner
    from dbt.cli.main import dbtRunner

    if prefect_dbt.core.runner.dbtRunner is not dbtRunner:
        raise UnsupportedVersion("prefect-dbt no longer builds dbt.cli.main.dbtRunner itself")

    class DbtRunnerOnParsedManifest(dbtRunner):
        def __init__(self, manifest: Any = None, callbacks: Any = None) -> None:
            super().__init__(manifest or _INVOCATION_MANIFEST.get(), callbacks)

    prefect_dbt.core.runner.dbtRunner = DbtRunnerOnParsedManifest


@functools.cache
def keep_one_duckdb_connection_in_great_expectations() -> None:
    """GX's SQL engine keeps one connection for DuckDB, as it does for SQLite.

    Idempotent; call after importing great_expectations, before validating."""
    require_versions(GREAT_EXPECTATIONS_VERSIONS)
    import great_expectations.execution_engine.sqlalchemy_execution_engine as engine

    dialects = engine._PERSISTED_CONNECTION_DIALECTS
    if any(getattr(dialect, "value", dialect) == "duckdb" for dialect in dialects):
        return

    class DuckDBDialect(str):
        value = "duckdb"

    engine._PERSISTED_CONNECTION_DIALECTS = (*dialects, DuckDBDialect("duckdb"))


def close_dbt_duckdb_connection() -> None:
    """Close dbt-duckdb's in-process connection to the warehouse, if it opened one."""
    require_versions(DBT_DUCKDB_VERSIONS)
    from dbt.adapters.duckdb.connections import DuckDBConnectionManager

    with DuckDBConnectionManager._LOCK:
        environment = DuckDBConnectionManager._ENV
        if environment is not None:
            environment.close()
            DuckDBConnectionManager._ENV = None
