"""dbt, layer by layer, through prefect-dbt so every dbt node is a Prefect task.

Each layer is one `dbt build --select <layer>`: its models or snapshots and their tests.
A layer that ends with an error (a model that fails, or a test at error severity) stops
the run there, and the error names the layer and the failing nodes. Status is read from
dbt's run results, not from Prefect task states, which update asynchronously.
"""

from __future__ import annotations

import hashlib
import os
import time
from collections.abc import Iterator
from contextlib import AbstractContextManager, contextmanager
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

import duckdb
from prefect import flow, task
from prefect.settings import PREFECT_FLOWS_HEARTBEAT_FREQUENCY, temporary_settings

from flows.config import DBT_LAYERS, DBT_PROJECT_DIR, DUCKDB_MEMORY_LIMIT, PipelineSettings
from flows.errors import LayerFailed
from flows.quality.checks import CHANGE_SET, FIXTURES, WHOLE_TABLE, CheckResult
from flows.runtime.compat import (
    close_dbt_duckdb_connection,
    reusing_manifest,
    share_prefect_state_across_dbt_node_threads,
)
from flows.runtime.dbt_parse import DBT_INVOCATION_LOCK, parsed_manifest, start_parsing
from flows.runtime.step_cache_policy import STEP_CACHE
from flows.runtime.warehouse import connect

# The run's timestamp and scope, for the models (macros run_timestamp() and full_scope()).
RUN_CONTEXT = "ledgerflow.run_context"
# What a test scoped to tonight's change set carries in its compiled SQL
# (dbt_project/macros/change_sets.sql, change_set_marker()).
CHANGE_SET_MARKER = "ledgerflow scope: change set"

if TYPE_CHECKING:
    from prefect_dbt import PrefectDbtRunner

TEST_RESOURCE_TYPES = {"test", "unit_test"}
MAX_KEYS_SHOWN = 10


@dataclass(frozen=True)
class LayerResult:
    layer: str
    checks: tuple[CheckResult, ...]
    node_seconds: dict[str, float]
    seconds: float
    failed_nodes: tuple[str, ...] = ()


def target_path(warehouse: Path, project_dir: Path = DBT_PROJECT_DIR) -> Path:
    """dbt's target folder for a warehouse: runs against different warehouses never share
    dbt's artifacts; runs against the same one are serialised."""
    digest = hashlib.sha1(str(warehouse).encode()).hexdigest()[:10]
    return project_dir / "target" / f"{warehouse.stem}-{digest}"


