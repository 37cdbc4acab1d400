"""Property: incremental processing is indistinguishable from a rebuild, whatever the days bring.

For random sequences of deliveries (tests/delivery_factory.py: balances across the tiers,
loan flags flipped or only re-spelled, accounts and customers removed and added, records
broken and fixed, duplicate ids and exact copies of rows added and removed, rows and
columns reordered, line ends changed), one warehouse is kept
across the sequence, as production keeps it. After every delivery:

1. the marts equal those of a `--full-refresh` build of a fresh warehouse from that
   delivery alone, and both equal the contract oracle (`calculated_at` aside);
2. the quarantine files list the oracle's (source line, reason) pairs;
3. the SCD2 snapshots are sound: per key, versions [valid_from, valid_to) never overlap,
   at most one is open and it is the latest; exactly the keys that passed staging have an
   open version, equal to their staging row; a version is added exactly when a key's
   business columns changed or it (re)appeared; history is append-only;
4. `calculated_at` moves to this run only for the accounts whose values changed (or that
   are new); every other account keeps its old one;
5. re-running the same delivery from another folder, later, changes no byte of any data
   file (account_summary.*, customer_profile.*, quarantine_*.csv) and no snapshot row,
   also as a `--full-refresh` of the kept warehouse (every other delivery).

The sequences are seeded, so CI is deterministic: a failure names the seed, the delivery
and the operations that led to it, and the delivery's CSV files stay in pytest's tmp_path.
Each delivery costs three pipeline runs (kept warehouse, rebuild, re-run), so CI runs two
sequences of four deliveries (six incremental transitions). More seeds or longer sequences
run with e.g. LEDGERFLOW_SEQUENCE_SEEDS=1,2,3,4 LEDGERFLOW_SEQUENCE_LENGTH=8.
"""

from __future__ import annotations

import csv
import os
import shutil
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from itertools import pairwise
from pathlib import Path

import contract_oracle
import pytest
from conftest import CONTRACT_DATA_FILES, StepsRun, run_steps
from delivery_factory import DeliverySequence

SEEDS = [int(s) for s in os.environ.get("LEDGERFLOW_SEQUENCE_SEEDS", "3,29").split(",")]
DELIVERIES_PER_SEQUENCE = int(os.environ.get("LEDGERFLOW_SEQUENCE_LENGTH", "4"))
FIRST_RUN_AT = datetime(2025, 3, 3, 2, 30, tzinfo=UTC)

SUMMARY_VALUES = (
    "account_id, customer_id, original_balance_amount, interest_rate_pct, "
    "annual_interest_amount, new_balance_amount"
)
PROFILE_VALUES = (
    "customer_id, customer_name, has_loan, savings_account_count, checking_account_count, "
    "total_savings_balance_amount, total_annual_interest_amount"
)
# Business columns of each snapshot, as the snapshot config checks them.
SNAPSHOTS = {
    "customers": ("snapshots.customers_snapshot", "customer_id", "customer_name, has_loan"),
    "accounts": (
        "snapshots.accounts_snapshot",
        "account_id",
        "customer_id, account_type, balance_amount",
    ),
}


# --- what the contract expects of one delivery (from the oracle) ------------------------


@dataclass(frozen=True)
class Expectation:
    account_summary: list[tuple]  # SUMMARY_VALUES, sorted by account_id bytes
    customer_profile: list[tuple]  # PROFILE_VALUES, sorted by customer_id
    quarantine: dict[str, list[tuple[int, str]]]  # file -> [(source line, reason)]
    staged: dict[str, dict]  # "customers"/"accounts" -> key -> business values


