"""`make bench`: the pipeline at scale against the floors of this machine, in one run.

    python tests/benchmarks/run_bench.py [--accounts N | --sample] [--change-rate R] ...

On one generated delivery (1M accounts by default; cached under .bench/) it times

    F  the floor: one hand-written DuckDB statement, CSVs in, account summary out
    P  Prefect's floor: an empty flow run in a fresh process, same API mode and home
    H  reading, sha256-hashing and scanning both input files (the pipeline's own pass)
    1. the pipeline's full run on a fresh warehouse        budget 3 x F + P
    2. a re-run on the unchanged delivery                  budget P + H + 1 s
    3. a run on the next delivery, R (1%) changed          budget F + P
    4. a --full-refresh run of that delivery on a copy of the warehouse before step 3

with wall seconds and peak RSS of each process tree (budget 2.5 GB), the pipeline's own
per-step seconds from its quality report, and three correctness checks: the floor's rows
equal the published account_summary; the unchanged re-run leaves the published data files
byte-identical; the incremental run's marts equal the full refresh's. `--sample` runs the
same on the bundled sample, where the budgets are P + 3 s (full) and P + 1 s (unchanged).

The budgets are the ones set for 10M accounts; at other sizes they are printed as a guide.
The markdown table is printed, written with every raw number to .bench/results-<N>.json,
and replaces the figures between the markers of docs/performance.md. This is a benchmark,
not a test: nothing here is collected by pytest, and no test asserts a timing.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import platform
import shutil
import sys
import time
from collections.abc import Callable
from datetime import UTC, datetime
from importlib import metadata
from pathlib import Path
from typing import Any

import duckdb
from proc_tree import Measured, run_measured

from flows.steps.delivery_csv import scan_file
from flows.steps.ingest import delivery_paths
from flows.steps.publish import PUBLISHED_DATA_FILES

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from tools.delivery_generator import generate_delivery, generate_next_delivery

PROJECT_ROOT = Path(__file__).resolve().parents[2]
BENCH_DIR = Path(__file__).resolve().parent
SAMPLE_DIR = PROJECT_ROOT / "data" / "sample"
GENERATOR_SOURCE = PROJECT_ROOT / "tests" / "tools" / "delivery_generator.py"

# The one table of current figures: everything between the markers is the last bench's.
FIGURES_DOC = PROJECT_ROOT / "docs" / "performance.md"
FIGURES_START = "<!-- bench:start -->"
FIGURES_END = "<!-- bench:end -->"

MEMORY_BUDGET_BYTES = 2_500_000_000
STEPS = (
    "ingest",
    "source_freshness",
    "staging",
    "snapshots",
    "intermediate",
    "marts",
    "expectations",
    "audit",
    "publish",
)
# The published data files (the quality report aside: it names its run).
DATA_FILES = PUBLISHED_DATA_FILES
MARTS = ("account_summary", "customer_profile")


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--accounts", type=int, default=1_000_000, help="default: 1,000,000")
    parser.add_argument(
        "--sample", action="store_true", help="the bundled sample instead (--accounts ignored)"
    )
    parser.add_argument("--accounts-per-customer", type=float, default=2.5)
    parser.add_argument("--dirty-rate", type=float, default=0.02)
    parser.add_argument("--change-rate", type=float, default=0.01)
    parser.add_argument("--seed", type=int, default=42)
    parser.add_argument(
        "--scratch", type=Path, default=PROJECT_ROOT / ".bench", help="default: .bench/"
    )
    parser.add_argument(
        "--prefect-home",
        type=Path,
        help="Prefect home of every run (default: <scratch>/prefect-home, warmed up first)",
    )
    return parser.parse_args(argv)


# --- machine and deliveries ---------------------------------------------------------------


def machine_info() -> dict:
    cpu = "unknown"
    for line in Path("/proc/cpuinfo").read_text().splitlines():
        if line.startswith("model name"):
            cpu = line.split(":", 1)[1].strip()
            break
    mem_kib = next(
        int(line.split()[1])
        for line in Path("/proc/meminfo").read_text().splitlines()
        if line.startswith("MemTotal:")
    )
    versions = {name: metadata.version(name) for name in ("duckdb", "prefect", "dbt-core")}
    return {
        "cpu": cpu,
        "cores": len(os.sched_getaffinity(0)),
        "ram_gib": round(mem_kib / 1024**2, 1),
        "os": platform.platform(),
        "python": platform.python_version(),
        "versions": versions,
        "load_average_at_start": [round(x, 2) for x in os.getloadavg()],
        "prefect_api": os.environ.get("PREFECT_API_URL") or "ephemeral",
    }


def prepare_deliveries(args: argparse.Namespace) -> dict:
    """The base delivery and the changed one, generated once and reused while the
    generator and the parameters stay the same."""
    generator = hashlib.sha256(GENERATOR_SOURCE.read_bytes()).hexdigest()
    if args.sample:
        root = args.scratch / "deliveries" / "sample"
        base, base_info = SAMPLE_DIR, {"cached": True, "seconds": 0.0}
    else:
        customers = max(round(args.accounts / args.accounts_per_customer), 1)
        root = (
            args.scratch
            / "deliveries"
            / (
                f"accounts-{args.accounts}-apc-{args.accounts_per_customer}"
                f"-dirty-{args.dirty_rate}-seed-{args.seed}"
            )
        )
        base = root / "base"
        base_info = _cached(
            base,
            {"generator": generator, "customers": customers, **_params(args)},
            lambda: generate_delivery(
                base, customers, args.accounts_per_customer, args.dirty_rate, args.seed
            ),
        )
    changed = root / f"changed-{args.change_rate}"
    changed_info = _cached(
        changed,
        {
            "generator": generator,
            "base": str(base),
            "change_rate": args.change_rate,
            **_params(args),
        },
        lambda: generate_next_delivery(base, changed, args.change_rate, args.seed),
    )
    return {
        "base": base,
        "changed": changed,
        "customers_rows": _data_rows(base / "customers.csv"),
        "accounts_rows": _data_rows(base / "accounts.csv"),
        "bytes": sum((base / name).stat().st_size for name in ("customers.csv", "accounts.csv")),
        "generate_base": base_info,
        "generate_changed": changed_info,
    }


def _params(args: argparse.Namespace) -> dict:
    return {
        "accounts": None if args.sample else args.accounts,
        "accounts_per_customer": args.accounts_per_customer,
        "dirty_rate": args.dirty_rate,
        "seed": args.seed,
    }


def _cached(folder: Path, key: dict, make: Callable[[], Any]) -> dict:
    stamp = folder / ".generated.json"
    if stamp.is_file() and json.loads(stamp.read_text()).get("key") == key:
        return {"cached": True, **json.loads(stamp.read_text())["result"]}
    shutil.rmtree(folder, ignore_errors=True)
    result = make()
    described = {
        name: value if isinstance(value, int | float) else str(value)
        for name, value in vars(result).items()
    }
    stamp.write_text(json.dumps({"key": key, "result": described}, indent=2))
    return {"cached": False, **described}


def _data_rows(path: Path) -> int:
    (rows,) = duckdb.execute(
        "select count(*) from read_csv(?, header = true, all_varchar = true, delim = ',', "
        "quote = '\"', escape = '\"')",
        [str(path)],
    ).fetchone()
    return rows


# --- measurements -------------------------------------------------------------------------


class Bench:
    """One benchmark run's folders, environment and measurements."""

    def __init__(self, args: argparse.Namespace, label: str):
        self.args = args
        self.root = args.scratch / f"run-{label}"
        shutil.rmtree(self.root, ignore_errors=True)
        self.root.mkdir(parents=True)
        self.logs = self.root / "logs"
        self.env = dict(os.environ, PYTHONUNBUFFERED="1")
        self.env["PREFECT_HOME"] = str(
            (args.prefect_home or args.scratch / "prefect-home").resolve()
        )
        self.python = sys.executable
        ledgerflow = Path(sys.executable).with_name("ledgerflow")
        self.ledgerflow = (
            [str(ledgerflow)] if ledgerflow.exists() else [self.python, "-m", "flows.cli"]
        )

    def measure(self, name: str, command: list[str]) -> Measured:
        result = run_measured(command, self.logs / f"{name}.log", env=self.env, cwd=PROJECT_ROOT)
        if result.returncode != 0:
            tail = (self.logs / f"{name}.log").read_text(errors="replace").splitlines()[-15:]
            print(
                f"  {name} exited {result.returncode}; last lines of its log:", *tail, sep="\n    "
            )
        return result

    def floor(self, input_dir: Path) -> dict:
        out = self.root / "floor_account_summary.parquet"
        measured = self.measure(
            "floor", [self.python, str(BENCH_DIR / "floor_query.py"), str(input_dir), str(out)]
        )
        inner = json.loads((self.logs / "floor.log").read_text().strip().splitlines()[-1])
        return {**_measured(measured), "statement_seconds": inner["seconds"], "rows": inner["rows"]}

    def prefect_floor(self) -> dict:
        command = [self.python, str(BENCH_DIR / "empty_flow.py")]
        # Untimed first run: a new Prefect home migrates its database once.
        self.measure("prefect-warm-up", command)
        return _measured(self.measure("prefect-empty-flow", command))

    def pipeline(
        self,
        name: str,
        input_dir: Path,
        output_dir: Path,
        warehouse: Path,
        full_refresh: bool = False,
    ) -> dict:
        command = [
            *self.ledgerflow,
            "run",
            "--input-dir",
            str(input_dir),
            "--output-dir",
            str(output_dir),
            "--warehouse",
            str(warehouse),
        ]
        if full_refresh:
            command.append("--full-refresh")
        measured = self.measure(name, command)
        report_path = output_dir / (
            "quality_report.json" if measured.returncode == 0 else "failed/quality_report.json"
        )
        report = json.loads(report_path.read_text()) if report_path.is_file() else {}
        (self.root / "reports").mkdir(exist_ok=True)
        (self.root / "reports" / f"{name}.json").write_text(json.dumps(report, indent=2))
        steps = report.get("metrics", {}).get("duration_seconds", {})
        return {
            **_measured(measured),
            "status": report.get("status", "no report"),
            "checks": report.get("summary", {}),
            "step_seconds": steps,
            "outside_steps_seconds": round(measured.seconds - sum(steps.values()), 3),
        }


