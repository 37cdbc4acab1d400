"""Great Expectations suites over the warehouse: one CheckResult per expectation.

The suites live in `expectations/<suite>.json`, in GX's own `suite.to_json_dict()` format,
one per checked relation (`RELATIONS`). Expectations are evaluated in DuckDB itself
through GX's SQL datasource (duckdb-engine): nothing is copied into pandas. On a
10M-row account_summary, GX on a pandas frame of only the needed columns took 54-93 s and
3.6 GB peak RSS; GX on DuckDB took 12-20 s and 1.0-1.1 GB (1M rows: 3-8 s / 650 MB against
1.3-2.1 s / 400 MB).

Two things about the warehouse connection:
- The pipeline's process may still hold dbt's in-process DuckDB connection to the same
  file, opened with DuckDB's default config, and DuckDB refuses a second connection to a
  file with any other config (read_only, or the user agent duckdb-engine sets). So every
  connection here is a plain `duckdb.connect(path)`, handed to SQLAlchemy through a
  `creator`, and every one is closed before returning.
- GX hands a DuckDB connection back to SQLAlchemy's pool before reading a query's rows,
  and DuckDB drops the result by then; GX is told to keep one connection for DuckDB
  (`flows/runtime/compat.py`).

Which checks are GX's: the delivery as a whole (the raw tables' columns, row counts and
line numbers) and expectations across tables (a mart's row count against staging's).
Rules about one model's rows (keys, accepted values, ranges, business rules) are dbt tests,
written once in the models' YAML; no suite restates them.

Each suite is validated once with `BOOLEAN_ONLY` (the cheapest result format: no lists
of unexpected values); only the expectations that failed are validated again with `SUMMARY`
and the key column, to name the offending values and keys.

A suite's bound that depends on another relation is an expectation parameter
`{"$PARAMETER": "rows_of_<suite>"}`, filled with that relation's row count at run time.
An expectation is a warning, not an error, when the suite says so in its `meta`
(`{"severity": "warn"}`) or with GX's own `severity: "warning"` / `"info"`; a failing
warning has status "warn" (counted as warned, never blocking), as dbt's warnings do.
"""

from __future__ import annotations

import contextlib
import json
import logging
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import quote

import duckdb
from prefect import task

from flows.config import PROJECT_ROOT
from flows.quality.checks import CheckResult
from flows.runtime.compat import keep_one_duckdb_connection_in_great_expectations
from flows.runtime.step_cache_policy import STEP_CACHE
from flows.runtime.warehouse import connect as connect_warehouse

EXPECTATIONS_DIR = PROJECT_ROOT / "expectations"

# Suite name -> the relation it checks (or whose row count a `rows_of_<name>` parameter
# reads), and that relation's key column (named in messages).
RELATIONS: dict[str, str] = {
    "raw_customers": "raw.customers",
    "raw_accounts": "raw.accounts",
    "stg_customers": "staging.stg_customers",
    "stg_accounts": "staging.stg_accounts",
    "account_summary": "marts.account_summary",
    "customer_profile": "marts.customer_profile",
}
KEY_COLUMNS: dict[str, str] = {
    "raw_customers": "_source_line",
    "raw_accounts": "_source_line",
    "stg_customers": "customer_id",
    "stg_accounts": "account_id",
    "account_summary": "account_id",
    "customer_profile": "customer_id",
}
ROW_COUNT_PARAMETER_PREFIX = "rows_of_"
MAX_SHOWN = 10
WARN_SEVERITIES = {"warn", "warning", "info"}
INDEX_META = "ledgerflow_expectation_index"


@dataclass(frozen=True)
class _Expectation:
    """One expectation of a suite, as its JSON says it."""

    suite: str
    index: int
    config: dict[str, Any]

    @property
    def type(self) -> str:
        return self.config["type"]

    @property
    def kwargs(self) -> dict[str, Any]:
        return self.config.get("kwargs") or {}

    @property
    def column(self) -> str | None:
        return self.kwargs.get("column")

    @property
    def name(self) -> str:
        columns = [self.kwargs[k] for k in ("column", "column_A", "column_B") if k in self.kwargs]
        columns += list(self.kwargs.get("column_list") or [])
        return "_".join([self.type, *map(str, columns)])

    @property
    def severity(self) -> str:
        meta = self.config.get("meta") or {}
        marked = str(meta.get("severity") or self.config.get("severity") or "").lower()
        return "warn" if marked in WARN_SEVERITIES else "error"

    @property
    def parameters(self) -> set[str]:
        return set(_parameter_names(self.kwargs))


