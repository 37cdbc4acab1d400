"""Independent oracle of the Ledgerflow data contract, for tests.

A small pure-Python (standard library only) re-implementation of the cleaning,
quarantine and business rules in ``docs/contract.md``. Tests run it on
the same CSV files as the SQL pipeline and compare results. It deliberately shares
no code with the pipeline, and it only handles well-formed input (valid UTF-8, a
header, RFC 4180 quoting): ingestion errors are the pipeline's own tests' business.

Decisions where the contract is silent or open to reading:
- "an id that parses" (customer_quarantined) means an id that passes the
  customer_id rule; a customers.csv row with ``+42`` does not make 42 known.
- The balance missing tokens apply to balance only; ``null`` as a name is a name.
- A balance too large in size is ``invalid_balance`` even when negative.
"""

from __future__ import annotations

import csv
import io
import re
from dataclasses import dataclass
from decimal import ROUND_HALF_UP, Decimal, localcontext
from pathlib import Path

MAX_ID = 2**63 - 1
MAX_BALANCE = Decimal("1000000000000000.00")
CENT = Decimal("0.01")
BALANCE_RE = re.compile(r"-?[0-9]+(\.[0-9]{1,2})?")  # always used with fullmatch
ID_RE = re.compile(r"[0-9]+")
MISSING_BALANCE_TOKENS = {"null", "none", "n/a", "na"}
HAS_LOAN = {
    "yes": True,
    "y": True,
    "true": True,
    "1": True,
    "no": False,
    "n": False,
    "false": False,
    "0": False,
}
ACCOUNT_TYPES = {"savings", "checking"}

# The quarantine reasons, in the contract's order of precedence.
CUSTOMER_REASONS = [
    "missing_customer_id",
    "invalid_customer_id",
    "missing_customer_name",
    "missing_has_loan",
    "invalid_has_loan",
    "duplicate_customer_id",
]
ACCOUNT_REASONS = [
    "missing_account_id",
    "missing_customer_id",
    "invalid_customer_id",
    "missing_balance",
    "invalid_balance",
    "negative_balance",
    "missing_account_type",
    "invalid_account_type",
    "duplicate_account_id",
    "customer_quarantined",
    "unknown_customer",
]


@dataclass(frozen=True)
class QuarantinedRow:
    source_line: int  # header = 1, first data record = 2, empty lines not counted
    reason: str
    raw: dict[str, str]  # raw values as delivered, keyed by lower-cased trimmed header


@dataclass(frozen=True)
class Expected:
    account_summary: list[dict]
    customer_profile: list[dict]
    quarantine_customers: list[QuarantinedRow]
    quarantine_accounts: list[QuarantinedRow]


class Invalid(Exception):
    """A row breaks a rule; args[0] is the quarantine reason."""


# --- reading -------------------------------------------------------------------------


def read_records(path: Path, required: set[str]) -> list[tuple[int, dict[str, str]]]:
    """(source_line, raw row) per data record; blank lines skipped and not counted."""
    text = Path(path).read_bytes().decode("utf-8-sig")
    rows = [r for r in csv.reader(io.StringIO(text, newline=""), strict=True) if r != []]
    header = [h.strip().lower() for h in rows[0]]
    missing = required - set(header)
    if missing:
        raise ValueError(f"{Path(path).name}: missing columns {sorted(missing)}")
    return [(line, dict(zip(header, row))) for line, row in enumerate(rows[1:], start=2)]


# --- field rules (each returns the clean value or raises Invalid(reason)) -----------


def clean_customer_id(value: str) -> int:
    value = value.strip()
    if not value:
        raise Invalid("missing_customer_id")
    if not ID_RE.fullmatch(value) or not 1 <= int(value) <= MAX_ID:
        raise Invalid("invalid_customer_id")
    return int(value)


def clean_name(value: str) -> str:
    name = " ".join(value.split())  # trims and collapses every Unicode whitespace run
    if not name:
        raise Invalid("missing_customer_name")
    return name


def clean_has_loan(value: str) -> bool:
    value = value.strip()
    if not value:
        raise Invalid("missing_has_loan")
    if value.lower() not in HAS_LOAN:
        raise Invalid("invalid_has_loan")
    return HAS_LOAN[value.lower()]


def clean_account_id(value: str) -> str:
    value = value.strip()
    if not value:
        raise Invalid("missing_account_id")
    return value


def clean_balance(value: str) -> Decimal:
    value = value.strip()
    if not value or value.lower() in MISSING_BALANCE_TOKENS:
        raise Invalid("missing_balance")
    if not BALANCE_RE.fullmatch(value):
        raise Invalid("invalid_balance")
    amount = Decimal(value)
    if abs(amount) > MAX_BALANCE:
        raise Invalid("invalid_balance")
    if amount < 0:
        raise Invalid("negative_balance")
    return abs(amount).quantize(CENT)  # abs() turns -0 / -0.00 into 0.00


def clean_account_type(value: str) -> str:
    value = value.strip().lower()
    if not value:
        raise Invalid("missing_account_type")
    if value not in ACCOUNT_TYPES:
        raise Invalid("invalid_account_type")
    return value


# --- quarantine ---------------------------------------------------------------------


