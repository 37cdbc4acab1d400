"""The `ledgerflow` command: `ledgerflow run` runs the pipeline on one delivery,
`ledgerflow status` tells how the last runs went. `ledgerflow --help` says what each does
and what each exit code means (flows/errors.py).

Nothing here imports Prefect or dbt until a command needs them: --help and --version
answer at once.
"""

from __future__ import annotations

import argparse
import sys
import textwrap
from importlib import import_module
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path

from flows.config import DEFAULT_INPUT_DIR, DEFAULT_OUTPUT_DIR, DEFAULT_WAREHOUSE, LAYERS
from flows.errors import EXIT_BAD_INPUT, EXIT_CODES

DESCRIPTION = (
    "Ledgerflow runs the nightly bank-account pipeline on one delivery (customers.csv and "
    "accounts.csv): it loads the files into a DuckDB warehouse, builds them through dbt's "
    "layers (staging and quarantine, snapshots, intermediate, marts), checks the result "
    "(dbt tests, source freshness, expectations, anomalies against the run history) and, "
    "only if no blocking check failed, publishes the marts as CSV and Parquet with a quality "
    "report and a dashboard; then it exports the published tables to Databricks if that is "
    "configured."
)
STATUS_EXIT_CODES = {
    0: "the server answered",
    EXIT_BAD_INPUT: "no server is configured or none answers (the warehouse's history is "
    "printed either way)",
}
HELP_WIDTH = 79


def _paragraph(text: str) -> str:
    return textwrap.fill(text, HELP_WIDTH)


def _exit_codes(title: str, codes: dict[int, str]) -> str:
    """An epilog listing exit codes, each meaning wrapped under its code."""
    return f"{title}:\n" + "\n".join(
        textwrap.fill(meaning, HELP_WIDTH, initial_indent=f"  {code}  ", subsequent_indent=" " * 5)
        for code, meaning in codes.items()
    )


def package_version() -> str:
    try:
        return version("ledgerflow")
    except PackageNotFoundError:  # run from a checkout that was never installed
        return "unknown (not installed)"


def build_parser() -> argparse.ArgumentParser:
    # Raw, so that the exit codes keep one line each (the texts come wrapped already).
    layout = argparse.RawDescriptionHelpFormatter
    run_exit_codes = _exit_codes("exit codes of `ledgerflow run`", EXIT_CODES)
    parser = argparse.ArgumentParser(
        prog="ledgerflow",
        description=_paragraph(DESCRIPTION),
        epilog=run_exit_codes,
        formatter_class=layout,
    )
    parser.add_argument(
        "--version",
        action="version",
        version=f"%(prog)s {package_version()}",
        help="print the installed version and exit",
    )
    commands = parser.add_subparsers(dest="command", required=True)

    run = commands.add_parser(
        "run",
        help="run the pipeline on one delivery",
        description=_paragraph(DESCRIPTION),
        epilog=run_exit_codes,
        formatter_class=layout,
    )
    run.add_argument(
        "--input-dir",
        default=str(DEFAULT_INPUT_DIR),
        help="folder holding customers.csv and accounts.csv (default: the bundled sample)",
    )
    run.add_argument(
        "--output-dir",
        default=str(DEFAULT_OUTPUT_DIR),
        help="where published files go (default: output/)",
    )
    run.add_argument(
        "--warehouse",
        default=str(DEFAULT_WAREHOUSE),
        help="DuckDB warehouse file (default: data/warehouse.duckdb)",
    )
    run.add_argument(
        "--select",
        nargs="+",
        choices=LAYERS,
        metavar="LAYER",
        help=f"run only these layers, in pipeline order ({', '.join(LAYERS)})",
    )
    run.add_argument(
        "--full-refresh",
        action="store_true",
        help="recompute every key of the versioned models, not only those whose inputs "
        "changed (history is kept; every check then reads whole tables)",
    )
    run.add_argument(
        "--full-check",
        action="store_true",
        help="run every check on whole tables, not on tonight's change set",
    )

    status_help = (
        "when the pipeline last succeeded, what it published, what failed last "
        "(from the Prefect server PREFECT_API_URL names), and the warehouse's run history"
    )
    status = commands.add_parser(
        "status",
        help=status_help,
        description=_paragraph(f"Shows {status_help}."),
        epilog=_exit_codes("exit codes of `ledgerflow status`", STATUS_EXIT_CODES),
        formatter_class=layout,
    )
    status.add_argument(
        "--warehouse",
        default=str(DEFAULT_WAREHOUSE),
        help="DuckDB warehouse whose run history to show (default: data/warehouse.duckdb)",
    )
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    if args.command == "run":
        return run_pipeline(args)
    if args.command == "status":
        return show_status(Path(args.warehouse))
    return EXIT_BAD_INPUT


def show_status(warehouse: Path) -> int:
    from flows.status import NoServer, status_report, warehouse_history_lines

    code = 0
    try:
        print(status_report())
    except NoServer as error:
        print(f"ledgerflow status: {error}", file=sys.stderr)
        code = EXIT_BAD_INPUT
    print("\n".join(warehouse_history_lines(warehouse.resolve())))
    return code


def run_pipeline(args: argparse.Namespace) -> int:
    # Imported here: Prefect and dbt take seconds to import, --help should not.
    from flows.config import DEFAULT_WAREHOUSE, FLOW_TIMEOUT_SECONDS, FLOW_TIMEOUT_VAR
    from flows.errors import LedgerflowError, RunTimedOut
    from flows.runtime.dbt_parse import start_parsing

    # dbt imported and the project parsed, then Great Expectations imported (~2.4 s), while
    # Prefect imports and its API server starts.
    start_parsing(Path(args.warehouse or DEFAULT_WAREHOUSE)).add_done_callback(
        lambda _: import_module("great_expectations")
    )
    from flows.pipeline import account_summary_pipeline

    try:
        account_summary_pipeline(
            input_dir=args.input_dir,
            output_dir=args.output_dir,
            warehouse=args.warehouse,
            select=args.select,
            full_refresh=args.full_refresh,
            full_check=args.full_check,
        )
    except LedgerflowError as error:
        print(f"ledgerflow: {error}", file=sys.stderr)
        return error.exit_code
    except TimeoutError:  # Prefect's flow timeout: the run's state is TimedOut
        timed_out = RunTimedOut(FLOW_TIMEOUT_SECONDS, FLOW_TIMEOUT_VAR)
        print(f"ledgerflow: {timed_out}", file=sys.stderr)
        return timed_out.exit_code
    except ValueError as error:
        print(f"ledgerflow: {error}", file=sys.stderr)
        return EXIT_BAD_INPUT
    return 0


if __name__ == "__main__":
    sys.exit(main())