class DbtProject:
    """The project's dbt (or a copy of it, in `project_dir`), pointed at one warehouse with
    one run's timestamp.

    `full_refresh` recomputes every key rather than only those whose inputs changed; it
    never rebuilds a table (the versioned tables keep their history, and what differs is
    written as new versions). Checks read tonight's change set unless
    `check_whole_tables` (always with `full_refresh`)."""

    def __init__(
        self,
        warehouse: Path,
        run_at: datetime,
        full_refresh: bool = False,
        project_dir: Path = DBT_PROJECT_DIR,
        check_whole_tables: bool = False,
    ):
        self.warehouse = warehouse
        self.run_at = run_at
        self.full_refresh = full_refresh
        self.check_whole_tables = check_whole_tables or full_refresh
        self.project_dir = project_dir
        self.target_path = target_path(warehouse, project_dir)
        self._runner: PrefectDbtRunner | None = None
        start_parsing(warehouse, project_dir)

    @classmethod
    @contextmanager
    def for_run(
        cls, settings: PipelineSettings, run_at: datetime, check_whole_tables: bool
    ) -> Iterator[DbtProject]:
        """The project for one run; dbt's connection to the warehouse is closed at the end
        (DuckDB would otherwise keep the file locked for the rest of the process)."""
        project = cls(
            settings.warehouse,
            run_at,
            settings.full_refresh,
            check_whole_tables=check_whole_tables,
        )
        try:
            yield project
        finally:
            project.close()

    def close(self) -> None:
        if self._runner is not None:
            close_dbt_duckdb_connection()

    def build_layer(self, layer: str, unit_tests: bool = True) -> LayerResult:
        """Build the layer's models or snapshots and run their tests.

        A failing unit test skips its model; `unit_tests=False` builds the models whatever
        their unit tests say (to see what a wrong rule writes)."""
        args = ["build", "--select", DBT_LAYERS[layer]]
        if not unit_tests:
            args += ["--exclude", "resource_type:unit_test"]
        return self._run_layer(layer, args)

    def build_layer_as_subflow(self, layer: str, unit_tests: bool = True) -> LayerResult:
        """`build_layer` as a subflow of the run named for the layer, its dbt nodes task
        runs inside it: in the Prefect UI a run reads as its layers, and a failure shows
        which layer stopped. Its error, if any, is the layer's own (LayerFailed)."""

        @flow(name=f"dbt-{layer}", flow_run_name=f"dbt {layer}", validate_parameters=False)
        def dbt_layer() -> LayerResult:
            return self.build_layer(layer, unit_tests)

        with _without_heartbeat():
            return dbt_layer()

    def unit_test_layer(self, layer: str) -> LayerResult:
        """Run the layer's unit tests alone: their verdicts depend on the code, never on
        the warehouse's data."""
        return self._run_layer(
            layer, ["test", "--select", f"{DBT_LAYERS[layer]},resource_type:unit_test"]
        )

    def unit_test_layer_as_subflow(self, layer: str) -> LayerResult:
        """`unit_test_layer` as a subflow named for the layer, like `build_layer_as_subflow`."""

        @flow(
            name=f"dbt-{layer}-unit-tests",
            flow_run_name=f"dbt {layer} unit tests",
            validate_parameters=False,
        )
        def dbt_layer_unit_tests() -> LayerResult:
            return self.unit_test_layer(layer)

        with _without_heartbeat():
            return dbt_layer_unit_tests()

    def has_unit_tests(self, layer: str) -> bool:
        folder = DBT_LAYERS[layer].removeprefix("path:") + "/"
        unit_tests = parsed_manifest(self.warehouse, self.project_dir).unit_tests.values()
        return any(test.original_file_path.startswith(folder) for test in unit_tests)

    def test_layer(self, layer: str) -> LayerResult:
        """Run the layer's tests against what the warehouse holds, building nothing."""
        return self._run_layer(layer, ["test", "--select", DBT_LAYERS[layer]])

    def generate_static_docs(self) -> Path:
        """dbt's docs as one self-contained HTML file (`static_index.html` in the target
        folder). In process, like the builds: dbt holds the warehouse open, and the
        catalog's queries need it. Not compiled again (`--no-compile`): the docs show the
        SQL the builds compiled, from the manifest they wrote, or else the parsed one."""
        from dbt.parser.manifest import write_manifest

        if not (self.target_path / "manifest.json").is_file():
            self.target_path.mkdir(parents=True, exist_ok=True)
            write_manifest(parsed_manifest(self.warehouse, self.project_dir), str(self.target_path))
        outcome = self._invoke(["docs", "generate", "--static", "--no-compile"])
        if not outcome.success:
            raise RuntimeError(f"dbt docs generate failed: {outcome.exception}")
        return self.target_path / "static_index.html"

    def _run_layer(self, layer: str, args: list[str]) -> LayerResult:
        started = time.perf_counter()
        try:
            outcome = self._invoke(args)
        except ValueError as error:  # prefect-dbt raises when dbt itself could not run
            raise LayerFailed(layer, _one_line(str(error))) from error
        if outcome.exception is not None:
            raise LayerFailed(layer, f"dbt could not run: {outcome.exception}")
        results = list(outcome.result.results)
        failed = [r for r in results if _status(r) in ("error", "fail", "runtime error")]
        layer_result = LayerResult(
            layer=layer,
            checks=tuple(
                self._test_check(r) for r in results if _resource_type(r) in TEST_RESOURCE_TYPES
            ),
            node_seconds={r.node.unique_id: float(r.execution_time or 0) for r in results},
            seconds=time.perf_counter() - started,
            failed_nodes=tuple(f"{r.node.name}: {_one_line(r.message)}" for r in failed),
        )
        if failed:
            shown = "; ".join(layer_result.failed_nodes[:5])
            more = f" (and {len(failed) - 5} more)" if len(failed) > 5 else ""
            raise LayerFailed(layer, shown + more, result=layer_result)
        return layer_result

    def _test_check(self, result: Any) -> CheckResult:
        node = result.node
        status = {"pass": "pass", "warn": "warn"}.get(_status(result), "fail")
        attached = getattr(node, "attached_node", None) or ""
        model = str(attached).split(".")[-1] if attached else _source_name(node)
        severity = str(getattr(node.config, "severity", "error") or "error").lower()
        message = ""
        if status != "pass":
            message = _one_line(result.message)
            compiled = getattr(node, "compiled_code", None)
            if compiled and _resource_type(result) == "test":
                message = (
                    describe_failing_rows(self.warehouse, compiled, result.failures, model)
                    or message
                )
        return CheckResult(
            name=node.name,
            model=model,
            kind="unit_test" if _resource_type(result) == "unit_test" else "dbt_test",
            status=status,
            severity="warn" if status == "warn" else severity,
            message=message,
            failures=result.failures if _resource_type(result) == "test" else None,
            scope=_check_scope(result),
        )

    def _invoke(self, args: list[str]) -> Any:
        # Parsed once per process, often while Prefect's server started
        # (flows/runtime/dbt_parse.py); waited for before taking dbt's invocation lock,
        # which the parse holds.
        manifest = parsed_manifest(self.warehouse, self.project_dir)
        with DBT_INVOCATION_LOCK:
            self._write_run_context()
            # profiles.yml reads the warehouse path from the environment: dbt has no other
            # way in.
            os.environ["LEDGERFLOW_WAREHOUSE"] = str(self.warehouse)
            os.environ["LEDGERFLOW_DUCKDB_MEMORY_LIMIT"] = DUCKDB_MEMORY_LIMIT
            # The run's timestamp and scope as literals in the executed SQL (macros
            # run_timestamp() and full_scope(), which read them only at execution).
            os.environ["LEDGERFLOW_RUN_AT"] = self.run_at.isoformat(sep=" ")
            os.environ["LEDGERFLOW_RUN_SCOPE"] = self._scope
            # Checks read tonight's change set, or whole tables (macros/change_sets.sql).
            os.environ["LEDGERFLOW_CHECK_SCOPE"] = (
                WHOLE_TABLE if self.check_whole_tables else CHANGE_SET
            )
            if self._runner is None:
                from prefect_dbt import PrefectDbtRunner, PrefectDbtSettings

                share_prefect_state_across_dbt_node_threads()
                settings = PrefectDbtSettings(
                    project_dir=self.project_dir,
                    profiles_dir=self.project_dir,
                    target_path=self.target_path,
                )
                # raise_on_failure=False: the layer decides what failed, from run results,
                # so the error can name it.
                self._runner = PrefectDbtRunner(
                    settings=settings, raise_on_failure=False, manifest=manifest
                )
            with reusing_manifest(manifest):
                return self._runner.invoke(args)

    @property
    def _scope(self) -> str:
        return "full" if self.full_refresh else "changes"

    def _write_run_context(self) -> None:
        """The run's timestamp and scope, read by the run_timestamp() and full_scope()
        macros (a table, not dbt vars, so dbt's partial parsing survives from one run to
        the next)."""
        with connect(self.warehouse) as con:
            con.execute(f"create schema if not exists {RUN_CONTEXT.split('.')[0]}")
            con.execute(
                f"create or replace table {RUN_CONTEXT} as "
                "select cast(? as timestamp) as run_at, ? as scope",
                [self.run_at, self._scope],
            )


