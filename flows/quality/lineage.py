"""The dashboard's lineage: the two delivered files through every dbt model to the
published files and the Databricks tables, from dbt's manifest, each node with its last
run, seconds, rows and the status of its tests, and a link to its page in dbt's docs.

The published files and the Databricks tables are the project's dbt exposures
(dbt_project/models/marts/_marts__exposures.yml): their nodes here stay one per file and
table, since that is what a person looks for, and link to their exposure's page. The
exposure says which nodes it stands for in `meta.dashboard_nodes`.
"""

from __future__ import annotations

import json
from collections import Counter, defaultdict
from datetime import datetime
from html import escape
from pathlib import Path

from flows.contract import DELIVERY_FILES, PUBLISHED_MARTS
from flows.quality.history import RecentHistory

STATUS_ORDER = ("fail", "warn", "pass")
NODE_WIDTH, NODE_HEIGHT, COLUMN_GAP, ROW_GAP = 200, 52, 50, 14


def short_time(moment: datetime) -> str:
    return moment.strftime("%m-%d %H:%M")


def lineage_graph(manifest: dict, published_files: tuple[str, ...]) -> dict[str, list[str]]:
    """node -> its parents: delivered file -> raw table (a dbt source) -> models ->
    published files and Databricks tables."""
    parents: dict[str, list[str]] = {}
    for table in DELIVERY_FILES:
        parents[f"file:{table}.csv"] = []
    for source in manifest.get("sources", {}).values():
        # Ingestion writes every raw table from the files: a table of one file's records
        # (customers, customer_records) from that file, the others (deliveries) from both.
        fed_by = [
            f"file:{table}.csv"
            for table in DELIVERY_FILES
            if source["name"].startswith(table.removesuffix("s"))
        ]
        parents[f"{source['schema']}.{source['name']}"] = fed_by or [
            f"file:{table}.csv" for table in DELIVERY_FILES
        ]
    names = _node_names(manifest)
    for node in manifest.get("nodes", {}).values():
        if node["resource_type"] not in ("model", "snapshot"):
            continue
        parents[node["name"]] = sorted(
            names[parent] for parent in node["depends_on"]["nodes"] if parent in names
        )
    for file in published_files:
        model = file.rsplit(".", 1)[0]
        if model in parents:
            parents[f"file:{file}"] = [model]
    for mart in PUBLISHED_MARTS:
        if mart in parents:
            parents[f"databricks:{mart}"] = [mart]
    return parents


def docs_pages(manifest: dict, graph: dict[str, list[str]]) -> dict[str, str]:
    """node -> its page in dbt's static docs (the part of the URL after the file name):
    models and snapshots by resource type, sources, and the exposure a published file or
    a Databricks table belongs to. The delivered files have no page."""
    ids = {name: unique_id for unique_id, name in _node_names(manifest).items()}
    pages = {
        name: f"#!/{unique_id.split('.', 1)[0]}/{unique_id}"
        for name, unique_id in ids.items()
        if name in graph
    }
    for unique_id, exposure in manifest.get("exposures", {}).items():
        kind = (exposure.get("meta") or {}).get("dashboard_nodes")
        for node in graph:
            if kind and node.startswith(f"{kind}:") and _exposure_covers(exposure, node):
                pages[node] = f"#!/exposure/{unique_id}"
    return pages


def _exposure_covers(exposure: dict, node: str) -> bool:
    """A published file or table belongs to an exposure of the mart it is made from."""
    mart = node.partition(":")[2].rsplit(".", 1)[0]
    return any(parent.split(".")[-1] == mart for parent in exposure["depends_on"]["nodes"])


def _node_names(manifest: dict) -> dict[str, str]:
    """unique id -> the lineage's name for it: schema.table for a source, else its name."""
    return {
        unique_id: (
            f"{node['schema']}.{node['name']}"
            if node["resource_type"] == "source"
            else node["name"]
        )
        for unique_id, node in {**manifest.get("nodes", {}), **manifest.get("sources", {})}.items()
    }


