"""The whitespace the contract's trim removes, for the development tools.

Defined once, as the `whitespace_code_points` var of dbt_project.yml (the dbt macros read it
there); `test_contract_oracle.py` pins it to what Python's `str.strip()` removes.
"""

from __future__ import annotations

from functools import cache

import yaml

from flows.config import DBT_PROJECT_DIR


@cache
def whitespace_code_points() -> tuple[int, ...]:
    project = yaml.safe_load((DBT_PROJECT_DIR / "dbt_project.yml").read_text(encoding="utf-8"))
    return tuple(project["vars"]["whitespace_code_points"])


def duckdb_characters() -> str:
    """The characters as a DuckDB string expression, e.g. for trim(x, <this>)."""
    return " || ".join(f"chr({code})" for code in whitespace_code_points())
