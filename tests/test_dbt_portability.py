"""The dbt project compiles for Databricks with no network, and uses no DuckDB-only SQL.

`dbt compile --target databricks --no-populate-cache --vars '{offline_compile: true}'`
runs with dummy DATABRICKS_* variables pointing at a closed loopback port, into its own
target and log folders, so the DuckDB target folder is never touched. The compiled SQL
(models, snapshots, data tests) is then scanned for constructs that DuckDB accepts and
Databricks SQL rejects or reads differently, and parsed by sqlglot's `databricks` dialect:
a statement it rejects fails the test with the file and sqlglot's error. The scanner and
the parse are each shown to fail on a snippet.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

import pytest
import sqlglot
from conftest import run_dbt
from sqlglot.errors import ParseError, TokenError

from flows.config import DBT_PROJECT_DIR

# The documented command, exactly; the folders are added after it.
OFFLINE_COMPILE = [
    "compile",
    "--target",
    "databricks",
    "--no-populate-cache",
    "--vars",
    "{offline_compile: true}",
]

# A closed port on loopback: anything that tries to reach the warehouse fails at once
# instead of waiting on DNS.
DUMMY_DATABRICKS_ENV = {
    "DATABRICKS_HOST": "127.0.0.1:9",
    "DATABRICKS_HTTP_PATH": "/sql/1.0/warehouses/0000000000000000",
    "DATABRICKS_TOKEN": "dapi-offline-compile-not-a-token",
    "DBT_SEND_ANONYMOUS_USAGE_STATS": "false",
}


@dataclass(frozen=True)
class Construct:
    name: str
    pattern: re.Pattern[str]
    reason: str


def _construct(name: str, pattern: str, reason: str) -> Construct:
    return Construct(name, re.compile(pattern, re.IGNORECASE), reason)


# DuckDB-only SQL, from the DuckDB and Databricks SQL language references. Each entry is
# accepted by DuckDB but rejected, or read differently, by Databricks SQL.
DUCKDB_ONLY = (
    _construct(
        "::", r"::", "PostgreSQL-style cast; Spark SQL rejects it before DBR 15: use cast()"
    ),
    _construct(
        "regexp_full_match", r"\bregexp_full_match\s*\(", "DuckDB only: regexp_like with anchors"
    ),
    _construct("regexp_matches", r"\bregexp_matches\s*\(", "DuckDB's name: regexp_like / rlike"),
    _construct(
        "regexp_replace 'g' option",
        r"\bregexp_replace\s*\(.*,\s*'[gcimsx]+'\s*\)",
        "DuckDB's options argument; Spark's 4th argument is a position, and it replaces all",
    ),
    _construct(
        "single-backslash regex escape",
        r"(?<!\\)\\[xdDsSwWbBpPzZ]",
        "Databricks unescapes string literals ('\\x' reads 'x'): double the backslash",
    ),
    _construct("strftime", r"\bstrftime\s*\(", "DuckDB/SQLite: date_format on Databricks"),
    _construct("strptime", r"\b(try_)?strptime\s*\(", "DuckDB: to_timestamp on Databricks"),
    _construct(
        "epoch functions", r"\bepoch(_ms|_us|_ns)?\s*\(", "DuckDB: unix_* / timestamp_millis"
    ),
    _construct("list_ functions", r"\blist_[a-z_]+\s*\(", "DuckDB lists: array functions"),
    _construct(
        "struct_ functions",
        r"\bstruct_(pack|extract|insert)\s*\(",
        "DuckDB structs: named_struct / field access",
    ),
    _construct(
        "file readers",
        r"\bread_(csv|csv_auto|parquet|json|json_auto|ndjson|text|blob)\s*\(",
        "DuckDB reads local files: read_files on a Volume",
    ),
    _construct("file in FROM", r"\bfrom\s+'[^']*\.(csv|parquet|json)'", "DuckDB replacement scan"),
    _construct(
        "string splits",
        r"\b(str_split|string_split)(_regex)?\s*\(|\bregexp_split_to_array\s*\(",
        "DuckDB: split() on Databricks",
    ),
    _construct(
        "varchar without length",
        r"\bvarchar\b(?!\s*\()",
        "Spark requires VARCHAR(n): use string / dbt.type_string()",
    ),
    _construct(
        "hash()", r"\bhash\s*\(", "exists on both with different algorithms: keys would differ"
    ),
    _construct("nextval", r"\bnextval\s*\(", "DuckDB sequences: identity columns on Databricks"),
    _construct("COLUMNS(...)", r"\bcolumns\s*\(", "DuckDB star expression"),
    _construct("* EXCLUDE", r"\*\s*exclude\b", "DuckDB spelling: * EXCEPT (...) on Databricks"),
    _construct("* REPLACE", r"\*\s*replace\s*\(", "DuckDB star modifier"),
    _construct(
        "raw._run_context",
        r"\b_run_context\b",
        "the run's timestamp table is written by the flow into DuckDB only",
    ),
)


@dataclass(frozen=True)
class Finding:
    file: str
    line: int
    construct: str
    reason: str

    def __str__(self) -> str:
        return f"{self.file}:{self.line}: {self.construct} ({self.reason})"


def strip_comments(sql: str) -> str:
    """SQL with -- and /* */ comments blanked (newlines kept, so line numbers hold).
    String literals are kept, backslash escapes included: comment markers in them are text."""
    out: list[str] = []
    i, n = 0, len(sql)
    while i < n:
        char = sql[i]
        if char == "'":
            end = i + 1
            while end < n and sql[end] != "'":
                end += 2 if sql[end] == "\\" else 1
            out.append(sql[i : end + 1])
            i = end + 1
        elif sql.startswith("--", i):
            end = sql.find("\n", i)
            end = n if end == -1 else end
            i = end
        elif sql.startswith("/*", i):
            end = sql.find("*/", i + 2)
            end = n if end == -1 else end + 2
            out.append("".join("\n" if c == "\n" else " " for c in sql[i:end]))
            i = end
        else:
            out.append(char)
            i += 1
    return "".join(out)


def scan_sql(sql: str, file: str) -> list[Finding]:
    findings = []
    for number, line in enumerate(strip_comments(sql).splitlines(), start=1):
        for construct in DUCKDB_ONLY:
            if construct.pattern.search(line):
                findings.append(Finding(file, number, construct.name, construct.reason))
    return findings


@pytest.fixture(scope="module")
def databricks_compiled(tmp_path_factory) -> Path:
    """The whole project compiled for Databricks, offline, once for this module."""
    root = tmp_path_factory.mktemp("databricks-compile")
    done = run_dbt(root, *OFFLINE_COMPILE, env=DUMMY_DATABRICKS_ENV)
    assert done.returncode == 0, f"offline compile failed:\n{done.stdout[-4000:]}{done.stderr}"
    return root / "target" / "compiled"


def test_the_whole_project_compiles_offline_for_databricks(databricks_compiled: Path) -> None:
    compiled = {path.stem for path in databricks_compiled.rglob("*.sql")}
    models = {path.stem for path in (DBT_PROJECT_DIR / "models").rglob("*.sql")}
    assert models <= compiled
    assert "assert_customer_profile_matches_account_summary" in compiled
    # The data tests of snapshots and marts are compiled too (one file per test).
    assert any(name.startswith("scd2_versions_do_not_overlap") for name in compiled)
    # Catalog-qualified, backquoted names: this really is the databricks adapter.
    history = next(databricks_compiled.rglob("account_summary_history.sql")).read_text()
    assert "`intermediate`.`int_savings_accounts_interest_calculated`" in history


def test_offline_compile_takes_the_incremental_branches(databricks_compiled: Path) -> None:
    """offline_compile answers is_incremental() as the nightly run would: the branches that
    read the model's own current table are the ones compiled and scanned."""
    for model, schema in [
        ("account_summary_history", "marts"),
        ("customers_snapshot", "snapshots"),
        ("base_accounts_validated", "staging"),
    ]:
        compiled = next(databricks_compiled.rglob(f"{model}.sql")).read_text()
        assert f"`{schema}`.`{model}__current`" in compiled, model