def _measured(measured: Measured) -> dict:
    return {
        "seconds": round(measured.seconds, 3),
        "peak_rss_bytes": measured.peak_rss_bytes,
        "exit_code": measured.returncode,
    }


def hash_inputs(input_dir: Path) -> dict:
    """H, with the pipeline's own pass over the bytes (hash and scan)."""
    started = time.perf_counter()
    for path in delivery_paths(input_dir).values():
        scan_file(path)
    return {"seconds": round(time.perf_counter() - started, 3)}


# --- correctness checks -------------------------------------------------------------------


def summary_checksum(parquet: Path) -> tuple[int, int]:
    """(rows, order-free checksum of the key, balance, rate and interest columns)."""
    rows, checksum = duckdb.execute(
        """
        select count(*), coalesce(sum(hash(concat_ws('|',
            account_id,
            cast(customer_id as bigint),
            cast(original_balance_amount as decimal(18, 2)),
            cast(interest_rate_pct as decimal(6, 4)),
            cast(annual_interest_amount as decimal(18, 2)),
            cast(new_balance_amount as decimal(18, 2))))), 0)
        from read_parquet(?)
        """,
        [str(parquet)],
    ).fetchone()
    return rows, int(checksum)


def marts_differences(output_a: Path, output_b: Path) -> dict[str, int]:
    """Rows in one output's mart and not the other's (as multisets), calculated_at aside."""
    differences = {}
    for mart in MARTS:
        a, b = str(output_a / f"{mart}.parquet"), str(output_b / f"{mart}.parquet")
        columns = [
            name
            for (name,) in duckdb.execute(
                "select name from parquet_schema(?) where num_children is null", [a]
            ).fetchall()
            if name != "calculated_at"
        ]
        selected = ", ".join(f'"{name}"' for name in columns)
        (count,) = duckdb.execute(
            f"""
            select count(*) from (
                (select {selected} from read_parquet($a) except all
                 select {selected} from read_parquet($b))
                union all
                (select {selected} from read_parquet($b) except all
                 select {selected} from read_parquet($a))
            )
            """,
            {"a": a, "b": b},
        ).fetchone()
        differences[mart] = count
    return differences


