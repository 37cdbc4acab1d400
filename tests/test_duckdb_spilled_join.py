"""The pinned DuckDB keeps every row of a join whose build side spills to disk.

The pipeline runs under a memory ceiling (flows/config.py) so that its joins spill rather
than grow; DuckDB issue 25702 reports a version where such a join silently drops rows (a
Bloom filter built from the first partitions only, pushed into the probe scan). Its
reproductions, and a larger build side, are run here at ceilings that force the join
external, with and without join filter pushdown: an upgrade that brings the bug back
fails this test before it can drop a bank's rows.
"""

from __future__ import annotations

import duckdb
import pytest

CASES = {
    # The issue's own: 25 keys, 120,000 rows each, semi join.
    "few-keys-semi": (
        (
            "create table t as select (i % 25)::int as k from range(3000000) as r(i);"
            "create table u as select (i % 25)::int as k from range(3000000) as r(i);"
        ),
        "select count(*) from t where k in (select k from u)",
        ["60MB", "30MB"],
        3_000_000,
    ),
    # The fix's own: half the probe's keys in the build side.
    "half-keys-semi": (
        (
            "create table u as select range % 2000 as k from range(1000000);"
            "create table t as select range % 4000 as k from range(2000000);"
        ),
        "select count(*) from t where k in (select k from u)",
        ["40MB", "25MB", "15MB"],
        1_000_000,
    ),
    # Distinct keys with a payload, as the pipeline's lookups are.
    "distinct-keys-inner": (
        (
            "create table u as select range as k, range::varchar as v from range(3000000);"
            "create table t as select (range * 7) % 6000000 as k from range(6000000);"
        ),
        "select count(*) from t inner join u using (k)",
        ["200MB", "40MB"],
        3_000_000,
    ),
}


@pytest.mark.parametrize("case", list(CASES))
def test_a_spilling_join_keeps_every_row(tmp_path, case):
    setup, query, ceilings, expected = CASES[case]
    with duckdb.connect(str(tmp_path / "spill.duckdb")) as con:
        con.execute(setup)
        con.execute("checkpoint")
        con.execute("set threads = 1")
        for ceiling in ceilings:
            con.execute(f"set memory_limit = '{ceiling}'")
            con.execute("reset disabled_optimizers")
            with_pushdown = con.execute(query).fetchone()[0]
            con.execute("set disabled_optimizers = 'join_filter_pushdown'")
            without = con.execute(query).fetchone()[0]
            assert (with_pushdown, without) == (expected, expected), ceiling
