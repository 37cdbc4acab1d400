"""Synthetic deliveries at any scale: a first delivery, and the next one from it.

`generate_delivery` writes `customers.csv` and `accounts.csv` in the contract's format, with
messy but valid values the cleaning rules must handle (padding, tabs, no-break spaces, case,
leading zeros, every balance format the contract allows) and a share of broken records
spread over every quarantine reason. `generate_next_delivery` reads a delivery and writes
the next night's: a share of accounts with a new balance or type, removed or added, and
the same share of customers' loan flags flipped.

Rows are never built in Python: each file is one DuckDB `COPY (select ... from range(n))`,
so ten million accounts stream to disk in seconds with bounded memory. Randomness is
`hash(hash(row, seed, tag))`, a pure function of the row, so a seed names a delivery byte
for byte (for a given DuckDB version: `hash` is DuckDB's own). The outer hash matters: the
multi-argument hash combines its arguments linearly, so two tags of one row would
otherwise give correlated values.

Which rows are broken is not drawn per row but laid out by a permutation: row i has rank
`(i * multiplier + offset) mod rows`, and the rows ranked below the dirty count are the
broken ones, their reason cycling with the rank. That gives the exact dirty count, every
reason at small sizes too, and, because the permutation inverts, a way to find "a customer
that is quarantined" or "a customer that passes" without a join: pick a rank, invert it.
"""

from __future__ import annotations

import csv
import math
import random
import time
from dataclasses import dataclass
from pathlib import Path

import duckdb

from tools.whitespace import duckdb_characters

CUSTOMERS_FILE = "customers.csv"
ACCOUNTS_FILE = "accounts.csv"

# Broken customers cycle through these slots by rank (the SQL below names slots by their
# position here). A duplicate takes two rows: the owner keeps its id, the writer (the next
# rank) spells the owner's id its own way.
CUSTOMER_SLOTS = (
    "missing_customer_id",
    "invalid_customer_id",
    "missing_customer_name",
    "missing_has_loan",
    "invalid_has_loan",
    "duplicate_customer_id",  # owner
    "duplicate_customer_id",  # writer
)
ACCOUNT_SLOTS = (
    "missing_account_id",
    "missing_customer_id",
    "invalid_customer_id",
    "missing_balance",
    "invalid_balance",
    "negative_balance",
    "missing_account_type",
    "invalid_account_type",
    "duplicate_account_id",  # owner
    "duplicate_account_id",  # writer
    "customer_quarantined",
    "unknown_customer",
)
# Below these sizes a dirty delivery cannot hold every reason (an account must point at a
# quarantined customer, and a passing one must remain).
MIN_DIRTY_CUSTOMERS = len(CUSTOMER_SLOTS) + 1
MIN_DIRTY_ACCOUNTS = len(ACCOUNT_SLOTS)
# Ranks and indexes are multiplied in BIGINT; this keeps every product below 2^63.
MAX_ROWS = 1_000_000_000

# Of a change rate r: r x 0.5 of the accounts change balance or type, r x 0.2 go, r x 0.2
# are added, r x 0.1 move to another customer.
CHANGED_SHARE, REMOVED_SHARE, ADDED_SHARE, MOVED_SHARE = 0.5, 0.2, 0.2, 0.1

# What trim removes when an existing delivery is read back (the contract's whole set).
WHITESPACE = duckdb_characters()

FIRST_NAMES = (
    "Alice", "Bob", "Carla", "Dan", "Eve", "Frank", "Grace", "Hal", "Ivy", "Jon", "Kara",
    "Liam", "Mia", "Noah", "Olga", "Pia", "Quinn", "Rosa", "Sam", "Tara", "Uma", "Victor",
    "Wen", "Xavier", "Yara", "Zoë", "José", "Łukasz", "Ana María", "Søren", "Chloé", "Émile",
    "Jean-Luc", "Siobhán", "Ahmed", "Mei", "Priya", "Olumide", "Björn", "Nguyễn",
)  # fmt: skip
LAST_NAMES = (
    "Martin", "Chen", "Diaz", "O'Neil", "Adams", "Smith", "Hopper", "Jordan", "Lee", "Snow",
    "Lind", "Moss", "Quinn", "Ruiz", "Sand", "Müller", "García", "Kowalski", "Nakamura",
    "Okafor", "Rossi", "Dubois", "Van der Berg", "Al-Sayed", "Ó Briain", "Petrov", "Silva",
    "Kim", "Singh", "Haddad", "Novák", "Jensen", "MacLeod", "D'Angelo", "Fernández",
)  # fmt: skip