def _build_layer(project: DbtProject, layer: str, cache_key: str | None = None) -> LayerResult:
    return project.build_layer_as_subflow(layer, unit_tests=False)


def _unit_test_layer(project: DbtProject, layer: str, cache_key: str | None = None) -> LayerResult:
    return project.unit_test_layer_as_subflow(layer)


# Two tasks per layer, named for it (a cache key is the task's name and the key it is
# given): the build, keyed on the run's key, and then the unit tests, keyed on the code
# alone (flows/steps/step_cache.py), so code that passed them once is not tested again.
# They run after the build because dbt reads a unit-tested model's columns from its
# relation; a failing one stops the run at its layer, which the run's undo then removes.
LAYER_STEPS = {
    layer: task(name=f"build-{layer}", cache_policy=STEP_CACHE)(_build_layer)
    for layer in DBT_LAYERS
}
UNIT_TEST_STEPS = {
    layer: task(name=f"unit-tests-{layer}", cache_policy=STEP_CACHE)(_unit_test_layer)
    for layer in DBT_LAYERS
}


def _without_heartbeat() -> AbstractContextManager:
    """Settings for a layer's subflow: no heartbeat of its own. Prefect's heartbeat thread
    sleeps in whole seconds and a flow run's exit waits for it, about 1 s per subflow (six
    a run) measured against 0.2 s without; the run's own flow run keeps its heartbeat."""
    return temporary_settings({PREFECT_FLOWS_HEARTBEAT_FREQUENCY: None})