def expect(delivery: Path) -> Expectation:
    customers_csv, accounts_csv = delivery / "customers.csv", delivery / "accounts.csv"
    outputs = contract_oracle.expected_outputs(customers_csv, accounts_csv)
    customers, parsed_ids, _ = contract_oracle.stage_customers(customers_csv)
    accounts, _ = contract_oracle.stage_accounts(accounts_csv, customers, parsed_ids)
    return Expectation(
        account_summary=[tuple(row.values()) for row in outputs.account_summary],
        customer_profile=[tuple(row.values()) for row in outputs.customer_profile],
        quarantine={
            "quarantine_customers.csv": [
                (q.source_line, q.reason) for q in outputs.quarantine_customers
            ],
            "quarantine_accounts.csv": [
                (q.source_line, q.reason) for q in outputs.quarantine_accounts
            ],
        },
        staged={
            "customers": {
                c["customer_id"]: (c["customer_name"], c["has_loan"]) for c in customers.values()
            },
            "accounts": {
                a["account_id"]: (a["customer_id"], a["account_type"], a["balance"])
                for a in accounts
            },
        },
    )


# --- what the warehouse and the output folder hold ---------------------------------------


def read_account_summary(run: StepsRun) -> list[tuple]:
    rows = run.query(f"select {SUMMARY_VALUES} from marts.account_summary")
    return sorted(rows, key=lambda row: row[0].encode("utf-8"))


def read_customer_profile(run: StepsRun) -> list[tuple]:
    return run.query(f"select {PROFILE_VALUES} from marts.customer_profile order by customer_id")


def read_calculated_at(run: StepsRun) -> dict[str, datetime]:
    return dict(run.query("select account_id, calculated_at from marts.account_summary"))


def read_snapshot(run: StepsRun, entity: str) -> list[tuple]:
    """(key, business values, valid_from, valid_to) per version, in a stable order."""
    table, key, columns = SNAPSHOTS[entity]
    rows = run.query(
        f"select {key}, {columns}, valid_from, valid_to from {table} order by {key}, valid_from"
    )
    return [(row[0], tuple(row[1:-2]), row[-2], row[-1]) for row in rows]


def read_staging(run: StepsRun, entity: str) -> dict:
    _, key, columns = SNAPSHOTS[entity]
    rows = run.query(f"select {key}, {columns} from staging.stg_{entity}")
    return {row[0]: tuple(row[1:]) for row in rows}


def read_quarantine(output_dir: Path, name: str) -> list[tuple[int, str]]:
    with (output_dir / name).open(newline="", encoding="utf-8") as handle:
        return [(int(r["_source_line"]), r["quarantine_reason"]) for r in csv.DictReader(handle)]


def without_column(csv_path: Path, column: str) -> list[list[str]]:
    with csv_path.open(newline="", encoding="utf-8") as handle:
        header, *rows = csv.reader(handle)
    index = header.index(column)
    return [row[:index] + row[index + 1 :] for row in [header, *rows]]


def fresh_full_refresh(delivery: Path, root: Path, run_at: datetime) -> StepsRun:
    """A rebuild from this delivery alone. The warehouse path is reused (emptied) so dbt
    keeps one target folder for it and parses the project only once."""
    warehouse = root / "warehouse.duckdb"
    for path in (warehouse, warehouse.with_name(warehouse.name + ".wal")):
        path.unlink(missing_ok=True)
    shutil.rmtree(root / "output", ignore_errors=True)
    return run_steps(delivery, warehouse, root / "output", full_refresh=True, run_at=run_at)


# --- the property's parts ----------------------------------------------------------------


def assert_marts_equal_rebuild_and_oracle(run: StepsRun, rebuild: StepsRun, expected: Expectation):
    summary, profile = read_account_summary(run), read_customer_profile(run)
    assert summary == read_account_summary(rebuild), "account_summary differs from a full refresh"
    assert profile == read_customer_profile(rebuild), "customer_profile differs from a full refresh"
    assert summary == expected.account_summary, "account_summary differs from the contract"
    assert profile == expected.customer_profile, "customer_profile differs from the contract"
    # The published files agree too: the profile to the byte, the summary but for calculated_at.
    for name in ("customer_profile.csv", "customer_profile.parquet"):
        assert (run.output_dir / name).read_bytes() == (rebuild.output_dir / name).read_bytes(), (
            name
        )
    assert without_column(
        run.output_dir / "account_summary.csv", "calculated_at"
    ) == without_column(rebuild.output_dir / "account_summary.csv", "calculated_at")


def assert_quarantine_as_oracle(run: StepsRun, expected: Expectation):
    for name, pairs in expected.quarantine.items():
        assert read_quarantine(run.output_dir, name) == pairs, name


