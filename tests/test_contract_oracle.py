"""Tests of the contract oracle itself (tests/contract_oracle.py)."""

from collections import Counter
from decimal import Decimal
from pathlib import Path

import pytest
from contract_oracle import ACCOUNT_REASONS, CUSTOMER_REASONS, expected_outputs

SAMPLE = Path(__file__).resolve().parents[1] / "data" / "sample"


@pytest.fixture
def run(tmp_path):
    def _run(customers: str, accounts: str = "AccountID,CustomerID,Balance,AccountType\n"):
        (tmp_path / "customers.csv").write_text(customers, encoding="utf-8", newline="")
        (tmp_path / "accounts.csv").write_text(accounts, encoding="utf-8", newline="")
        return expected_outputs(tmp_path / "customers.csv", tmp_path / "accounts.csv")

    return _run


def reasons(rows):
    return [(q.source_line, q.reason) for q in rows]


def test_rounding_is_exact_half_up(run):
    out = run(
        "CustomerID,Name,HasLoan\n1,Ann,no\n2,Bo,yes\n",
        "AccountID,CustomerID,Balance,AccountType\n"
        "A1,1,14.50,savings\nA2,2,333.00,savings\nA3,1,20000.25,savings\n",
    )
    got = {
        r["account_id"]: (
            r["interest_rate_pct"],
            r["annual_interest_amount"],
            r["new_balance_amount"],
        )
        for r in out.account_summary
    }
    assert got == {
        "A1": (Decimal("0.0100"), Decimal("0.15"), Decimal("14.65")),
        "A2": (Decimal("0.0150"), Decimal("5.00"), Decimal("338.00")),
        "A3": (Decimal("0.0200"), Decimal("400.01"), Decimal("20400.26")),
    }
    assert str(got["A1"][0]) == "0.0100" and str(got["A1"][1]) == "0.15"


def test_tier_boundaries(run):
    balances = ("9999.99", "10000.00", "19999.99", "20000.00")
    out = run(
        "CustomerID,Name,HasLoan\n1,Ann,no\n2,Bo,y\n",
        "AccountID,CustomerID,Balance,AccountType\n"
        + "".join(f"C{c}-{b},{c},{b},savings\n" for c in (1, 2) for b in balances),
    )
    rates = {r["account_id"]: str(r["interest_rate_pct"]) for r in out.account_summary}
    assert [rates[f"C1-{b}"] for b in balances] == ["0.0100", "0.0150", "0.0150", "0.0200"]
    assert [rates[f"C2-{b}"] for b in balances] == ["0.0150", "0.0200", "0.0200", "0.0250"]


def test_duplicate_via_leading_zeros_quarantines_all(run):
    out = run(
        "CustomerID,Name,HasLoan\n0009,Ann,yes\n9,Ann B,no\n12,Cy,no\n",
        "AccountID,CustomerID,Balance,AccountType\nA1,9,1.00,savings\n",
    )
    assert reasons(out.quarantine_customers) == [
        (2, "duplicate_customer_id"),
        (3, "duplicate_customer_id"),
    ]
    assert [c["customer_id"] for c in out.customer_profile] == [12]
    assert reasons(out.quarantine_accounts) == [(2, "customer_quarantined")]


def test_duplicates_only_among_rows_that_passed(run):
    out = run(
        "CustomerID,Name,HasLoan\n13,Ann,null\n0013,Bo,no\n",
        "AccountID,CustomerID,Balance,AccountType\n"
        "A1,13,1.00,savings\nA1,13,abc,savings\n a2 ,13,1.00,savings\na2,13,2.00,checking\n",
    )
    assert reasons(out.quarantine_customers) == [(2, "invalid_has_loan")]
    assert out.customer_profile[0]["customer_name"] == "Bo"
    assert reasons(out.quarantine_accounts) == [
        (3, "invalid_balance"),
        (4, "duplicate_account_id"),
        (5, "duplicate_account_id"),
    ]
    assert [r["account_id"] for r in out.account_summary] == ["A1"]


def test_customer_quarantined_vs_unknown_customer(run):
    out = run(
        "CustomerID,Name,HasLoan\n1,Ann,yes\n2,,yes\n+3,Cy,no\n",
        "AccountID,CustomerID,Balance,AccountType\n"
        "A1,1,1.00,savings\nA2,0002,1.00,savings\nA3,3,1.00,savings\nA4,4,1.00,checking\n",
    )
    assert reasons(out.quarantine_accounts) == [
        (3, "customer_quarantined"),
        (4, "unknown_customer"),  # "+3" never parses
        (5, "unknown_customer"),
    ]