def load_suites(suites_dir: Path = EXPECTATIONS_DIR) -> dict[str, dict[str, Any]]:
    """Every suite's JSON, keyed by suite name, in pipeline order (raw, staging, marts)."""
    suites = {}
    for path in sorted(suites_dir.glob("*.json")):
        suite = json.loads(path.read_text(encoding="utf-8"))
        name = suite.get("name") or path.stem
        if name not in RELATIONS:
            raise ValueError(
                f"{path}: suite {name!r} checks no known relation; add it to RELATIONS "
                f"({', '.join(RELATIONS)})"
            )
        suites[name] = suite
    return {name: suites[name] for name in RELATIONS if name in suites}


@task(name="validate-expectations", cache_policy=STEP_CACHE)
def validate_expectations(
    warehouse: Path, suites_dir: Path = EXPECTATIONS_DIR, cache_key: str | None = None
) -> list[CheckResult]:
    """Validate every suite in `suites_dir` against the warehouse, as SQL in DuckDB: one
    result per expectation."""
    suites = load_suites(suites_dir)
    if not suites:
        return []
    # Imported here: importing great_expectations alone takes seconds.
    import great_expectations as gx

    _quiet_gx()
    keep_one_duckdb_connection_in_great_expectations()

    opened: list[duckdb.DuckDBPyConnection] = []

    def connect() -> duckdb.DuckDBPyConnection:
        # The same config as dbt's connection (DuckDB's default): anything else is refused
        # while that one is open in this process.
        con = connect_warehouse(warehouse)
        opened.append(con)
        con.execute("set enable_progress_bar = false")  # session-local
        return con

    datasource = None
    try:
        control = connect()
        columns = _relation_columns(control)
        parameters = _row_count_parameters(control, suites, columns)

        context = gx.get_context(mode="ephemeral")
        from great_expectations.data_context.types.base import ProgressBarsConfig

        context.variables.progress_bars = ProgressBarsConfig(globally=False)

        results: list[CheckResult] = []
        for suite_name, suite_json in suites.items():
            expectations = [
                _Expectation(suite_name, i, config)
                for i, config in enumerate(suite_json.get("expectations") or [])
            ]
            relation = RELATIONS[suite_name]
            if relation not in columns:
                results += [
                    _fail(e, f"cannot validate {suite_name}: {relation} does not exist")
                    for e in expectations
                ]
                continue
            runnable, blocked = [], {}
            for expectation in expectations:
                # A parameter that could not be computed holds the reason instead of a count.
                reasons = [
                    parameters[p]
                    for p in sorted(expectation.parameters)
                    if isinstance(parameters[p], str)
                ]
                if reasons:
                    blocked[expectation.index] = _fail(
                        expectation, "cannot evaluate: " + "; ".join(reasons)
                    )
                else:
                    runnable.append(expectation)
            if runnable and datasource is None:
                datasource = context.data_sources.add_sql(
                    "warehouse",
                    # The URL only names the dialect: connections come from `creator`.
                    connection_string=f"duckdb:///{quote(str(warehouse))}",
                    kwargs={"creator": _sqlalchemy_creator(connect)},
                )
            validated = (
                _validate_suite(
                    gx, datasource, suite_name, relation, runnable, parameters, columns[relation]
                )
                if runnable
                else {}
            )
            results += [blocked.get(e.index) or validated[e.index] for e in expectations]
        return results
    finally:
        if datasource is not None:
            # Disposes SQLAlchemy's pool; the connections themselves are closed below.
            with contextlib.suppress(Exception):
                datasource.get_execution_engine().close()
        for con in opened:
            con.close()