def test_compiled_sql_has_no_duckdb_only_constructs(databricks_compiled: Path) -> None:
    findings = []
    for path in sorted(databricks_compiled.rglob("*.sql")):
        relative = str(path.relative_to(databricks_compiled))
        findings += scan_sql(path.read_text(encoding="utf-8"), relative)
    assert not findings, "DuckDB-only SQL in the databricks target:\n" + "\n".join(
        map(str, findings)
    )


def test_portable_macros_take_their_databricks_forms(databricks_compiled: Path) -> None:
    customers = next(databricks_compiled.rglob("base_customers_validated.sql")).read_text()
    assert "regexp_like(customer_id_text, '^(?:[0-9]+)\\\\z')" in customers
    assert "try_cast(customer_id_text as bigint)" in customers
    assert "'[\\\\x{0009}\\\\x{000a}" in customers


DUCKDB_SNIPPET = """
-- strftime(x) and x::date in a comment are not code
select
    id::varchar as id_text,
    regexp_full_match(name, '[a-z]+') as is_word,
    regexp_replace(name, '\\s+', ' ', 'g') as squeezed,
    strftime(loaded_at, '%Y') as year,
    epoch_ms(loaded_at) as millis,
    list_sum(amounts) as total,
    struct_pack(a := 1) as packed,
    (select max(run_at) from raw._run_context) as run_at
from read_csv('accounts.csv')
"""