def split_duplicates(
    rows: list[tuple[int, dict, dict]], key: str, reason: str, quarantine: list[QuarantinedRow]
) -> list[tuple[int, dict, dict]]:
    """Quarantine every row whose key occurs more than once; return the others."""
    counts: dict = {}
    for _, _, clean in rows:
        counts[clean[key]] = counts.get(clean[key], 0) + 1
    kept = []
    for line, raw, clean in rows:
        if counts[clean[key]] > 1:
            quarantine.append(QuarantinedRow(line, reason, raw))
        else:
            kept.append((line, raw, clean))
    return kept


def stage_customers(path: Path) -> tuple[dict[int, dict], set[int], list[QuarantinedRow]]:
    """Passed customers by id, every id that parses in the file, quarantined rows."""
    passed, quarantine, parsed_ids = [], [], set()
    for line, raw in read_records(path, {"customerid", "name", "hasloan"}):
        try:
            customer_id = clean_customer_id(raw["customerid"])
            parsed_ids.add(customer_id)
            clean = {
                "customer_id": customer_id,
                "customer_name": clean_name(raw["name"]),
                "has_loan": clean_has_loan(raw["hasloan"]),
            }
        except Invalid as err:
            quarantine.append(QuarantinedRow(line, err.args[0], raw))
            continue
        passed.append((line, raw, clean))
    passed = split_duplicates(passed, "customer_id", "duplicate_customer_id", quarantine)
    return {c["customer_id"]: c for _, _, c in passed}, parsed_ids, quarantine


def stage_accounts(
    path: Path, customers: dict[int, dict], parsed_customer_ids: set[int]
) -> tuple[list[dict], list[QuarantinedRow]]:
    passed, quarantine = [], []
    for line, raw in read_records(path, {"accountid", "customerid", "balance", "accounttype"}):
        try:
            clean = {
                "account_id": clean_account_id(raw["accountid"]),
                "customer_id": clean_customer_id(raw["customerid"]),
                "balance": clean_balance(raw["balance"]),
                "account_type": clean_account_type(raw["accounttype"]),
            }
        except Invalid as err:
            quarantine.append(QuarantinedRow(line, err.args[0], raw))
            continue
        passed.append((line, raw, clean))
    passed = split_duplicates(passed, "account_id", "duplicate_account_id", quarantine)
    accounts = []
    for line, raw, clean in passed:
        if clean["customer_id"] in customers:
            accounts.append(clean)
        elif clean["customer_id"] in parsed_customer_ids:
            quarantine.append(QuarantinedRow(line, "customer_quarantined", raw))
        else:
            quarantine.append(QuarantinedRow(line, "unknown_customer", raw))
    return accounts, quarantine


# --- business rules -----------------------------------------------------------------


def interest_rate(balance: Decimal, has_loan: bool) -> Decimal:
    if balance < Decimal("10000.00"):
        rate = Decimal("0.0100")
    elif balance < Decimal("20000.00"):
        rate = Decimal("0.0150")
    else:
        rate = Decimal("0.0200")
    return rate + Decimal("0.0050") if has_loan else rate


def annual_interest(balance: Decimal, rate: Decimal) -> Decimal:
    with localcontext() as ctx:
        ctx.prec = 60  # the product is exact; only the final quantize rounds
        return (balance * rate).quantize(CENT, rounding=ROUND_HALF_UP)


def expected_outputs(customers_csv: Path, accounts_csv: Path) -> Expected:
    customers, parsed_ids, q_customers = stage_customers(customers_csv)
    accounts, q_accounts = stage_accounts(accounts_csv, customers, parsed_ids)

    summary = []
    for acc in accounts:
        if acc["account_type"] != "savings":
            continue
        rate = interest_rate(acc["balance"], customers[acc["customer_id"]]["has_loan"])
        interest = annual_interest(acc["balance"], rate)
        summary.append(
            {
                "account_id": acc["account_id"],
                "customer_id": acc["customer_id"],
                "original_balance_amount": acc["balance"],
                "interest_rate_pct": rate,
                "annual_interest_amount": interest,
                "new_balance_amount": acc["balance"] + interest,
            }
        )
    summary.sort(key=lambda r: r["account_id"].encode("utf-8"))

    profile = []
    for cid in sorted(customers):
        mine = [a for a in accounts if a["customer_id"] == cid]
        rows = [r for r in summary if r["customer_id"] == cid]
        profile.append(
            {
                "customer_id": cid,
                "customer_name": customers[cid]["customer_name"],
                "has_loan": customers[cid]["has_loan"],
                "savings_account_count": sum(a["account_type"] == "savings" for a in mine),
                "checking_account_count": sum(a["account_type"] == "checking" for a in mine),
                "total_savings_balance_amount": sum(
                    (r["original_balance_amount"] for r in rows), Decimal("0.00")
                ),
                "total_annual_interest_amount": sum(
                    (r["annual_interest_amount"] for r in rows), Decimal("0.00")
                ),
            }
        )

    return Expected(
        account_summary=summary,
        customer_profile=profile,
        quarantine_customers=sorted(q_customers, key=lambda q: q.source_line),
        quarantine_accounts=sorted(q_accounts, key=lambda q: q.source_line),
    )
