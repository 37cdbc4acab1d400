"""Synthetic deliveries for benchmarks and load tests (a development tool, not the pipeline).

    make generate ARGS="--out DIR --customers N [--accounts-per-customer F]
                        [--dirty-rate R] [--seed S]"
    make generate ARGS="--out DIR --from DIR --change-rate R [--seed S]"

(`PYTHONPATH=tests .venv/bin/python -m tools.generate ...` is the same.)

The first form writes a first delivery; the second the next night's delivery after an
existing one. The same arguments always write the same bytes.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

EXIT_USAGE = 2


def build_parser() -> argparse.ArgumentParser:
    generate = argparse.ArgumentParser(
        prog="generate",
        description="write a synthetic delivery (or the next one after an existing delivery)",
    )
    generate.add_argument("--out", required=True, help="folder to write the two CSV files to")
    generate.add_argument("--customers", type=int, help="number of customers (first delivery)")
    generate.add_argument(
        "--accounts-per-customer",
        type=float,
        default=2.5,
        help="accounts per customer on average (default: 2.5)",
    )
    generate.add_argument(
        "--dirty-rate",
        type=float,
        default=0.02,
        help="share of each file's rows broken on purpose, spread over every quarantine "
        "reason (default: 0.02, under the 5%% warning threshold)",
    )
    generate.add_argument(
        "--from",
        dest="base",
        help="an existing delivery: write the next one after it instead",
    )
    generate.add_argument(
        "--change-rate",
        type=float,
        help="with --from: share of accounts changed (balance or type), removed, added or "
        "moved to another customer, and of customers whose loan flag flips",
    )
    generate.add_argument("--seed", type=int, default=0, help="random seed (default: 0)")
    return generate


def main(argv: list[str] | None = None) -> int:
    from tools.delivery_generator import generate_delivery, generate_next_delivery

    args = build_parser().parse_args(argv)
    out = Path(args.out)
    try:
        if args.base is not None:
            if args.change_rate is None or args.customers is not None:
                raise ValueError("--from takes --change-rate, and not --customers")
            result = generate_next_delivery(Path(args.base), out, args.change_rate, args.seed)
            print(
                f"wrote {out}: {result.customers:,} customers ({result.loan_flags_flipped:,} "
                f"loan flags flipped), {result.accounts:,} accounts "
                f"({result.accounts_changed:,} changed, {result.accounts_removed:,} removed, "
                f"{result.accounts_added:,} added, {result.accounts_moved:,} moved) "
                f"in {result.seconds:.1f} s"
            )
            return 0
        if args.customers is None or args.change_rate is not None:
            raise ValueError("give --customers N, or --from DIR with --change-rate R")
        result = generate_delivery(
            out, args.customers, args.accounts_per_customer, args.dirty_rate, args.seed
        )
    except ValueError as error:
        print(f"generate: {error}", file=sys.stderr)
        return EXIT_USAGE
    print(
        f"wrote {out}: {result.customers:,} customers ({result.dirty_customers:,} to "
        f"quarantine), {result.accounts:,} accounts ({result.dirty_accounts:,} to quarantine) "
        f"in {result.seconds:.1f} s"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