@dataclass(frozen=True)
class GeneratedDelivery:
    """What was written, and how many rows of each file are broken on purpose."""

    out_dir: Path
    customers: int
    accounts: int
    dirty_customers: int
    dirty_accounts: int
    seconds: float


@dataclass(frozen=True)
class NextDelivery:
    """The next delivery: rows written, and what changed against the base."""

    out_dir: Path
    customers: int
    accounts: int
    accounts_changed: int
    accounts_removed: int
    accounts_added: int
    accounts_moved: int  # given another customer id, drawn at random (rarely the same one)
    loan_flags_flipped: int  # chosen to flip; a flag the contract cannot read stays as it was
    seconds: float


@dataclass(frozen=True)
class _Permutation:
    """rank = (index * multiplier + offset) mod size, and its inverse, as SQL."""

    size: int
    multiplier: int
    offset: int
    inverse: int

    @classmethod
    def for_size(cls, size: int, rng: random.Random) -> _Permutation:
        if size <= 1:
            return cls(max(size, 1), 1, 0, 0 if size <= 1 else 1)
        # A multiplier near size x 0.6 scatters consecutive ranks far apart (the golden-ratio
        # spread); any value coprime with the size is a bijection.
        multiplier = int(size * (0.55 + 0.1 * rng.random())) | 1
        while math.gcd(multiplier, size) != 1:
            multiplier += 2
        multiplier %= size
        return cls(size, multiplier, rng.randrange(size), pow(multiplier, -1, size))

    def rank(self, index: str) -> str:
        return f"(({index}) * {self.multiplier} + {self.offset}) % {self.size}"

    def index(self, rank: str) -> str:
        shifted = f"((({rank}) - {self.offset}) % {self.size} + {self.size}) % {self.size}"
        return f"({shifted} * {self.inverse}) % {self.size}"


def generate_delivery(
    out_dir: Path,
    customers: int,
    accounts_per_customer: float = 2.5,
    dirty_rate: float = 0.02,
    seed: int = 0,
    threads: int | None = None,
) -> GeneratedDelivery:
    """Write a first delivery: `customers` customers, `accounts_per_customer` accounts each
    on average, `dirty_rate` of each file's rows broken on purpose."""
    accounts = round(customers * accounts_per_customer)
    _check_sizes(customers, accounts, dirty_rate)
    rng = random.Random(f"ledgerflow-delivery-{seed}")
    customer_perm = _Permutation.for_size(customers, rng)
    account_perm = _Permutation.for_size(accounts, rng)
    dirty_customers = _dirty_count(dirty_rate, customers, CUSTOMER_SLOTS, customers - 1)
    dirty_accounts = _dirty_count(dirty_rate, accounts, ACCOUNT_SLOTS, accounts)

    started = time.perf_counter()
    out_dir.mkdir(parents=True, exist_ok=True)
    with _connect(threads) as con:
        _define_value_macros(con, seed)
        _copy(
            con,
            _customers_sql(customer_perm, dirty_customers),
            out_dir / CUSTOMERS_FILE,
        )
        _copy(
            con,
            _accounts_sql(account_perm, customer_perm, dirty_accounts, dirty_customers),
            out_dir / ACCOUNTS_FILE,
        )
    return GeneratedDelivery(
        out_dir=out_dir,
        customers=customers,
        accounts=accounts,
        dirty_customers=dirty_customers,
        dirty_accounts=dirty_accounts,
        seconds=time.perf_counter() - started,
    )