def _validate_suite(
    gx: Any,
    datasource: Any,
    suite_name: str,
    relation: str,
    expectations: list[_Expectation],
    parameters: dict[str, Any],
    relation_columns: list[str],
) -> dict[int, CheckResult]:
    schema, table = relation.split(".", 1)
    with warnings.catch_warnings():
        # GX 1.24 deprecates schema_name for a schema in the connection string, which
        # holds one schema; these relations are in three.
        warnings.filterwarnings("ignore", message=".*schema_name.*", category=DeprecationWarning)
        asset = datasource.add_table_asset(suite_name, table_name=table, schema_name=schema)
    batch = asset.add_batch_definition_whole_table("whole table").get_batch()
    # GX reports an expectation that raised after the others: results are matched to
    # expectations through a marker in their meta, not by position.
    configs = [
        {**e.config, "meta": {**(e.config.get("meta") or {}), INDEX_META: e.index}}
        for e in expectations
    ]
    suite = gx.ExpectationSuite(name=suite_name, expectations=configs)
    by_index = {e.index: e for e in expectations}
    gx_expectations = {e.meta[INDEX_META]: e for e in suite.expectations}
    used = {p: parameters[p] for e in expectations for p in e.parameters}
    with warnings.catch_warnings():
        # SQLAlchemy reflects every column of the relation and has no type for DuckDB's
        # MAP (raw tables keep extra columns in one); no expectation reads that column.
        warnings.filterwarnings("ignore", message="Did not recognize type 'map'")
        outcome = batch.validate(suite, result_format="BOOLEAN_ONLY", expectation_parameters=used)
    key = KEY_COLUMNS[suite_name]
    detail_format: dict[str, Any] = {
        "result_format": "SUMMARY",
        "partial_unexpected_count": MAX_SHOWN,
    }
    if key in relation_columns:
        detail_format["unexpected_index_column_names"] = [key]

    checks = {}
    for result in outcome.results:
        index = result.expectation_config.meta[INDEX_META]
        expectation = by_index[index]
        if result.success:
            checks[index] = _check(expectation, "pass", "", 0)
            continue
        detail = batch.validate(
            gx_expectations[index], result_format=detail_format, expectation_parameters=used
        )
        if detail.success:  # the data changed between the two passes
            checks[index] = _check(expectation, "pass", "")
            continue
        unexpected = (detail.result or {}).get("unexpected_count")
        checks[index] = _fail(
            expectation,
            _describe(expectation, detail, key, parameters),
            None if unexpected is None else int(unexpected),
        )
    missing = set(by_index) - set(checks)
    if missing:  # never seen; a result per expectation is the contract of this module
        raise RuntimeError(f"GX returned no result for {suite_name} expectations {sorted(missing)}")
    return checks


def _check(
    expectation: _Expectation, status: str, message: str, failures: int | None = None
) -> CheckResult:
    return CheckResult(
        name=expectation.name,
        model=expectation.suite,
        kind="expectation",
        status=status,
        severity=expectation.severity,
        message=message,
        failures=failures,
    )


def _fail(expectation: _Expectation, message: str, failures: int | None = None) -> CheckResult:
    status = "warn" if expectation.severity == "warn" else "fail"
    return _check(expectation, status, message, failures)


# ---------------------------------------------------------------------------------------
# Failure messages


def _describe(expectation: _Expectation, result: Any, key: str, parameters: dict[str, Any]) -> str:
    model = expectation.suite
    info = result.exception_info or {}
    if info.get("raised_exception"):
        reason = " ".join(str(info.get("exception_message") or "unknown error").split())
        return f"could not evaluate {expectation.type} on {model}: {reason[:300]}"
    details = result.result or {}
    kwargs = expectation.kwargs
    if "unexpected_count" in details:
        return _describe_rows(expectation, details, key)
    observed = details.get("observed_value")
    if expectation.type == "expect_table_row_count_to_be_between":
        low, high = kwargs.get("min_value"), kwargs.get("max_value")
        bounds = (
            f"between {_bound(low, parameters)} and {_bound(high, parameters)}"
            if low is not None and high is not None
            else f"at least {_bound(low, parameters)}"
            if low is not None
            else f"at most {_bound(high, parameters)}"
        )
        return f"{model} has {observed} rows, expected {bounds}"
    if expectation.type == "expect_table_row_count_to_equal":
        return f"{model} has {observed} rows, expected {_bound(kwargs.get('value'), parameters)}"
    if expectation.type == "expect_table_columns_to_match_set":
        mismatched = (details.get("details") or {}).get("mismatched") or {}
        parts = []
        if mismatched.get("missing"):
            parts.append(f"lacks columns {_list(mismatched['missing'])}")
        if kwargs.get("exact_match") and mismatched.get("unexpected"):
            parts.append(f"has unexpected columns {_list(mismatched['unexpected'])}")
        return f"{model} " + (" and ".join(parts) or f"has columns {_list(observed or [])}")
    if expectation.type == "expect_column_to_exist":
        return f"{model} lacks column {expectation.column}"
    return f"{expectation.type} failed on {model}: observed {observed!r}"


def _describe_rows(expectation: _Expectation, details: dict[str, Any], key: str) -> str:
    """'Found N rows in <model>: <column> <what>: [values] (<key> [keys])'."""
    count = int(details.get("unexpected_count") or 0)
    column = expectation.column
    what = _what(expectation)
    values = list(details.get("partial_unexpected_list") or [])[:MAX_SHOWN]
    keys = [
        row.get(key)
        for row in (details.get("partial_unexpected_index_list") or [])[:MAX_SHOWN]
        if isinstance(row, dict)
    ]
    text = f"Found {count} row{'' if count == 1 else 's'} in {expectation.suite}: {column} {what}"
    show_values = any(v is not None for v in values)
    if show_values:
        text += f": {_list(values, count)}"
    if keys and column != key:
        text += f" ({key} {_list(keys, count)})" if show_values else f": {key} {_list(keys, count)}"
    return text