def test_the_scanner_names_the_file_and_each_duckdb_construct() -> None:
    findings = scan_sql(DUCKDB_SNIPPET, "models/example.sql")
    found = {finding.construct for finding in findings}
    assert found == {
        "::",
        "varchar without length",
        "regexp_full_match",
        "single-backslash regex escape",
        "regexp_replace 'g' option",
        "strftime",
        "epoch functions",
        "list_ functions",
        "struct_ functions",
        "raw._run_context",
        "file readers",
    }
    # Comments are not code: line 2's strftime and :: are not findings.
    assert all(finding.line > 2 for finding in findings)
    assert str(findings[0]).startswith("models/example.sql:4: ::")


def test_the_scanner_accepts_the_portable_forms() -> None:
    portable = """
    select
        cast(id as string) as id_text,
        regexp_like(name, '^(?:[a-z]+)\\\\z') as is_word,
        regexp_replace(name, '[\\\\x{0009}\\\\x{0020}]+', ' ') as squeezed,
        date_format(loaded_at, 'yyyy') as year,
        try_cast(balance as decimal(18, 2)) as balance_amount,
        cast('2026-01-31 02:30:00' as timestamp) as run_at
    from read_files('/Volumes/main/ledgerflow/exports/a.parquet', format => 'parquet')
    """
    assert scan_sql(portable, "portable.sql") == []


def databricks_parse_errors(sql: str, file: str) -> list[str]:
    """What sqlglot's databricks dialect rejects in `sql`, as `file: error` lines."""
    try:
        statements = sqlglot.parse(sql, read="databricks", error_level=sqlglot.ErrorLevel.RAISE)
    except (ParseError, TokenError) as error:
        return [f"{file}: {' '.join(str(error).split())[:300]}"]
    if not any(statement is not None for statement in statements):
        return [f"{file}: no statement"]
    return []


def test_every_compiled_node_parses_as_databricks_sql(databricks_compiled: Path) -> None:
    paths = sorted(databricks_compiled.rglob("*.sql"))
    assert len(paths) > 50, "fewer compiled nodes than the project has"
    errors = []
    for path in paths:
        relative = str(path.relative_to(databricks_compiled))
        errors += databricks_parse_errors(path.read_text(encoding="utf-8"), relative)
    assert not errors, "sqlglot's databricks dialect rejects:\n" + "\n".join(errors)


@pytest.mark.parametrize(
    "duckdb_only",
    [
        "select {'a': 1} as packed",  # DuckDB's struct literal
        "select x from t qualify",
        "select [1, 2][1 as x",
    ],
)
def test_the_parse_rejects_what_databricks_cannot_read(duckdb_only: str) -> None:
    assert databricks_parse_errors(duckdb_only, "example.sql")