def data_file_hashes(output_dir: Path) -> dict[str, str]:
    return {
        name: scan_file(output_dir / name).sha256
        for name in DATA_FILES
        if (output_dir / name).is_file()
    }


# --- budgets and the report ---------------------------------------------------------------


def budgets(results: dict, sample: bool) -> dict[str, dict]:
    f = results["floors"]["F"]["statement_seconds"]
    p = results["floors"]["P"]["seconds"]
    h = results["floors"]["H"]["seconds"]
    if sample:
        rules = {"full": ("P + 3 s", p + 3), "unchanged": ("P + 1 s", p + 1)}
    else:
        rules = {
            "full": ("3×F + P", 3 * f + p),
            "unchanged": ("P + H + 1 s", p + h + 1),
            "changed": ("F + P", f + p),
        }
    verdicts = {}
    for run in ("full", "unchanged", "changed"):
        measured = results["runs"].get(run)
        if measured is None:
            continue
        rule = rules.get(run)
        verdicts[run] = {
            "time_rule": rule[0] if rule else None,
            "time_budget_seconds": round(rule[1], 3) if rule else None,
            "time_met": measured["seconds"] <= rule[1] if rule else None,
            "memory_met": measured["peak_rss_bytes"] <= MEMORY_BUDGET_BYTES,
        }
    return verdicts


