"""Random but reproducible sequences of deliveries, for tests of incremental processing.

`DeliverySequence(seed)` builds a first delivery (15-30 customers, 20-50 accounts, a few
dirty records of various quarantine reasons) and `advance()` mutates it into the next one
with a handful of random operations, the kind of change a real day brings: balances moved
across the interest tiers, loan flags flipped (or only re-spelled), accounts and customers
removed and added, records broken and later fixed, rows and columns reordered. Everything
comes from one `random.Random(seed)`, so a seed names a sequence exactly; `advance()`
returns what it did, for failure messages.

The factory knows nothing of the expected results: tests derive them from the CSV text
with `contract_oracle`.
"""

from __future__ import annotations

import csv
import io
import random
from dataclasses import dataclass, field
from decimal import Decimal
from pathlib import Path
from typing import ClassVar

CUSTOMER_COLUMNS = ("CustomerID", "Name", "HasLoan")
ACCOUNT_COLUMNS = ("AccountID", "CustomerID", "Balance", "AccountType")

LOAN_YES = ("Yes", "y", "TRUE", "1", "yes", "Y", " true ")
LOAN_NO = ("No", "n", "false", "0", "NO", "N", " FALSE ")
# Tier boundaries (10000.00, 20000.00) and their neighbours, zero in its spellings, and
# amounts whose interest has a half cent (DOUBLE arithmetic rounds them wrongly).
BALANCES = (
    "0.00",
    "0",
    "-0.00",
    "9999.99",
    "10000.00",
    "10000",
    "19999.99",
    "20000.00",
    "20000.01",
    "14.50",
    "333.00",
    "10001.00",
    "20000.25",
    "45000.50",
    "12345.6",
    "7",
)
ACCOUNT_TYPES = ("savings", "Savings", "SAVINGS", " savings ", "checking", "Checking")
NAMES = (
    "Alice Martin",
    "Bob Chen",
    "Carla  Diaz",
    "Dan\tO'Neil",
    "Eve Adams",
    "Smith, Frank",
    "Grace Hopper",
    "Hal Jordan",
    "Ivy Lee",
    "Jon Snow",
    "Kara Lind",
    "Liam Moss",
    "=Gus Formula",
    "Nora Quinn",
    "Omar Ruiz",
    "Pia Sand",
)

# Ways to break a record, each with the reason the contract gives it (for the log only).
CUSTOMER_BREAKS = (
    ("HasLoan", "maybe", "invalid_has_loan"),
    ("HasLoan", "null", "invalid_has_loan"),
    ("HasLoan", "n/a", "invalid_has_loan"),
    ("HasLoan", "", "missing_has_loan"),
    ("Name", " \t ", "missing_customer_name"),
    ("CustomerID", "+{id}", "invalid_customer_id"),
)
ACCOUNT_BREAKS = (
    ("Balance", "1e5", "invalid_balance"),
    ("Balance", ".5", "invalid_balance"),
    ("Balance", "1,000.00", "invalid_balance"),
    ("Balance", "100.005", "invalid_balance"),
    ("Balance", "-5.00", "negative_balance"),
    ("Balance", "N/A", "missing_balance"),
    ("Balance", "", "missing_balance"),
    ("AccountType", "loan", "invalid_account_type"),
    ("AccountType", "", "missing_account_type"),
    ("CustomerID", "+{id}", "invalid_customer_id"),
    ("CustomerID", "", "missing_customer_id"),
    ("AccountID", "  ", "missing_account_id"),
)


@dataclass
class Row:
    """One CSV record. `saved` holds the values a `break` replaced, for a later `fix`;
    `duplicate` marks a row added only to duplicate another's id (a `fix` removes it)."""

    values: dict[str, str]
    saved: dict[str, str] | None = None
    duplicate: bool = False

    @property
    def broken(self) -> bool:
        return self.saved is not None or self.duplicate