def assert_snapshot_sound(
    entity: str,
    versions: list[tuple],
    before: list[tuple],
    staged: dict,
    warehouse_staging: dict,
) -> None:
    """Versions of one snapshot after a run, given the versions before it and the staging
    rows of this delivery (oracle and warehouse)."""
    by_key: dict = {}
    for key, values, valid_from, valid_to in versions:
        by_key.setdefault(key, []).append((valid_from, valid_to, values))

    open_versions = {}
    for key, intervals in by_key.items():
        intervals.sort(key=lambda v: v[0])
        for (start, end, _), (next_start, _, _) in pairwise(intervals):
            assert end is not None, f"{entity} {key!r}: an open version is not the latest"
            assert end <= next_start, f"{entity} {key!r}: versions overlap"
        for start, end, _ in intervals:
            assert end is None or start < end, f"{entity} {key!r}: empty or reversed version"
        if intervals[-1][1] is None:
            open_versions[key] = intervals[-1][2]

    assert warehouse_staging == staged, f"stg_{entity} differs from the contract"
    assert open_versions == staged, f"{entity}: open versions are not the current staging rows"

    # History is append-only: closed versions stay as they were, an open one may only close.
    after = {(key, values, valid_from): valid_to for key, values, valid_from, valid_to in versions}
    for key, values, valid_from, valid_to in before:
        assert (key, values, valid_from) in after, f"{entity} {key!r}: a version was lost"
        if valid_to is not None:
            assert after[(key, values, valid_from)] == valid_to, f"{entity} {key!r}: rewritten"

    # A version is added exactly for a key that is new, came back, or changed.
    open_before = {key: values for key, values, _, valid_to in before if valid_to is None}
    changed = {key for key, values in staged.items() if open_before.get(key) != values}
    added = len(versions) - len(before)
    assert added == len(changed), (
        f"{entity}: {added} new versions for {len(changed)} new or changed keys {sorted(changed)[:10]}"
    )


def assert_calculated_at(
    calculated_at: dict[str, datetime],
    previous_calculated_at: dict[str, datetime],
    previous_summary: list[tuple],
    expected: Expectation,
    run_at: datetime,
) -> None:
    before = {row[0]: row for row in previous_summary}
    this_run = run_at.replace(tzinfo=None)
    for row in expected.account_summary:
        account_id = row[0]
        if before.get(account_id) == row:
            assert calculated_at[account_id] == previous_calculated_at[account_id], (
                f"{account_id!r} did not change but its calculated_at moved"
            )
        else:
            assert calculated_at[account_id] == this_run, (
                f"{account_id!r} is new or changed but calculated_at is not this run's"
            )


# --- the test -----------------------------------------------------------------------------


@pytest.mark.parametrize("seed", SEEDS)
def test_incremental_runs_equal_a_rebuild_after_every_delivery(seed: int, tmp_path: Path):
    sequence = DeliverySequence(seed)
    warehouse = tmp_path / "kept" / "warehouse.duckdb"
    snapshots = {entity: [] for entity in SNAPSHOTS}
    previous_summary: list[tuple] = []
    previous_calculated_at: dict[str, datetime] = {}
    story: list[str] = []

    for step in range(DELIVERIES_PER_SEQUENCE):
        operations = sequence.advance() if step else ["first delivery"]
        story.append(f"delivery {step}: " + "; ".join(operations))
        where = f"seed {seed}, delivery {step}\n" + "\n".join(story)
        delivery = sequence.delivery.write(tmp_path / f"delivery-{step}")
        run_at = FIRST_RUN_AT + timedelta(days=step)
        expected = expect(delivery)

        run = run_steps(delivery, warehouse, tmp_path / f"output-{step}", run_at=run_at)
        rebuild = fresh_full_refresh(delivery, tmp_path / "rebuild", run_at)
        try:
            assert_marts_equal_rebuild_and_oracle(run, rebuild, expected)
            assert_quarantine_as_oracle(run, expected)
            for entity in SNAPSHOTS:
                versions = read_snapshot(run, entity)
                assert_snapshot_sound(
                    entity,
                    versions,
                    snapshots[entity],
                    expected.staged[entity],
                    read_staging(run, entity),
                )
                snapshots[entity] = versions
            calculated_at = read_calculated_at(run)
            assert_calculated_at(
                calculated_at, previous_calculated_at, previous_summary, expected, run_at
            )
        except AssertionError as error:
            raise AssertionError(f"{where}\n{error}") from error

        # The same delivery again, from another folder and later: nothing may change, even
        # when (every other delivery) it is a --full-refresh that compares every key.
        again = shutil.copytree(delivery, tmp_path / f"delivery-{step}-again")
        rerun = run_steps(
            again,
            warehouse,
            tmp_path / f"output-{step}-again",
            full_refresh=step % 2 == 1,
            run_at=run_at + timedelta(hours=6),
        )
        for name in CONTRACT_DATA_FILES:
            assert (rerun.output_dir / name).read_bytes() == (run.output_dir / name).read_bytes(), (
                f"{where}\nre-running the unchanged delivery changed {name}"
            )
        for entity in SNAPSHOTS:
            assert read_snapshot(rerun, entity) == snapshots[entity], (
                f"{where}\nre-running the unchanged delivery changed the {entity} snapshot"
            )

        previous_summary, previous_calculated_at = expected.account_summary, calculated_at