def generate_next_delivery(
    base_dir: Path,
    out_dir: Path,
    change_rate: float,
    seed: int = 0,
    threads: int | None = None,
) -> NextDelivery:
    """Write the delivery after `base_dir`'s: unchanged rows byte for byte as DuckDB
    writes them, in the same order, removed rows gone, added accounts at the end."""
    if not 0 <= change_rate <= 1:
        raise ValueError(f"--change-rate must be within 0 … 1, not {change_rate}")
    if base_dir.resolve() == out_dir.resolve():
        raise ValueError("--from and --out must be different folders")
    for name in (CUSTOMERS_FILE, ACCOUNTS_FILE):
        if not (base_dir / name).is_file():
            raise ValueError(f"{base_dir / name} not found")

    started = time.perf_counter()
    out_dir.mkdir(parents=True, exist_ok=True)
    customers_in = _CsvInput(base_dir / CUSTOMERS_FILE)
    accounts_in = _CsvInput(base_dir / ACCOUNTS_FILE)
    rng = random.Random(f"ledgerflow-next-delivery-{seed}")
    with _connect(threads) as con:
        _define_value_macros(con, seed)
        n_customers = customers_in.count(con)
        n_accounts = accounts_in.count(con)
        flipped = _share(change_rate, 1.0, n_customers)
        changed = _share(change_rate, CHANGED_SHARE, n_accounts)
        removed = min(_share(change_rate, REMOVED_SHARE, n_accounts), n_accounts - changed)
        added = _share(change_rate, ADDED_SHARE, max(n_accounts, 1)) if n_customers else 0
        moved = min(_share(change_rate, MOVED_SHARE, n_accounts), n_accounts - changed - removed)

        _copy(
            con,
            _flip_loans_sql(customers_in, _Permutation.for_size(n_customers, rng), flipped),
            out_dir / CUSTOMERS_FILE,
        )
        _copy(
            con,
            _change_accounts_sql(
                accounts_in,
                _Permutation.for_size(n_accounts, rng),
                changed,
                removed,
                moved,
                n_customers,
            ),
            out_dir / ACCOUNTS_FILE,
        )
        if added:
            # Appended after the kept rows: a second COPY keeps the first one streaming
            # (a union with an ORDER BY would sort the whole file).
            appended = out_dir / f".{ACCOUNTS_FILE}.added"
            _copy(
                con,
                _added_accounts_sql(accounts_in, customers_in, n_customers, added),
                appended,
                header=False,
            )
            with (out_dir / ACCOUNTS_FILE).open("ab") as target, appended.open("rb") as source:
                while chunk := source.read(1 << 20):
                    target.write(chunk)
            appended.unlink()
    return NextDelivery(
        out_dir=out_dir,
        customers=n_customers,
        accounts=n_accounts - removed + added,
        accounts_changed=changed,
        accounts_removed=removed,
        accounts_added=added,
        accounts_moved=moved,
        loan_flags_flipped=flipped,
        seconds=time.perf_counter() - started,
    )


# --- sizes --------------------------------------------------------------------------------


def _check_sizes(customers: int, accounts: int, dirty_rate: float) -> None:
    if not 1 <= customers <= MAX_ROWS or not 0 <= accounts <= MAX_ROWS:
        raise ValueError(f"--customers and the account count must be within 1 … {MAX_ROWS:,}")
    if not 0 <= dirty_rate <= 1:
        raise ValueError(f"--dirty-rate must be within 0 … 1, not {dirty_rate}")
    if dirty_rate > 0 and (customers < MIN_DIRTY_CUSTOMERS or accounts < MIN_DIRTY_ACCOUNTS):
        raise ValueError(
            f"a dirty delivery needs at least {MIN_DIRTY_CUSTOMERS} customers and "
            f"{MIN_DIRTY_ACCOUNTS} accounts to hold every quarantine reason"
        )


def _dirty_count(rate: float, rows: int, slots: tuple[str, ...], at_most: int) -> int:
    """Broken rows: the rate's share, at least one full cycle of reasons, and never a
    duplicate owner without its writer (a lone owner would simply pass)."""
    if rate <= 0:
        return 0
    owner_slot = next(i for i, reason in enumerate(slots) if reason.startswith("duplicate_"))
    count = min(max(round(rate * rows), len(slots)), at_most)
    if count % len(slots) == owner_slot + 1:
        count = count + 1 if count + 1 <= at_most else count - 1
    return count