@dataclass
class Delivery:
    customers: list[Row]
    accounts: list[Row]
    customer_columns: list[str] = field(default_factory=lambda: list(CUSTOMER_COLUMNS))
    account_columns: list[str] = field(default_factory=lambda: list(ACCOUNT_COLUMNS))
    line_end: str = "\n"

    def write(self, folder: Path) -> Path:
        folder.mkdir(parents=True, exist_ok=True)
        for name, rows, columns in (
            ("customers.csv", self.customers, self.customer_columns),
            ("accounts.csv", self.accounts, self.account_columns),
        ):
            (folder / name).write_bytes(_to_csv(rows, columns, self.line_end).encode("utf-8"))
        return folder


def _to_csv(rows: list[Row], columns: list[str], line_end: str) -> str:
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator=line_end)
    writer.writerow(columns)
    for row in rows:
        writer.writerow([row.values[column] for column in columns])
    return buffer.getvalue()


class DeliverySequence:
    """A first delivery and, on each `advance()`, the next one."""

    def __init__(self, seed: int):
        self.rng = random.Random(seed)
        self.next_customer_id = 1
        self.next_account_number = 1
        self.delivery = self._initial()

    # --- building blocks ---------------------------------------------------------------

    def _new_customer(self) -> Row:
        customer_id = self.next_customer_id
        self.next_customer_id += 1
        text = str(customer_id)
        if self.rng.random() < 0.15:
            text = "00" + text  # leading zeros: the same customer
        loan = self.rng.choice(LOAN_YES + LOAN_NO)
        return Row({"CustomerID": text, "Name": self.rng.choice(NAMES), "HasLoan": loan})

    def _new_account(self, customer_id: str | None = None) -> Row:
        number = self.next_account_number
        self.next_account_number += 1
        # Mixed case and a formula-like id exercise byte-order sorting and CSV escaping.
        account_id = {0: f"a{number:03d}", 1: f"@A{number:03d}"}.get(
            self.rng.randrange(12), f"A{number:03d}"
        )
        if customer_id is None:
            customer_id = self._customer_id_of(
                self.rng.choice(self._clean(self.delivery.customers))
            )
        balance = self.rng.choice(BALANCES + (self._random_balance(),) * 4)
        return Row(
            {
                "AccountID": account_id,
                "CustomerID": customer_id,
                "Balance": balance,
                "AccountType": self.rng.choice(ACCOUNT_TYPES[:4] * 2 + ACCOUNT_TYPES[4:]),
            }
        )

    def _random_balance(self) -> str:
        cents = self.rng.randrange(0, 5_000_000)
        return str(Decimal(cents) / 100)

    @staticmethod
    def _customer_id_of(row: Row) -> str:
        return row.values["CustomerID"]

    @staticmethod
    def _clean(rows: list[Row]) -> list[Row]:
        return [row for row in rows if not row.broken]

    def _initial(self) -> Delivery:
        self.delivery = Delivery(customers=[], accounts=[])
        self.delivery.customers = [self._new_customer() for _ in range(self.rng.randint(15, 30))]
        self.delivery.accounts = [self._new_account() for _ in range(self.rng.randint(20, 50))]
        # A few dirty records from the start, fixable later ...
        for _ in range(self.rng.randint(2, 3)):
            self.op_break_customer()
        for _ in range(self.rng.randint(2, 4)):
            self.op_break_account()
        # ... and orphans that stay (no such customer).
        self.delivery.accounts.append(
            self._new_account(customer_id=str(9000 + self.rng.randrange(99)))
        )
        self.rng.shuffle(self.delivery.accounts)
        return self.delivery

    # --- operations: each returns a description, or None when it does not apply --------

    def op_change_balance(self) -> str | None:
        rows = self._clean(self.delivery.accounts)
        if not rows:
            return None
        row = self.rng.choice(rows)
        old = row.values["Balance"]
        row.values["Balance"] = self.rng.choice(BALANCES + (self._random_balance(),) * 2)
        return f"balance {row.values['AccountID']}: {old!r} -> {row.values['Balance']!r}"

    def op_flip_loan(self, respell_chance: float = 0.3) -> str | None:
        rows = self._clean(self.delivery.customers)
        # Mostly a customer with accounts, so the flip reaches account_summary.
        owners = {a.values["CustomerID"].lstrip("0") for a in self.delivery.accounts}
        with_accounts = [r for r in rows if r.values["CustomerID"].lstrip("0") in owners]
        if with_accounts and self.rng.random() < 0.8:
            rows = with_accounts
        if not rows:
            return None
        row = self.rng.choice(rows)
        old = row.values["HasLoan"]
        was_yes = old.strip().lower() in {v.strip().lower() for v in LOAN_YES}
        # Mostly a real flip; sometimes the same answer spelled differently (no change).
        same = self.rng.random() < respell_chance
        pool = LOAN_YES if was_yes == same else LOAN_NO
        row.values["HasLoan"] = self.rng.choice(pool)
        kind = "respell" if same else "flip"
        return (
            f"loan {kind} customer {row.values['CustomerID']}: {old!r} -> {row.values['HasLoan']!r}"
        )

    def op_rename_customer(self) -> str | None:
        rows = self._clean(self.delivery.customers)
        if not rows:
            return None
        row = self.rng.choice(rows)
        old = row.values["Name"]
        row.values["Name"] = self.rng.choice(NAMES)
        return f"rename customer {row.values['CustomerID']}: {old!r} -> {row.values['Name']!r}"

    def op_change_account_type(self) -> str | None:
        rows = self._clean(self.delivery.accounts)
        if not rows:
            return None
        row = self.rng.choice(rows)
        old = row.values["AccountType"]
        is_savings = old.strip().lower() == "savings"
        row.values["AccountType"] = self.rng.choice(
            ACCOUNT_TYPES[4:] if is_savings else ACCOUNT_TYPES[:4]
        )
        return f"type {row.values['AccountID']}: {old!r} -> {row.values['AccountType']!r}"

    def op_move_account(self) -> str | None:
        accounts = self._clean(self.delivery.accounts)
        customers = self._clean(self.delivery.customers)
        if not accounts or not customers:
            return None
        row = self.rng.choice(accounts)
        old = row.values["CustomerID"]
        row.values["CustomerID"] = self._customer_id_of(self.rng.choice(customers))
        return f"move {row.values['AccountID']}: customer {old} -> {row.values['CustomerID']}"

    def op_remove_account(self) -> str | None:
        if len(self.delivery.accounts) <= 5:
            return None
        row = self.rng.choice(self.delivery.accounts)
        self.delivery.accounts.remove(row)
        return f"remove account {row.values['AccountID']!r}"

    def op_add_account(self) -> str | None:
        if not self._clean(self.delivery.customers):
            return None
        row = self._new_account()
        self.delivery.accounts.insert(self.rng.randint(0, len(self.delivery.accounts)), row)
        return f"add account {row.values['AccountID']} ({row.values['Balance']}, {row.values['AccountType']!r})"

    def op_remove_customer(self) -> str | None:
        if len(self.delivery.customers) <= 5:
            return None
        row = self.rng.choice(self.delivery.customers)
        self.delivery.customers.remove(row)
        return (
            f"remove customer {row.values['CustomerID']!r} (its accounts become unknown_customer)"
        )

    def op_add_customer(self) -> str | None:
        row = self._new_customer()
        self.delivery.customers.insert(self.rng.randint(0, len(self.delivery.customers)), row)
        return f"add customer {row.values['CustomerID']}"

    def op_break_customer(self) -> str | None:
        rows = self._clean(self.delivery.customers)
        if not rows:
            return None
        row = self.rng.choice(rows)
        customer_id = row.values["CustomerID"].lstrip("0")
        if self.rng.random() < 0.3:
            # A second row whose id parses to the same number: both are quarantined.
            duplicate = Row(
                {
                    "CustomerID": "0" + row.values["CustomerID"],
                    "Name": self.rng.choice(NAMES),
                    "HasLoan": self.rng.choice(LOAN_YES + LOAN_NO),
                },
                duplicate=True,
            )
            self.delivery.customers.insert(
                self.rng.randint(0, len(self.delivery.customers)), duplicate
            )
            return f"break customer {customer_id}: duplicate id {duplicate.values['CustomerID']!r}"
        column, value, reason = self.rng.choice(CUSTOMER_BREAKS)
        row.saved = dict(row.values)
        row.values[column] = value.format(id=customer_id)
        return f"break customer {customer_id}: {column}={row.values[column]!r} ({reason})"

    def op_break_account(self) -> str | None:
        rows = self._clean(self.delivery.accounts)
        if not rows:
            return None
        row = self.rng.choice(rows)
        account_id = row.values["AccountID"]
        if self.rng.random() < 0.2:
            duplicate = Row(dict(row.values, AccountID=f" {account_id} "), duplicate=True)
            self.delivery.accounts.insert(
                self.rng.randint(0, len(self.delivery.accounts)), duplicate
            )
            return f"break account {account_id}: duplicate id"
        column, value, reason = self.rng.choice(ACCOUNT_BREAKS)
        row.saved = dict(row.values)
        row.values[column] = value.format(id=row.values["CustomerID"].lstrip("0"))
        return f"break account {account_id}: {column}={row.values[column]!r} ({reason})"

    def op_copy_row(self) -> str | None:
        """An exact copy of a delivered row: one content twice, so both copies are
        duplicates (and `fix` later removes one copy, which makes the other pass)."""
        rows = self.rng.choice((self.delivery.customers, self.delivery.accounts))
        clean = self._clean(rows)
        if not clean:
            return None
        row = self.rng.choice(clean)
        rows.insert(self.rng.randint(0, len(rows)), Row(dict(row.values), duplicate=True))
        return f"copy row {row.values}"

    def op_fix(self) -> str | None:
        broken = [
            (rows, row)
            for rows in (self.delivery.customers, self.delivery.accounts)
            for row in rows
            if row.broken
        ]
        if not broken:
            return None
        rows, row = self.rng.choice(broken)
        if row.duplicate:
            rows.remove(row)
            return f"fix (drop the duplicate row) {row.values}"
        assert row.saved is not None
        broken_values, row.values, row.saved = row.values, row.saved, None
        return f"fix {broken_values} -> {row.values}"

    def op_reorder_rows(self) -> str | None:
        rows = self.rng.choice((self.delivery.customers, self.delivery.accounts))
        self.rng.shuffle(rows)
        return (
            f"reorder rows of {'customers' if rows is self.delivery.customers else 'accounts'}.csv"
        )

    def op_reorder_columns(self) -> str | None:
        columns = self.rng.choice((self.delivery.customer_columns, self.delivery.account_columns))
        self.rng.shuffle(columns)
        return f"reorder columns: {columns}"

    def op_line_ends(self) -> str | None:
        self.delivery.line_end = "\r\n" if self.delivery.line_end == "\n" else "\n"
        return f"line ends {self.delivery.line_end!r}"

    # Operation name -> weight: how often `advance()` picks it.
    OPERATIONS: ClassVar[dict[str, int]] = {
        "change_balance": 5,
        "flip_loan": 4,
        "rename_customer": 1,
        "change_account_type": 2,
        "move_account": 1,
        "remove_account": 2,
        "add_account": 2,
        "remove_customer": 1,
        "add_customer": 1,
        "break_customer": 2,
        "break_account": 2,
        "copy_row": 1,
        "fix": 3,
        "reorder_rows": 1,
        "reorder_columns": 1,
        "line_ends": 1,
    }

    def advance(self, min_ops: int = 2, max_ops: int = 6) -> list[str]:
        """Turn the delivery into the next one; returns what was done."""
        names = list(self.OPERATIONS)
        weights = list(self.OPERATIONS.values())
        # Every delivery moves a balance and flips a loan flag: the changes incremental
        # change detection must notice (a flip reaches accounts only through the customer).
        first = (self.op_change_balance(), self.op_flip_loan(respell_chance=0.0))
        done = [description for description in first if description is not None]
        target = len(done) + self.rng.randint(min_ops, max_ops)
        while len(done) < target:
            (name,) = self.rng.choices(names, weights)
            description = getattr(self, f"op_{name}")()
            if description is not None:
                done.append(description)
        return done
