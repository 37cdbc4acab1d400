"""The `ledgerflow` command.

    ledgerflow run [--input-dir DIR] [--output-dir DIR] [--warehouse FILE]
                   [--select LAYER ...] [--full-refresh]
    ledgerflow status [--warehouse FILE]
                           the pipeline's run history on the Prefect server (PREFECT_API_URL),
                           then the warehouse's own: the last runs and what was unusual

Exit codes (the data contract's): 0 published; 1 blocking checks failed, nothing
published; 2 bad input or usage, nothing published; 3 published, but an export beyond
the output folder failed; 4 an internal error; 5 gave up waiting for the warehouse.
`status` exits 0, or 2 when no server is configured or answers (the warehouse's history is
printed either way).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from flows.config import DEFAULT_INPUT_DIR, DEFAULT_OUTPUT_DIR, DEFAULT_WAREHOUSE, LAYERS

EXIT_USAGE = 2


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="ledgerflow", description=__doc__.split("\n\n")[0])
    commands = parser.add_subparsers(dest="command", required=True)

    run = commands.add_parser("run", help="run the pipeline on one delivery")
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
        help="rebuild incremental marts from scratch (history is kept)",
    )

    status = commands.add_parser(
        "status",
        help="when the pipeline last succeeded, what it published, what failed last "
        "(from the Prefect server PREFECT_API_URL names), and the warehouse's run history",
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
    return EXIT_USAGE


def show_status(warehouse: Path) -> int:
    from flows.status import NoServer, status_report, warehouse_history_lines

    code = 0
    try:
        print(status_report())
    except NoServer as error:
        print(f"ledgerflow status: {error}", file=sys.stderr)
        code = EXIT_USAGE
    print("\n".join(warehouse_history_lines(warehouse.resolve())))
    return code


def run_pipeline(args: argparse.Namespace) -> int:
    # Imported here: Prefect and dbt take seconds to import, --help should not.
    from flows.errors import LedgerflowError
    from flows.pipeline import account_summary_pipeline

    try:
        account_summary_pipeline(
            input_dir=args.input_dir,
            output_dir=args.output_dir,
            warehouse=args.warehouse,
            select=args.select,
            full_refresh=args.full_refresh,
        )
    except LedgerflowError as error:
        print(f"ledgerflow: {error}", file=sys.stderr)
        return error.exit_code
    except ValueError as error:
        print(f"ledgerflow: {error}", file=sys.stderr)
        return EXIT_USAGE
    return 0


if __name__ == "__main__":
    sys.exit(main())