def _share(rate: float, part: float, rows: int) -> int:
    """At least one row whenever the rate is above zero, so small deliveries change too."""
    if rate <= 0 or rows <= 0:
        return 0
    return min(max(round(rate * part * rows), 1), rows)


# --- SQL ----------------------------------------------------------------------------------


def _connect(threads: int | None) -> duckdb.DuckDBPyConnection:
    con = duckdb.connect()
    if threads:
        con.execute(f"set threads = {int(threads)}")
    # Row order is the file's order: the byte-identical output depends on it.
    con.execute("set preserve_insertion_order = true")
    return con


def _copy(con: duckdb.DuckDBPyConnection, query: str, path: Path, header: bool = True) -> None:
    con.execute(
        f"copy ({query}) to {_literal(str(path))} "
        f"(format csv, header {str(header).lower()}, delimiter ',', quote '\"', escape '\"')"
    )


def _define_value_macros(con: duckdb.DuckDBPyConnection, seed: int) -> None:
    """Random values as pure functions of (row, tag), and their messy spellings."""
    seed = int(seed) % (1 << 62)
    first = _list(FIRST_NAMES)
    last = _list(LAST_NAMES)
    macros = f"""
        create or replace temp macro h(i, tag) as
            (hash(hash(i, {seed}::bigint, tag::integer)) >> 1)::bigint;
        create or replace temp macro unit(i, tag) as
            (h(i, tag) >> 10)::double / 9007199254740992.0;
        create or replace temp macro pick(options, i, tag) as
            options[1 + h(i, tag) % len(options)];
        create or replace temp macro money(cents) as
            (cents // 100)::varchar || '.' || lpad((cents % 100)::varchar, 2, '0');

        -- Log-uniform from 1.00 to about 3 million, with zeros, tier boundaries and
        -- half-cent products (which DOUBLE arithmetic rounds wrongly) mixed in.
        create or replace temp macro balance_cents(i, tag) as case
            when unit(i, tag) < 0.02 then 0
            when unit(i, tag) < 0.06 then pick(
                [999999, 1000000, 1000001, 1999999, 2000000, 2000001, 1450, 33300, 1000100,
                 2000025, 750, 300, 4500050], i, tag + 1)
            else floor(pow(10, 2 + 5.5 * unit(i, tag + 2)))::bigint
        end;
        -- Every spelling the contract accepts: one decimal, none, leading zeros, padding.
        create or replace temp macro balance_text(cents, i, tag) as case
            when cents = 0 and h(i, tag) % 4 = 0 then pick(['-0.00', '-0', '0', '0.0'], i, tag + 1)
            when h(i, tag) % 100 < 74 then money(cents)
            when h(i, tag) % 100 < 80 then case when cents % 10 = 0
                then (cents // 100)::varchar || '.' || ((cents % 100) // 10)::varchar
                else money(cents) end
            when h(i, tag) % 100 < 86 then case when cents % 100 = 0
                then (cents // 100)::varchar else money(cents) end
            when h(i, tag) % 100 < 89 then '00' || money(cents)
            when h(i, tag) % 100 < 94 then ' ' || money(cents) || ' '
            when h(i, tag) % 100 < 97 then chr(9) || money(cents)
            else money(cents) || chr(160)
        end;
        create or replace temp macro id_text(id, i, tag) as case
            when h(i, tag) % 100 < 6 then '00' || id::varchar
            when h(i, tag) % 100 < 9 then ' ' || id::varchar || ' '
            else id::varchar
        end;
        create or replace temp macro person_name(i, tag) as case
            when h(i, tag) % 100 < 4 then
                '  ' || pick({first}, i, tag + 1) || ' ' || pick({last}, i, tag + 2) || ' '
            when h(i, tag) % 100 < 7 then
                pick({first}, i, tag + 1) || '  ' || pick({last}, i, tag + 2)
            when h(i, tag) % 100 < 9 then
                pick({first}, i, tag + 1) || chr(9) || pick({last}, i, tag + 2)
            when h(i, tag) % 100 < 10 then
                chr(160) || pick({first}, i, tag + 1) || chr(160) || pick({last}, i, tag + 2)
            when h(i, tag) % 100 < 13 then
                pick({last}, i, tag + 2) || ', ' || pick({first}, i, tag + 1)
            when h(i, tag) % 1000 = 999 then '=' || pick({last}, i, tag + 2)
            else pick({first}, i, tag + 1) || ' ' || pick({last}, i, tag + 2)
        end;
        create or replace temp macro loan_text(has_loan, i, tag) as case
            when h(i, tag) % 100 < 70 then case when has_loan then 'Yes' else 'No' end
            when has_loan then
                pick(['yes', 'Y', 'y', 'TRUE', 'true', '1', ' yes ', 'YES'], i, tag + 1)
            else pick(['no', 'N', 'n', 'FALSE', 'false', '0', ' No ', 'NO'], i, tag + 1)
        end;
        create or replace temp macro account_type_text(savings, i, tag) as case
            when h(i, tag) % 100 < 75 then case when savings then 'savings' else 'checking' end
            when savings then
                pick(['Savings', 'SAVINGS', ' savings ', chr(9) || 'Savings'], i, tag + 1)
            else pick(['Checking', 'CHECKING', ' checking', 'checking' || chr(160)], i, tag + 1)
        end;
        create or replace temp macro account_id(n) as 'AC' || lpad(n::varchar, 10, '0');
    """
    con.execute(macros)


