"""The synthetic delivery generator (tests/tools/), judged by the contract oracle.

Small sizes only: the generator is SQL, so what holds for a thousand rows holds for ten
million; the benchmark (tests/benchmarks/) is where size matters.
"""

from __future__ import annotations

import csv
from collections import Counter
from decimal import Decimal
from pathlib import Path

import pytest
from conftest import SAMPLE_DIR
from contract_oracle import ACCOUNT_REASONS, CUSTOMER_REASONS, expected_outputs
from tools.delivery_generator import generate_delivery, generate_next_delivery
from tools.generate import main as generate

FILES = ("customers.csv", "accounts.csv")


def records(path: Path) -> list[list[str]]:
    with path.open(encoding="utf-8-sig", newline="") as handle:
        return [row for row in csv.reader(handle) if row]


def oracle(folder: Path):
    return expected_outputs(folder / "customers.csv", folder / "accounts.csv")


def reason_counts(rows) -> Counter:
    return Counter(row.reason for row in rows)


@pytest.fixture(scope="module")
def delivery(tmp_path_factory) -> Path:
    folder = tmp_path_factory.mktemp("generated")
    generate_delivery(folder, customers=800, dirty_rate=0.04, seed=11)
    return folder


def test_same_seed_same_bytes_whatever_the_threads(tmp_path):
    first = generate_delivery(tmp_path / "a", customers=300, seed=5, threads=1)
    generate_delivery(tmp_path / "b", customers=300, seed=5, threads=2)
    generate_delivery(tmp_path / "c", customers=300, seed=6)
    for name in FILES:
        assert (tmp_path / "a" / name).read_bytes() == (tmp_path / "b" / name).read_bytes()
        assert (tmp_path / "a" / name).read_bytes() != (tmp_path / "c" / name).read_bytes()
    generate_next_delivery(first.out_dir, tmp_path / "a2", 0.05, seed=1)
    generate_next_delivery(first.out_dir, tmp_path / "b2", 0.05, seed=1, threads=1)
    for name in FILES:
        assert (tmp_path / "a2" / name).read_bytes() == (tmp_path / "b2" / name).read_bytes()


def test_counts_and_header_match_the_contract(delivery):
    customers, accounts = records(delivery / "customers.csv"), records(delivery / "accounts.csv")
    assert customers[0] == ["CustomerID", "Name", "HasLoan"]
    assert accounts[0] == ["AccountID", "CustomerID", "Balance", "AccountType"]
    assert len(customers) - 1 == 800
    assert len(accounts) - 1 == 2000  # 2.5 accounts per customer


def test_every_quarantine_reason_at_the_requested_rate(delivery):
    expected = oracle(delivery)
    customers, accounts = (
        reason_counts(expected.quarantine_customers),
        reason_counts(expected.quarantine_accounts),
    )
    assert set(customers) == set(CUSTOMER_REASONS)
    assert set(accounts) == set(ACCOUNT_REASONS)
    # Broken rows are laid out, not drawn: the rate holds to the row (plus at most one to
    # keep a duplicate pair whole).
    assert abs(sum(customers.values()) - 0.04 * 800) <= 1
    assert abs(sum(accounts.values()) - 0.04 * 2000) <= 1


@pytest.mark.parametrize("customers", [8, 10, 40])
def test_every_reason_even_when_the_rate_rounds_to_nothing(tmp_path, customers):
    generate_delivery(tmp_path, customers=customers, dirty_rate=0.0001, seed=3)
    expected = oracle(tmp_path)
    assert set(reason_counts(expected.quarantine_customers)) == set(CUSTOMER_REASONS)
    assert set(reason_counts(expected.quarantine_accounts)) == set(ACCOUNT_REASONS)
    assert expected.account_summary, "some accounts must still pass"


def test_a_clean_delivery_quarantines_nothing(tmp_path):
    generate_delivery(tmp_path, customers=500, accounts_per_customer=1.7, dirty_rate=0, seed=2)
    expected = oracle(tmp_path)
    assert expected.quarantine_customers == [] and expected.quarantine_accounts == []
    assert len(records(tmp_path / "accounts.csv")) - 1 == 850
    assert len(expected.customer_profile) == 500