def test_negative_zero_is_a_valid_zero(run):
    out = run(
        "CustomerID,Name,HasLoan\n1,Ann,no\n",
        "AccountID,CustomerID,Balance,AccountType\n"
        "A1,1,-0.00,savings\nA2,1,-0,savings\nA3,1,-0.01,savings\n",
    )
    assert [
        (
            r["account_id"],
            str(r["original_balance_amount"]),
            str(r["annual_interest_amount"]),
            str(r["interest_rate_pct"]),
        )
        for r in out.account_summary
    ] == [("A1", "0.00", "0.00", "0.0100"), ("A2", "0.00", "0.00", "0.0100")]
    assert reasons(out.quarantine_accounts) == [(4, "negative_balance")]


def test_has_loan_null_is_invalid_not_false(run):
    out = run("CustomerID,Name,HasLoan\n1,Ann,null\n2,Bo,N/A\n3,Cy,\n4,Di, FALSE \n")
    assert reasons(out.quarantine_customers) == [
        (2, "invalid_has_loan"),
        (3, "invalid_has_loan"),
        (4, "missing_has_loan"),
    ]
    assert [(c["customer_id"], c["has_loan"]) for c in out.customer_profile] == [(4, False)]


def test_trim_and_collapse_unicode_whitespace(run):
    out = run(
        "customerid , NAME,hasloan\r\n"
        "\u00a0\t7\u00a0,\u00a0Ann\t\t\u00a0Lee\u00a0 ,\tYes\u00a0\r\n"
        "8,\u00a0\t ,no\r\n"
    )
    assert out.customer_profile == [
        {
            "customer_id": 7,
            "customer_name": "Ann Lee",
            "has_loan": True,
            "savings_account_count": 0,
            "checking_account_count": 0,
            "total_savings_balance_amount": Decimal("0.00"),
            "total_annual_interest_amount": Decimal("0.00"),
        }
    ]
    assert reasons(out.quarantine_customers) == [(3, "missing_customer_name")]


def test_invalid_ids_and_balances(run):
    bad_ids = [
        "+42",
        "42.0",
        "1e3",
        "0x10",
        "4_2",
        "-16",
        "0",
        "9223372036854775808",
        "\u0664\u0662",
        "4 2",
    ]
    out = run(
        "CustomerID,Name,HasLoan\n"
        + "".join(f'"{i}",X,no\n' for i in bad_ids)
        + "9223372036854775807,Max,no\n"
    )
    assert {q.reason for q in out.quarantine_customers} == {"invalid_customer_id"}
    assert len(out.quarantine_customers) == len(bad_ids)
    bad_balances = [
        ".5",
        "+5",
        "1,000.00",
        "1e5",
        "100.005",
        "1000000000000000.01",
        "-1000000000000000.01",
        "5.",
        "1 000",
    ]
    out = run(
        "CustomerID,Name,HasLoan\n1,Ann,no\n",
        "AccountID,CustomerID,Balance,AccountType\n"
        + "".join(f'B{n},1,"{b}",savings\n' for n, b in enumerate(bad_balances))
        + "M1,1,null,savings\nM2,1,NONE,savings\nM3,1,n/a,savings\nM4,1,Na,savings\n"
        + "M5,1, ,savings\nOK,1,1000000000000000.00,checking\n",
    )
    assert Counter(q.reason for q in out.quarantine_accounts) == {
        "invalid_balance": len(bad_balances),
        "missing_balance": 5,
    }
    assert out.customer_profile[0]["checking_account_count"] == 1


def test_blank_lines_and_multiline_values_shift_source_line(run):
    out = run('\ufeffCustomerID,Name,HasLoan\n1,"Ann\nLee",yes\n\n2,Bo,maybe\n\n\n3,,no\n')
    assert reasons(out.quarantine_customers) == [
        (3, "invalid_has_loan"),
        (4, "missing_customer_name"),
    ]
    assert out.quarantine_customers[0].raw == {"customerid": "2", "name": "Bo", "hasloan": "maybe"}
    assert out.customer_profile[0]["customer_name"] == "Ann Lee"


def test_sample_exercises_every_quarantine_reason():
    out = expected_outputs(SAMPLE / "customers.csv", SAMPLE / "accounts.csv")
    customer_counts = Counter(q.reason for q in out.quarantine_customers)
    account_counts = Counter(q.reason for q in out.quarantine_accounts)
    assert set(customer_counts) == set(CUSTOMER_REASONS)
    assert set(account_counts) == set(ACCOUNT_REASONS)
    # the sample's headline numbers, as documented in data/sample/README.md
    assert len(out.customer_profile) == 21
    assert len(out.account_summary) == 32
    assert sum(customer_counts.values()) == 19
    assert sum(account_counts.values()) == 27


def test_the_projects_trim_removes_what_python_strip_removes():
    """The one definition of the whitespace set (dbt_project.yml, read by the cleaning
    macros and the tools) is exactly what the contract names: Python's str.strip()."""
    from tools.whitespace import whitespace_code_points

    stripped = [code for code in range(0x110000) if chr(code).isspace()]
    assert list(whitespace_code_points()) == stripped