def _customers_sql(perm: _Permutation, dirty: int) -> str:
    slots = len(CUSTOMER_SLOTS)
    owner_of_writer = perm.index("rank - 1")
    return f"""
        with ranked as (
            select i, {perm.rank("i")} as rank from range({perm.size}) as rows(i)
        ),
        slotted as (
            select
                i,
                rank,
                case when rank < {dirty} then rank % {slots} else -1 end as slot,
                (i + 1)::varchar as id
            from ranked
        )
        select
            case slot
                when 0 then pick(['', '  ', chr(9)], i, 1)
                when 1 then pick(
                    ['+' || id, id || '.0', '-' || id, id || 'e0', '0x' || id, '0',
                     '9223372036854775808', id || '_0'], i, 2)
                -- The writer of a duplicate: the owner's id, spelled with a leading zero.
                when 6 then '0' || ({owner_of_writer} + 1)::varchar
                else id_text(i + 1, i, 3)
            end as "CustomerID",
            case slot
                when 2 then pick(['', ' ' || chr(9) || ' ', chr(160)], i, 4)
                else person_name(i, 5)
            end as "Name",
            case slot
                when 3 then pick(['', '  '], i, 8)
                when 4 then pick(['maybe', 'null', 'n/a', 'unknown', '2', 'si', 'yes please'], i, 9)
                else loan_text(unit(i, 10) < 0.3, i, 11)
            end as "HasLoan"
        from slotted
    """