def transitions(before: Expectation, after: Expectation) -> set[str]:
    """The kinds of change from one delivery to the next, as the contract sees them."""
    kinds = set()
    summary_before = {row[0]: row for row in before.account_summary}
    summary_after = {row[0]: row for row in after.account_summary}
    for account_id, row in summary_after.items():
        old = summary_before.get(account_id)
        if old is None:
            kinds.add("account enters the summary")
        elif old == row:
            kinds.add("account unchanged")
        elif old[1:3] == row[1:3] and old[3] != row[3]:
            kinds.add("rate changed by a loan flip alone")
        elif tier(old[2]) != tier(row[2]):
            kinds.add("balance crossed a tier")
    if summary_before.keys() - summary_after.keys():
        kinds.add("account leaves the summary")
    accounts_before, after_accounts = before.staged["accounts"], after.staged["accounts"]
    if any(
        after_accounts[key] != value
        for key, value in accounts_before.items()
        if key in after_accounts
    ):
        kinds.add("account version changed")
    customers_before, customers_after = before.staged["customers"], after.staged["customers"]
    if customers_before.keys() - customers_after.keys():
        kinds.add("customer stops passing")
    if customers_after.keys() - customers_before.keys():
        kinds.add("customer starts passing")
    for pairs in after.quarantine.values():
        kinds.update(f"quarantine {reason}" for _, reason in pairs)
    return kinds


def tier(balance) -> int:
    return (balance >= 10000) + (balance >= 20000)


def test_sequences_exercise_what_they_claim(tmp_path: Path):
    """The generated sequences really contain the changes the property is about.
    Cheap (oracle only, no pipeline), so it also guards the generator against drifting."""
    seen: set[str] = set()
    for seed in SEEDS:
        sequence = DeliverySequence(seed)
        previous = expect(sequence.delivery.write(tmp_path / f"{seed}-0"))
        in_sequence: set[str] = set()
        for step in range(1, DELIVERIES_PER_SEQUENCE):
            sequence.advance()
            current = expect(sequence.delivery.write(tmp_path / f"{seed}-{step}"))
            in_sequence |= transitions(previous, current)
            previous = current
        # The change that only a customer-aware change detection sees, in every sequence.
        assert "rate changed by a loan flip alone" in in_sequence, seed
        seen |= in_sequence
    required = {
        "account enters the summary",
        "account leaves the summary",
        "account unchanged",
        "rate changed by a loan flip alone",
        "balance crossed a tier",
        "account version changed",
        "customer stops passing",
        "customer starts passing",
        "quarantine invalid_has_loan",
        "quarantine duplicate_customer_id",
        "quarantine duplicate_account_id",
        "quarantine invalid_balance",
        "quarantine customer_quarantined",
        "quarantine unknown_customer",
    }
    assert required <= seen, sorted(required - seen)
