"""DuckDB's memory ceiling follows the memory this process may use: a container's cgroup
limit where it is lower than the machine's."""

from __future__ import annotations

import os

import pytest

from flows.config import available_memory_bytes
from flows.runtime.warehouse import connect

MACHINE = os.sysconf("SC_PHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")


@pytest.mark.parametrize(
    ("v2", "v1", "expected"),
    [
        ("2147483648\n", None, 2 * 2**30),  # cgroup v2 with a limit
        ("max\n", None, MACHINE),  # cgroup v2 without one
        (None, "1073741824\n", 2**30),  # cgroup v1 with a limit
        (None, "9223372036854771712\n", MACHINE),  # cgroup v1's "unlimited"
        (None, None, MACHINE),  # no cgroup files at all
    ],
)
def test_the_container_limit_counts_where_it_is_lower(tmp_path, v2, v1, expected):
    files = (tmp_path / "memory.max", tmp_path / "memory.limit_in_bytes")
    for path, text in zip(files, (v2, v1), strict=True):
        if text is not None:
            path.write_text(text)
    assert available_memory_bytes(files) == expected


def test_every_warehouse_connection_keeps_the_ceiling(tmp_path, monkeypatch):
    monkeypatch.setattr("flows.runtime.warehouse.DUCKDB_MEMORY_LIMIT", "300MB")
    with connect(tmp_path / "w.duckdb") as con:
        (limit,) = con.execute("select current_setting('memory_limit')").fetchone()
    assert limit in {"286.1 MiB", "300.0 MB"}, limit
