"""F, the floor: the account summary from both CSVs in one hand-written DuckDB statement.

    python floor_query.py INPUT_DIR OUT.parquet

The contract's cleaning (Unicode trim, id and balance patterns, has_loan and type
spellings, duplicates among the rows that pass), the join to the customers that pass, and
the interest as exact DECIMAL, in a single `COPY ... TO` with nothing else around it: what
no pipeline on this machine can beat. It shares no code with the dbt project, so its
rows agreeing with the published `account_summary` is a check of both. Prints the
statement's own seconds and the row count as JSON.
"""

from __future__ import annotations

import csv
import json
import sys
import time
from pathlib import Path

import duckdb

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from tools.whitespace import duckdb_characters

# What Python's str.strip() removes; SQL trim() alone removes only spaces.
WS = duckdb_characters()


def header(path: Path) -> list[str]:
    with path.open(encoding="utf-8-sig", newline="") as handle:
        return next(row for row in csv.reader(handle) if row)


def scan(path: Path, wanted: dict[str, str]) -> str:
    """read_csv of every column as text, the required ones renamed to `wanted`'s names."""
    names = header(path)
    columns = ", ".join(f"{literal(name)}: 'VARCHAR'" for name in names)
    renamed = ", ".join(
        f"{trimmed(identifier(name))} as {wanted[name.strip().lower()]}"
        for name in names
        if name.strip().lower() in wanted
    )
    return f"""(
        select {renamed}
        from read_csv({literal(str(path))}, columns = {{{columns}}}, header = true,
                      auto_detect = false, delim = ',', quote = '"', escape = '"',
                      allow_quoted_nulls = false)
    )"""


def trimmed(column: str) -> str:
    """Trimmed text, '' for NULL. trim() with 29 characters, many of them multi-byte, costs
    about 1.7 s per column per million rows; most values start and end with a printable
    ASCII character and need no trimming at all, which two code-point checks tell."""
    return f"""coalesce(case
        when ascii({column}) between 33 and 126 and ascii(right({column}, 1)) between 33 and 126
            then {column}
        else trim({column}, {WS}) end, '')"""


def literal(value: str) -> str:
    return "'" + value.replace("'", "''") + "'"


def identifier(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


def floor_statement(input_dir: Path, out: Path) -> str:
    customers = scan(
        input_dir / "customers.csv",
        {"customerid": "id_text", "name": "name_text", "hasloan": "loan_text"},
    )
    accounts = scan(
        input_dir / "accounts.csv",
        {
            "accountid": "account_id",
            "customerid": "id_text",
            "balance": "balance_text",
            "accounttype": "type_text",
        },
    )
    return f"""
copy (
    with
    passed_customers as (
        select
            try_cast(id_text as bigint) as customer_id,
            any_value(lower(loan_text) in ('yes', 'y', 'true', '1')) as has_loan
        from {customers}
        where regexp_full_match(id_text, '[0-9]+')
            and try_cast(id_text as bigint) >= 1
            and name_text <> ''
            and lower(loan_text) in ('yes', 'y', 'true', '1', 'no', 'n', 'false', '0')
        group by 1
        having count(*) = 1
    ),
    valid_accounts as (
        select
            account_id,
            try_cast(id_text as bigint) as customer_id,
            try_cast(balance_text as decimal(18, 2)) as balance,
            lower(type_text) as account_type
        from {accounts}
        where account_id <> ''
            and regexp_full_match(id_text, '[0-9]+')
            and try_cast(id_text as bigint) >= 1
            and regexp_full_match(balance_text, '-?[0-9]+([.][0-9]{{1,2}})?')
            and try_cast(balance_text as decimal(18, 2)) between 0 and 1000000000000000.00
            and lower(type_text) in ('savings', 'checking')
    ),
    unique_accounts as (
        select
            account_id,
            any_value(customer_id) as customer_id,
            any_value(balance) as balance,
            any_value(account_type) as account_type
        from valid_accounts
        group by account_id
        having count(*) = 1
    ),
    rated as (
        select
            account_id,
            customer_id,
            balance,
            cast(
                case when balance < 10000 then 0.0100 when balance < 20000 then 0.0150
                     else 0.0200 end
                + case when has_loan then 0.0050 else 0 end
            as decimal(6, 4)) as rate
        from unique_accounts
        join passed_customers using (customer_id)
        where account_type = 'savings'
    )
    select
        account_id,
        customer_id,
        balance as original_balance_amount,
        rate as interest_rate_pct,
        cast(round(cast(balance as decimal(38, 2)) * rate, 2) as decimal(18, 2))
            as annual_interest_amount,
        cast(balance + round(cast(balance as decimal(38, 2)) * rate, 2) as decimal(18, 2))
            as new_balance_amount
    from rated
) to {literal(str(out))} (format parquet)
"""


def main(argv: list[str]) -> int:
    input_dir, out = Path(argv[0]), Path(argv[1])
    with duckdb.connect() as con:
        started = time.perf_counter()
        con.execute(floor_statement(input_dir, out))
        seconds = time.perf_counter() - started
        (rows,) = con.execute("select count(*) from read_parquet(?)", [str(out)]).fetchone()
    print(json.dumps({"seconds": round(seconds, 3), "rows": rows}))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
