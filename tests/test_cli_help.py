"""`ledgerflow --help` and `--version`, through the installed console script: what the
command does, every exit code with its meaning, the installed version, and all of it
without importing Prefect or dbt."""

from __future__ import annotations

import subprocess
import sys
from importlib.metadata import version
from pathlib import Path

import pytest

from flows.errors import EXIT_CODES

LEDGERFLOW = Path(sys.executable).with_name("ledgerflow")


def ledgerflow(*args: str) -> str:
    done = subprocess.run(
        [str(LEDGERFLOW), *args], capture_output=True, text=True, timeout=60, check=True
    )
    return done.stdout


def unwrapped(text: str) -> str:
    return " ".join(text.split())


@pytest.mark.parametrize("command", [(), ("run",)])
def test_help_lists_every_exit_code_with_its_meaning(command):
    shown = unwrapped(ledgerflow(*command, "--help"))
    for code, meaning in EXIT_CODES.items():
        assert f" {code} {meaning}" in shown
    assert "customers.csv and accounts.csv" in shown
    assert "DuckDB warehouse" in shown and "Databricks" in shown


def test_top_level_help_says_what_ledgerflow_does():
    shown = unwrapped(ledgerflow("--help"))
    assert "The `ledgerflow` command." not in shown
    assert "publishes the marts as CSV and Parquet with a quality report and a dashboard" in shown


def test_version_is_the_installed_package_version():
    assert ledgerflow("--version") == f"ledgerflow {version('ledgerflow')}\n"


def test_help_and_version_import_neither_prefect_nor_dbt():
    probe = (
        "import sys\n"
        "from flows.cli import main\n"
        "for argv in (['--help'], ['run', '--help'], ['--version']):\n"
        "    try:\n"
        "        main(argv)\n"
        "    except SystemExit:\n"
        "        pass\n"
        "print(sorted({name.split('.')[0] for name in sys.modules} & {'prefect', 'dbt'}))\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", probe], capture_output=True, text=True, timeout=60, check=True
    )
    assert done.stdout.splitlines()[-1] == "[]"