def test_valid_rows_are_messy_and_reach_every_interest_rate(delivery):
    expected = oracle(delivery)
    quarantined = {q.source_line for q in expected.quarantine_accounts}
    passed = [
        row
        for line, row in enumerate(records(delivery / "accounts.csv")[1:], start=2)
        if line not in quarantined
    ]
    balances = [balance for _, _, balance, _ in passed]
    types = {kind for _, _, _, kind in passed}
    customer_ids = [customer_id for _, customer_id, _, _ in passed]
    # Spellings the cleaning rules must handle, all on rows that pass.
    assert any(b != b.strip() for b in balances), "padded balances"
    assert any("." not in b for b in balances), "balances without decimals"
    assert any(b.strip().startswith("00") for b in balances), "leading zeros"
    assert {"savings", "checking"} < types and any(t != t.strip().lower() for t in types)
    assert any(c.strip().startswith("0") for c in customer_ids), "ids with leading zeros"
    names = [name for _, name, _ in records(delivery / "customers.csv")[1:]]
    assert any("," in name for name in names) and any("  " in name for name in names)
    # Every tier, with and without a loan.
    has_loan = {row["customer_id"]: row["has_loan"] for row in expected.customer_profile}
    tiers = {
        (row["interest_rate_pct"], has_loan[row["customer_id"]]) for row in expected.account_summary
    }
    assert tiers == {
        (Decimal(rate) + (Decimal("0.0050") if loan else 0), loan)
        for rate in ("0.0100", "0.0150", "0.0200")
        for loan in (False, True)
    }
    assert any(row["original_balance_amount"] == 0 for row in expected.account_summary)


def test_next_delivery_changes_the_requested_share(delivery, tmp_path):
    result = generate_next_delivery(delivery, tmp_path, change_rate=0.05, seed=4)
    before, after = records(delivery / "accounts.csv"), records(tmp_path / "accounts.csv")
    assert before[0] == after[0]
    by_id_before = {row[0].strip(): row for row in before[1:]}
    by_id_after = {row[0].strip(): row for row in after[1:]}
    differing = {
        key
        for key in by_id_before.keys() | by_id_after.keys()
        if by_id_before.get(key) != by_id_after.get(key)
    }
    assert 0.04 <= len(differing) / (len(before) - 1) <= 0.051
    assert len(by_id_after.keys() - by_id_before.keys()) == result.accounts_added > 0
    assert len(by_id_before.keys() - by_id_after.keys()) == result.accounts_removed > 0
    assert len(after) - 1 == result.accounts
    # Moved accounts (a random customer may be the same one, rarely).
    moved = [
        key
        for key in by_id_before.keys() & by_id_after.keys()
        if by_id_before[key][1].strip().lstrip("0") != by_id_after[key][1].strip().lstrip("0")
    ]
    assert 0.9 * result.accounts_moved <= len(moved) <= result.accounts_moved
    assert result.accounts_moved > 0

    # Loan flags flip (a flag the contract cannot read stays as it was) ...
    loans_before = {r[0]: r[2] for r in records(delivery / "customers.csv")[1:]}
    loans_after = {r[0]: r[2] for r in records(tmp_path / "customers.csv")[1:]}
    flipped = [key for key in loans_before if loans_before[key] != loans_after[key]]
    assert 0.9 * result.loan_flags_flipped <= len(flipped) <= result.loan_flags_flipped
    yes = {"yes", "y", "true", "1"}
    assert all(
        (loans_before[key].strip().lower() in yes) != (loans_after[key].strip().lower() in yes)
        for key in flipped
    )
    # ... and the rows nobody touched keep their bytes and their order.
    kept = [row for row in after[1:] if row in before[1:]]
    assert kept == [row for row in before[1:] if row in kept]


def test_next_delivery_of_the_bundled_sample_keeps_its_header(tmp_path):
    result = generate_next_delivery(SAMPLE_DIR, tmp_path, change_rate=0.01, seed=1)
    assert (
        result.accounts_changed,
        result.accounts_removed,
        result.accounts_added,
        result.accounts_moved,
    ) == (1, 1, 1, 1)
    for name in FILES:
        assert records(tmp_path / name)[0] == records(SAMPLE_DIR / name)[0]
    assert oracle(tmp_path).account_summary


def test_generate_command_exit_codes(tmp_path, capsys):
    def run(*argv: str) -> int:
        return generate(list(argv))

    assert run("--out", str(tmp_path / "d1"), "--customers", "50", "--seed", "9") == 0
    assert "50 customers" in capsys.readouterr().out
    assert (
        run("--out", str(tmp_path / "d2"), "--from", str(tmp_path / "d1"), "--change-rate", "0.1")
        == 0
    )
    assert (tmp_path / "d2" / "accounts.csv").is_file()
    assert run("--out", str(tmp_path / "d3"), "--from", str(tmp_path / "d1")) == 2
    assert run("--out", str(tmp_path / "d3"), "--customers", "3") == 2
    assert (
        run("--out", str(tmp_path / "d1"), "--from", str(tmp_path / "d1"), "--change-rate", "0.1")
        == 2
    )
    assert "generate:" in capsys.readouterr().err