def _accounts_sql(
    perm: _Permutation, customer_perm: _Permutation, dirty: int, dirty_customers: int
) -> str:
    slots = len(ACCOUNT_SLOTS)
    customer_slots = len(CUSTOMER_SLOTS)
    customers = customer_perm.size
    cycles = max((dirty_customers + customer_slots - 1) // customer_slots, 1)
    # A passing customer: any rank at or above the dirty count.
    passing = customer_perm.index(f"{dirty_customers} + h(j, 20) % {customers - dirty_customers}")
    # A customer whose row parses but is quarantined: slots 2 … 5 of some cycle.
    quarantined_rank = (
        f"{customer_slots} * ((h(j, 21) % {4 * cycles}) // 4) + 2 + h(j, 21) % {4 * cycles} % 4"
    )
    quarantined = customer_perm.index(
        f"case when {quarantined_rank} < {dirty_customers} then {quarantined_rank} else 2 end"
    )
    # An id no row of customers.csv parses to: a customer whose own row lost its id (slots
    # 0, 1, 6), or one beyond every id generated.
    unknown_rank = (
        f"{customer_slots} * ((h(j, 22) % {3 * cycles}) // 3) "
        f"+ [0, 1, 6][1 + h(j, 22) % {3 * cycles} % 3]"
    )
    unknown = (
        f"case when h(j, 23) % 2 = 0 and {unknown_rank} < {dirty_customers} "
        f"then {customer_perm.index(unknown_rank)} + 1 "
        f"else {customers} + 1 + h(j, 24) % {customers} end"
    )
    owner_of_writer = perm.index("rank - 1")
    return f"""
        with ranked as (
            select j, {perm.rank("j")} as rank from range({perm.size}) as rows(j)
        ),
        slotted as (
            select
                j,
                rank,
                case when rank < {dirty} then rank % {slots} else -1 end as slot,
                balance_cents(j, 30) as cents
            from ranked
        ),
        valued as (
            select
                j,
                slot,
                case slot
                    when 10 then {quarantined} + 1
                    when 11 then {unknown}
                    else {passing} + 1
                end as customer_id,
                account_id(case slot when 9 then {owner_of_writer} else j end + 1) as id,
                cents
            from slotted
        )
        select
            case slot
                when 0 then pick(['', '   '], j, 40)
                when 9 then pick([id, ' ' || id, id || chr(9)], j, 41)
                when -1 then case when h(j, 42) % 100 < 3 then ' ' || id || ' ' else id end
                else id
            end as "AccountID",
            case slot
                when 1 then pick(['', ' '], j, 43)
                when 2 then pick(
                    ['+' || customer_id::varchar, customer_id::varchar || '.0',
                     '-' || customer_id::varchar, customer_id::varchar || 'e0',
                     '0x' || customer_id::varchar, '0', '4_2'], j, 44)
                else id_text(customer_id, j, 45)
            end as "CustomerID",
            case slot
                when 3 then pick(['', 'null', 'NULL', 'N/A', 'none', 'na', ' '], j, 46)
                when 4 then pick(
                    ['.5', '+' || money(cents), money(cents) || '5', '1e5', '$' || money(cents),
                     format('{{:,}}', 1000 + cents // 100) || '.00', '1000000000000000.01',
                     '-1000000000000000.01', '12.3.4'], j, 47)
                when 5 then '-' || money(cents + 1)
                else balance_text(cents, j, 48)
            end as "Balance",
            case slot
                when 6 then pick(['', '  '], j, 50)
                when 7 then pick(['loan', 'credit', 'Savings Plus', 'savngs', 'current'], j, 51)
                else account_type_text(unit(j, 52) < 0.6, j, 53)
            end as "AccountType"
        from valued
    """


# --- the next delivery --------------------------------------------------------------------


class _CsvInput:
    """A delivery file read as text, every column kept, in the file's order."""

    def __init__(self, path: Path):
        self.path = path
        self.header = self._read_header()

    def _read_header(self) -> list[str]:
        with self.path.open(encoding="utf-8-sig", newline="") as handle:
            for record in csv.reader(handle):
                if record:
                    return record
        raise ValueError(f"{self.path}: no header row")

    def column(self, name: str) -> str:
        """The header's own spelling of a required column (case and padding vary)."""
        for column in self.header:
            if column.strip().lower() == name.lower():
                return _identifier(column)
        raise ValueError(f"{self.path}: no column {name}")

    def scan(self) -> str:
        columns = ", ".join(f"{_literal(name)}: 'VARCHAR'" for name in self.header)
        names = ", ".join(_identifier(name) for name in self.header)
        return f"""
            read_csv({_literal(str(self.path))}, columns = {{{columns}}}, header = true,
                     auto_detect = false, delim = ',', quote = '"', escape = '"',
                     allow_quoted_nulls = false)
            with ordinality as delivered({names}, _n)
        """

    def count(self, con: duckdb.DuckDBPyConnection) -> int:
        return con.execute(f"select count(*) from {self.scan()}").fetchone()[0]


def _flip_loans_sql(customers: _CsvInput, perm: _Permutation, flipped: int) -> str:
    loan = customers.column("HasLoan")
    answer = f"lower(trim({loan}, {WHITESPACE}))"
    outputs = ", ".join(
        _flip_expression(loan, answer, perm, flipped)
        if _identifier(name) == loan
        else _identifier(name)
        for name in customers.header
    )
    return f"select {outputs} from {customers.scan()}"


def _flip_expression(loan: str, answer: str, perm: _Permutation, flipped: int) -> str:
    return f"""
        case
            when {perm.rank("_n - 1")} >= {flipped} then {loan}
            when {answer} in ('yes', 'y', 'true', '1') then loan_text(false, _n, 60)
            when {answer} in ('no', 'n', 'false', '0') then loan_text(true, _n, 60)
            else {loan}
        end as {loan}
    """


def _change_accounts_sql(
    accounts: _CsvInput,
    perm: _Permutation,
    changed: int,
    removed: int,
    moved: int,
    n_customers: int,
) -> str:
    balance = accounts.column("Balance")
    kind = accounts.column("AccountType")
    customer = accounts.column("CustomerID")
    rank = perm.rank("_n - 1")
    # Seven in ten changes move the balance, the rest switch savings and checking.
    new_balance = f"""
        case when {rank} < {changed} and unit(_n, 70) < 0.7
            then balance_text(balance_cents(_n, 71), _n, 74) else {balance} end
    """
    new_type = f"""
        case when {rank} < {changed} and unit(_n, 70) >= 0.7 then account_type_text(
            lower(trim({kind}, {WHITESPACE})) <> 'savings', _n, 75) else {kind} end
    """
    # Generated customer ids are 1 … n_customers.
    first_moved = changed + removed
    new_customer = f"""
        case when {rank} >= {first_moved} and {rank} < {first_moved + moved}
            then id_text(1 + h(_n, 76) % {max(n_customers, 1)}, _n, 77) else {customer} end
    """
    replaced = {balance: new_balance, kind: new_type, customer: new_customer}
    outputs = ", ".join(
        f"{replaced[_identifier(name)]} as {_identifier(name)}"
        if _identifier(name) in replaced
        else _identifier(name)
        for name in accounts.header
    )
    return f"""
        select {outputs} from {accounts.scan()}
        where not ({rank} >= {changed} and {rank} < {first_moved})
    """


def _added_accounts_sql(
    accounts: _CsvInput, customers: _CsvInput, n_customers: int, added: int
) -> str:
    account = accounts.column("AccountID")
    customer = customers.column("CustomerID")
    # New ids continue after the highest AC… number; other spellings never collide with them.
    highest = f"""
        (select coalesce(max(try_cast(regexp_extract(trim({account}, {WHITESPACE}),
                                                     '^AC([0-9]+)$', 1) as bigint)), 0)
         from {accounts.scan()})
    """
    values = {
        "accountid": f"account_id({highest} + 1 + k)",
        "customerid": f"trim(owner.{customer}, {WHITESPACE})",
        "balance": "balance_text(balance_cents(-1 - k, 80), -1 - k, 83)",
        "accounttype": "account_type_text(unit(-1 - k, 84) < 0.6, -1 - k, 85)",
    }
    # Extra columns of the base delivery stay empty in new rows.
    outputs = ", ".join(
        f"{values.get(name.strip().lower(), _literal(''))} as {_identifier(name)}"
        for name in accounts.header
    )
    # The owner is any row of customers.csv, as a real new account's would be: now and
    # then one that is itself quarantined.
    return f"""
        with new_accounts as (
            select k, h(-1 - k, 81) % {n_customers} + 1 as owner_n from range({added}) as a(k)
        ),
        owners as (
            select _n, {customer}
            from {customers.scan()}
            where _n in (select owner_n from new_accounts)
        )
        select {outputs}
        from new_accounts join owners as owner on owner._n = new_accounts.owner_n
        order by k
    """


def _identifier(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


def _literal(value: str) -> str:
    return "'" + value.replace("'", "''") + "'"


def _list(values: tuple[str, ...]) -> str:
    return "[" + ", ".join(_literal(value) for value in values) + "]"
