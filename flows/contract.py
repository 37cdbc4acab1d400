"""What the data contract fixes, as the code reads it: the delivery's files and columns, the
published marts and their columns.

The marts' columns and types are written once, in the dbt YAML contract
(`dbt_project/models/marts/_marts__models.yml`, enforced by dbt); the publish step and the
Databricks export read them from there.
"""

from __future__ import annotations

import re
from functools import cache

import yaml

from flows.config import DBT_PROJECT_DIR

# The input files of a delivery and their required columns, as the contract names them.
# Header names are matched case-insensitively after trimming; the raw tables use the
# lower-cased names.
DELIVERY_FILES: dict[str, tuple[str, ...]] = {
    "customers": ("CustomerID", "Name", "HasLoan"),
    "accounts": ("AccountID", "CustomerID", "Balance", "AccountType"),
}

# The published marts, each sorted by its key in the published files.
PUBLISHED_MARTS: dict[str, str] = {
    "account_summary": "account_id",
    "customer_profile": "customer_id",
}
# The delivery table each mart is built from: the report counts a mart's rows under it.
MART_SOURCES: dict[str, str] = {"account_summary": "accounts", "customer_profile": "customers"}

MARTS_CONTRACT = DBT_PROJECT_DIR / "models" / "marts" / "_marts__models.yml"


@cache
def _marts_contract() -> dict[str, dict[str, str]]:
    models = yaml.safe_load(MARTS_CONTRACT.read_text(encoding="utf-8"))["models"]
    return {
        model["name"]: {column["name"]: column["data_type"] for column in model["columns"]}
        for model in models
        if (model.get("config") or {}).get("contract", {}).get("enforced")
    }


def mart_columns(mart: str) -> dict[str, str]:
    """The mart's columns and their SQL types, in order, as the dbt contract declares them."""
    return dict(_marts_contract()[mart])


def raw_value_column(header: str) -> str:
    """The staging column that keeps a delivered value as it came: `raw_` + the header in
    snake case (CustomerID -> raw_customer_id, HasLoan -> raw_has_loan)."""
    return "raw_" + re.sub(r"(?<=[a-z])(?=[A-Z])|(?<=[A-Z])(?=[A-Z][a-z])", "_", header).lower()