def _check_scope(result: Any) -> str:
    """What a test read, as its compiled SQL says (dbt_project/macros/change_sets.sql)."""
    if _resource_type(result) == "unit_test":
        return FIXTURES
    compiled = getattr(result.node, "compiled_code", None) or ""
    return CHANGE_SET if CHANGE_SET_MARKER in compiled else WHOLE_TABLE


def _status(result: Any) -> str:
    return str(getattr(result.status, "value", result.status))


def _resource_type(result: Any) -> str:
    return str(getattr(result.node.resource_type, "value", result.node.resource_type))


def _one_line(message: str | None) -> str:
    return " ".join((message or "").split())


def describe_failing_rows(
    warehouse: Path, compiled_sql: str, failures: int | None, model: str
) -> str:
    """'Found N failing rows in <model>: <key column> [k1, k2, …]' from the test's own query.

    The first column of a test's failing rows is its key: the tested column for dbt's
    built-in tests, the key column for the project's generic tests. A key on several
    failing rows (a duplicate) is named once.
    """
    try:
        with connect(warehouse) as con:
            cursor = con.execute(
                f"select * from ({compiled_sql}) as failing_rows limit {MAX_KEYS_SHOWN}"
            )
            key_column = cursor.description[0][0]
            shown_rows = [row[0] for row in cursor.fetchall()]
    except duckdb.Error:
        return ""
    count = failures if failures is not None else len(shown_rows)
    keys = dict.fromkeys(shown_rows)
    shown = ", ".join("NULL" if key is None else str(key) for key in keys)
    more = f", … {count - len(shown_rows)} more" if count > len(shown_rows) else ""
    return f"Found {count} failing rows in {model}: {key_column} [{shown}{more}]"


def _source_name(node: Any) -> str:
    """What a test without an attached model checks: its source, or (a singular test) the
    models it reads."""
    sources = getattr(node, "sources", None) or []
    if sources:
        return f"source:{sources[0][-1]}"
    depends_on = getattr(getattr(node, "depends_on", None), "nodes", None) or []
    return ", ".join(unique_id.split(".")[-1] for unique_id in depends_on)