def _mb(value: int | None) -> str:
    if not value:
        return "–"
    if value >= 1e9:
        return f"{value / 1e9:.2f} GB"
    return f"{value / 1e6:.0f} MB" if value >= 1e6 else f"{value / 1e3:.0f} kB"


def _met(value: bool | None) -> str:
    return "–" if value is None else ("met" if value else "**missed**")


def markdown(results: dict) -> str:
    machine, delivery = results["machine"], results["delivery"]
    runs, floors, verdicts = results["runs"], results["floors"], results["budgets"]
    change = f"{results['params']['change_rate']:.0%}"
    size = (
        "the bundled sample"
        if results["params"]["sample"]
        else f"{delivery['accounts_rows']:,} accounts, {delivery['customers_rows']:,} customers"
    )
    versions = machine["versions"]
    heading = (
        f"**{size}** ({_mb(delivery['bytes'])} of CSV) on {machine['cpu']}, "
        f"{machine['cores']} cores, {machine['ram_gib']} GiB RAM; "
        f"Prefect {versions['prefect']} ({machine['prefect_api']} API), "
        f"DuckDB {versions['duckdb']}, dbt-core {versions['dbt-core']}; {results['finished_at']}"
    )
    f_row = (
        f"| F: one DuckDB statement (floor) | {floors['F']['statement_seconds']:.2f} "
        f"| {_mb(floors['F']['peak_rss_bytes'])} | | | |"
    )
    p_row = (
        f"| P: empty Prefect flow run (floor) | {floors['P']['seconds']:.2f} "
        f"| {_mb(floors['P']['peak_rss_bytes'])} | | | |"
    )
    h_row = (
        f"| H: read, sha256 + scan both files (floor) | {floors['H']['seconds']:.2f} | – | | | |"
    )
    lines = [
        heading,
        "",
        "Each figure is one run.",
        "",
        "| run | seconds | peak RSS | time budget | time | memory ≤ 2.5 GB |",
        "|---|---:|---:|---|---|---|",
        f_row,
        p_row,
        h_row,
    ]
    names = {
        "full": "full run, fresh warehouse",
        "unchanged": "re-run, unchanged delivery",
        "changed": f"{change} changed",
        "refresh": f"{change} changed, `--full-refresh` (check)",
    }
    for run, title in names.items():
        if run not in runs:
            continue
        measured, verdict = runs[run], verdicts.get(run, {})
        budget = (
            f"≤ {verdict['time_rule']} = {verdict['time_budget_seconds']:.1f} s"
            if verdict.get("time_rule")
            else ""
        )
        lines.append(
            f"| {title} | {measured['seconds']:.2f} | {_mb(measured['peak_rss_bytes'])} "
            f"| {budget} | {_met(verdict.get('time_met'))} | {_met(verdict.get('memory_met'))} |"
        )
    lines += ["", "Seconds per step (the quality report's `metrics.duration_seconds`):", ""]
    shown = [run for run in names if run in runs]
    lines.append("| step | " + " | ".join(names[run] for run in shown) + " |")
    lines.append("|---|" + "---:|" * len(shown))
    for step in STEPS:
        cells = [runs[run]["step_seconds"].get(step) for run in shown]
        if all(cell is None for cell in cells):
            continue  # publish: the report is written during it, so it cannot hold its time
        lines.append(
            f"| {step} | " + " | ".join("–" if c is None else f"{c:.2f}" for c in cells) + " |"
        )
    lines.append(
        "| outside the steps (process start, imports, Prefect API, publish) | "
        + " | ".join(f"{runs[run]['outside_steps_seconds']:.2f}" for run in shown)
        + " |"
    )
    lines += ["", "Checks:", ""]
    lines += [
        f"- {check['title']}: **{check['verdict']}** ({check['detail']})"
        for check in results["checks"].values()
    ]
    if not results["params"]["sample"] and delivery["accounts_rows"] != 10_000_000:
        lines += ["", "The time budgets are set for 10M accounts; at this size they are a guide."]
    return "\n".join(lines)