def _what(expectation: _Expectation) -> str:
    kwargs = expectation.kwargs
    low, high = kwargs.get("min_value"), kwargs.get("max_value")
    return {
        "expect_column_values_to_be_unique": "not unique",
        "expect_column_values_to_not_be_null": "is NULL",
        "expect_column_values_to_be_null": "is not NULL",
        "expect_column_values_to_be_in_set": f"not in {_list(kwargs.get('value_set') or [])}",
        "expect_column_values_to_not_be_in_set": f"in {_list(kwargs.get('value_set') or [])}",
        "expect_column_values_to_be_between": (
            f"outside [{low}, {high}]"
            if low is not None and high is not None
            else f"below {low}"
            if low is not None
            else f"above {high}"
        ),
        "expect_column_values_to_match_regex": f"not matching {kwargs.get('regex')!r}",
    }.get(expectation.type, f"unexpected ({expectation.type})")


def _list(values: list[Any], count: int | None = None) -> str:
    shown = ", ".join(
        "NULL" if v is None else str(v).lower() if isinstance(v, bool) else str(v) for v in values
    )
    more = f", … {count - len(values)} more" if count is not None and count > len(values) else ""
    return f"[{shown}{more}]"


def _bound(value: Any, parameters: dict[str, Any]) -> str:
    if isinstance(value, dict) and "$PARAMETER" in value:
        name = str(value["$PARAMETER"])
        shown = parameters.get(name)
        source = name.removeprefix(ROW_COUNT_PARAMETER_PREFIX)
        return f"{shown} (rows of {source})"
    return str(value)


# ---------------------------------------------------------------------------------------
# Warehouse look-ups and GX set-up


def _relation_columns(con: duckdb.DuckDBPyConnection) -> dict[str, list[str]]:
    """Columns of every table and view of the warehouse, keyed by 'schema.name'."""
    rows = con.execute(
        """
        select table_schema || '.' || table_name, column_name
        from information_schema.columns
        where table_catalog = current_database()
        order by table_schema, table_name, ordinal_position
        """
    ).fetchall()
    columns: dict[str, list[str]] = {}
    for relation, column in rows:
        columns.setdefault(relation, []).append(column)
    return columns


def _row_count_parameters(
    con: duckdb.DuckDBPyConnection,
    suites: dict[str, dict[str, Any]],
    columns: dict[str, list[str]],
) -> dict[str, Any]:
    """Each `rows_of_<suite>` parameter the suites use: the row count of that relation, or,
    when it cannot be counted, the reason (a str), which fails the expectations using it."""
    names = {
        name
        for suite in suites.values()
        for expectation in suite.get("expectations") or []
        for name in _parameter_names(expectation.get("kwargs") or {})
    }
    values: dict[str, Any] = {}
    for name in sorted(names):
        source = name.removeprefix(ROW_COUNT_PARAMETER_PREFIX)
        if not name.startswith(ROW_COUNT_PARAMETER_PREFIX) or source not in RELATIONS:
            values[name] = (
                f"unknown parameter {name} (expected {ROW_COUNT_PARAMETER_PREFIX}<suite>)"
            )
        elif RELATIONS[source] not in columns:
            values[name] = f"{RELATIONS[source]} does not exist, so {name} is unknown"
        else:
            values[name] = int(
                con.execute(f"select count(*) from {RELATIONS[source]}").fetchone()[0]
            )
    return values


def _parameter_names(value: Any) -> list[str]:
    if isinstance(value, dict):
        if "$PARAMETER" in value:
            return [str(value["$PARAMETER"])]
        return [n for v in value.values() for n in _parameter_names(v)]
    if isinstance(value, list):
        return [n for v in value for n in _parameter_names(v)]
    return []


def _sqlalchemy_creator(connect: Any) -> Any:
    """SQLAlchemy's connections: duckdb-engine's wrapper around a default-config connection
    (duckdb-engine's own `connect` adds a user agent to the config, which DuckDB refuses
    while dbt's default-config connection to the file is open in this process)."""
    try:
        from duckdb_engine import ConnectionWrapper
    except ImportError as error:
        raise ImportError(
            "flows.steps.expectations validates through GX's SQL datasource and needs duckdb-engine: "
            "pip install 'duckdb-engine>=0.17,<0.18'"
        ) from error

    return lambda: ConnectionWrapper(connect())


def _quiet_gx() -> None:
    """GX logs at INFO and WARNING about its own machinery; keep only errors, unless the
    operator configured GX's logger."""
    logger = logging.getLogger("great_expectations")
    if logger.level == logging.NOTSET:
        logger.setLevel(logging.ERROR)