def lineage_section(
    history: RecentHistory,
    report: dict,
    rows_by_relation: dict[str, int],
    published_files: tuple[str, ...],
    manifest: Path | None,
    docs: str | None,
) -> str:
    """The section; `docs` is the docs file's address from the dashboard (None: no links)."""
    if manifest is None or not manifest.is_file():
        return "<section id='lineage'><h2>Lineage</h2><p>No dbt manifest yet.</p></section>"
    parsed = json.loads(manifest.read_text())
    parents = lineage_graph(parsed, published_files)
    pages = docs_pages(parsed, parents) if docs else {}
    depth: dict[str, int] = {}

    def depth_of(node: str) -> int:
        if node not in depth:
            depth[node] = 1 + max((depth_of(p) for p in parents.get(node, [])), default=-1)
        return depth[node]

    columns: dict[int, list[str]] = defaultdict(list)
    for node in sorted(parents):
        columns[depth_of(node)].append(node)
    position = {}
    for column, nodes in columns.items():
        for row, node in enumerate(nodes):
            position[node] = (
                column * (NODE_WIDTH + COLUMN_GAP),
                row * (NODE_HEIGHT + ROW_GAP) + 20,
            )
    width = (max(columns) + 1) * (NODE_WIDTH + COLUMN_GAP)
    height = max(len(nodes) for nodes in columns.values()) * (NODE_HEIGHT + ROW_GAP) + 30
    edges = []
    for node, node_parents in parents.items():
        x2, y2 = position[node]
        for parent in node_parents:
            x1, y1 = position[parent]
            x1, y1, y2c = x1 + NODE_WIDTH, y1 + NODE_HEIGHT / 2, y2 + NODE_HEIGHT / 2
            middle = (x1 + x2) / 2
            edges.append(
                f"<path class='edge' d='M{x1},{y1} C{middle},{y1} {middle},{y2c} {x2},{y2c}'/>"
            )
    boxes = "".join(
        _linked(
            _node(node, position[node], history, report, rows_by_relation),
            f"{docs}{pages[node]}" if node in pages else None,
        )
        for node in parents
    )
    linked = " Each node opens its page in dbt's docs." if pages else ""
    return (
        "<section id='lineage'><h2>Lineage</h2><p>From the delivered files through every "
        "dbt model to the published files and Databricks tables (the project's dbt "
        f"exposures); each node with its last run, seconds, rows and tests.{linked}</p>"
        f"<svg class='lineage' viewBox='0 0 {width} {height}' width='{width}' "
        f"height='{height}'>{''.join(edges)}{boxes}</svg></section>"
    )


def _linked(box: str, href: str | None) -> str:
    return f"<a class='docs' href='{escape(href)}'>{box}</a>" if href else box


def _node(
    node: str,
    at: tuple[float, float],
    history: RecentHistory,
    report: dict,
    rows_by_relation: dict[str, int],
) -> str:
    kind, _, name = node.partition(":") if ":" in node else ("model", "", node)
    if kind == "model" and "." in name:
        kind = "source"  # a raw table, schema.table
    short = name if kind == "file" else name.split(".")[-1]
    details = []
    if kind == "model":
        last = _last_run_of(history, name)
        details.append(f"{short_time(last[0])} · {last[1]:.1f} s" if last else "not run yet")
    elif kind == "source":
        details.append("raw table")
    elif kind == "databricks":
        export = report["metrics"].get("exports", {}).get(name, {})
        details.append(f"Databricks: {export.get('status', 'not exported')}")
    else:
        details.append("delivered" if name.split(".")[0] in DELIVERY_FILES else "published")
    rows = rows_by_relation.get(short)
    if rows is not None and kind in ("model", "source"):
        details.append(f"{rows:,} rows")
    tests = Counter(
        status
        for (model, _), status in history.checks.get(report["run_id"], {}).items()
        if kind in ("model", "source") and model == short
    )
    worst = next((status for status in STATUS_ORDER if tests.get(status)), None)
    test_line = ", ".join(f"{tests[s]} {s}" for s in STATUS_ORDER if tests.get(s)) if tests else ""
    x, y = at
    return (
        f"<g class='node {kind} {worst or 'untested'}' data-node='{escape(node)}'>"
        f"<rect x='{x}' y='{y}' width='{NODE_WIDTH}' height='{NODE_HEIGHT}' rx='6'/>"
        f"<text x='{x + 8}' y='{y + 16}' class='name'>{escape(short)}</text>"
        f"<text x='{x + 8}' y='{y + 31}'>{escape(' · '.join(details))}</text>"
        f"<text x='{x + 8}' y='{y + 45}' class='tests'>"
        f"{escape('tests: ' + test_line) if test_line else ''}</text></g>"
    )


def _last_run_of(history: RecentHistory, model: str) -> tuple[datetime, float] | None:
    for run in reversed(history.runs):
        for (metric, subject), value in history.metrics[run["run_id"]].items():
            if metric == "node_seconds" and subject.split(".")[-1] == model:
                return run["run_at"], value
    return None