# --- the run ------------------------------------------------------------------------------


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    args.scratch = args.scratch.resolve()
    label = "sample" if args.sample else str(args.accounts)
    results: dict = {
        "params": {**_params(args), "sample": args.sample, "change_rate": args.change_rate}
    }
    machine = results["machine"] = machine_info()
    print(f"bench {label}: {machine['cpu']}, {machine['cores']} cores, {machine['ram_gib']} GiB")

    delivery = prepare_deliveries(args)
    results["delivery"] = {k: (str(v) if isinstance(v, Path) else v) for k, v in delivery.items()}
    for which in ("generate_base", "generate_changed"):
        info = delivery[which]
        took = "cached" if info["cached"] else f"{info['seconds']:.1f} s"
        print(f"  {which}: {took}")
    base, changed = delivery["base"], delivery["changed"]

    bench = Bench(args, label)
    floors = results["floors"] = {}
    floors["F"] = bench.floor(base)
    print(f"  F floor: {floors['F']['statement_seconds']:.2f} s, {floors['F']['rows']:,} rows")
    floors["P"] = bench.prefect_floor()
    print(f"  P empty flow run: {floors['P']['seconds']:.2f} s")
    floors["H"] = hash_inputs(base)
    print(f"  H hash inputs: {floors['H']['seconds']:.2f} s")

    output, warehouse = bench.root / "output", bench.root / "warehouse.duckdb"
    refresh_output, refresh_warehouse = (
        bench.root / "output-refresh",
        bench.root / "warehouse-refresh.duckdb",
    )
    runs = results["runs"] = {}
    checks = results["checks"] = {}

    runs["full"] = bench.pipeline("full", base, output, warehouse)
    _print_run("full run", runs["full"])
    if runs["full"]["exit_code"] == 0:
        floor_sum = summary_checksum(bench.root / "floor_account_summary.parquet")
        mart_sum = summary_checksum(output / "account_summary.parquet")
        checks["floor"] = {
            "title": "floor rows = published account_summary (count, checksum)",
            "verdict": "PASS" if floor_sum == mart_sum else "FAIL",
            "detail": f"{floor_sum[0]:,} vs {mart_sum[0]:,} rows, checksums "
            + ("equal" if floor_sum[1] == mart_sum[1] else "differ"),
        }
        published = data_file_hashes(output)

        runs["unchanged"] = bench.pipeline("unchanged", base, output, warehouse)
        _print_run("unchanged re-run", runs["unchanged"])
        same = data_file_hashes(output) == published and len(published) == len(DATA_FILES)
        checks["unchanged"] = {
            "title": "unchanged re-run leaves the published data files byte-identical",
            "verdict": "PASS" if same and runs["unchanged"]["exit_code"] == 0 else "FAIL",
            "detail": f"{len(published)} files compared by sha256",
        }

        # The full refresh starts from the same warehouse the incremental run starts from.
        for suffix in ("", ".wal"):
            source = warehouse.with_name(warehouse.name + suffix)
            if source.exists():
                shutil.copy2(source, refresh_warehouse.with_name(refresh_warehouse.name + suffix))
        runs["changed"] = bench.pipeline("changed", changed, output, warehouse)
        _print_run(f"{args.change_rate:.0%} changed", runs["changed"])
        runs["refresh"] = bench.pipeline(
            "refresh", changed, refresh_output, refresh_warehouse, full_refresh=True
        )
        _print_run("full refresh", runs["refresh"])
        if runs["changed"]["exit_code"] == 0 and runs["refresh"]["exit_code"] == 0:
            differences = marts_differences(output, refresh_output)
            checks["incremental"] = {
                "title": f"{args.change_rate:.0%}-changed incremental marts = full refresh",
                "verdict": "PASS" if not any(differences.values()) else "FAIL",
                "detail": ", ".join(f"{mart}: {n} rows differ" for mart, n in differences.items())
                + " (calculated_at aside)",
            }
        else:
            checks["incremental"] = {
                "title": "incremental = full refresh",
                "verdict": "FAIL",
                "detail": "a run failed",
            }

    results["budgets"] = budgets(results, args.sample)
    results["finished_at"] = datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC")
    results["markdown"] = markdown(results)
    target = args.scratch / f"results-{label}.json"
    target.write_text(json.dumps(results, indent=2, default=str))
    print()
    print(results["markdown"])
    print(f"\nraw numbers: {target}")
    print(f"figures written to {write_figures(results['markdown'])}")
    failed = [c for c in checks.values() if c["verdict"] != "PASS"]
    return 1 if failed or len(checks) < 3 else 0


def write_figures(table: str, doc: Path | None = None) -> Path:
    """Replace what lies between the doc's markers with `table`, the rest untouched."""
    doc = doc or FIGURES_DOC
    text = doc.read_text()
    start, end = text.find(FIGURES_START), text.find(FIGURES_END)
    if start < 0 or end < start:
        raise SystemExit(f"{doc}: no {FIGURES_START} ... {FIGURES_END} markers to write between")
    before, after = text[: start + len(FIGURES_START)], text[end:]
    doc.write_text(f"{before}\n{table}\n{after}")
    return doc


def _print_run(title: str, run: dict) -> None:
    print(
        f"  {title}: {run['seconds']:.2f} s, peak {_mb(run['peak_rss_bytes'])}, "
        f"exit {run['exit_code']} ({run['status']})"
    )


if __name__ == "__main__":
    sys.exit(main())
