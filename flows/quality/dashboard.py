"""The run's dashboard: one self-contained HTML file that opens from disk with no network.

Written with every run, from the run history (flows/quality/history.py) and what the run
itself found, never by scanning the warehouse's tables again:

- tonight: the outcome, what is unusual (the anomaly scan), the failures with their
  offending keys, and the quarantine per reason with the ids delivered;
- trends: one plot per metric an anomaly rule judges, over the last runs, with tonight's
  expected band and tonight's point marked;
- checks: each check's history as a pass/warn/fail strip, one cell per run;
- lineage: the two delivered files through every dbt model to the published files and the
  Databricks tables, from dbt's manifest, each node with its last run, seconds, rows and
  the status of its tests.

The plots are inline SVG written here: no JavaScript, no stylesheet or font to fetch, so
the file is the same offline, in a mail attachment or in five years. Every value from the
data is HTML-escaped (a delivered id is anyone's text).
"""

from __future__ import annotations

import json
from collections import Counter, defaultdict
from dataclasses import dataclass
from datetime import datetime
from html import escape
from pathlib import Path

from flows.config import DEFAULT_ANOMALY_RULES
from flows.contract import DELIVERY_FILES, PUBLISHED_MARTS
from flows.quality.anomalies import failures_besides_anomalies, shown_value
from flows.quality.checks import scope_note
from flows.quality.history import MetricKey, RecentHistory

DASHBOARD_NAME = "dashboard.html"
RUNS_SHOWN = 30
STATUS_ORDER = ("fail", "warn", "pass")


@dataclass(frozen=True)
class Tonight:
    """What the dashboard needs of this run beyond the history."""

    report: dict
    published: bool
    bands: dict[MetricKey, tuple[float | None, float | None]]
    quarantine_keys: dict[str, dict[str, list[str]]]
    rows_by_relation: dict[str, int]  # relation name (e.g. stg_accounts) -> rows
    published_files: tuple[str, ...]


def dashboard_link(path: Path) -> tuple[str, str]:
    """Where a person finds a written dashboard: its absolute path, and its file:// URL
    for a browser (or a chat client) that takes links."""
    absolute = path.resolve()
    return str(absolute), absolute.as_uri()


def dashboard_location(path: Path) -> str:
    """The dashboard's path and URL as a line of text names them."""
    shown, url = dashboard_link(path)
    return f"{shown} ({url})"


def render_dashboard(history: RecentHistory, tonight: Tonight, manifest: Path | None) -> str:
    report = tonight.report
    title = f"Ledgerflow run {report['run_id']}: {report['status']}"
    sections = [
        _tonight_section(tonight),
        _trends_section(history, tonight),
        _checks_section(history),
        _lineage_section(history, tonight, manifest),
    ]
    return (
        "<!DOCTYPE html>\n<html lang='en'><head><meta charset='utf-8'>"
        f"<title>{escape(title)}</title><style>{STYLE}</style></head><body>"
        f"<h1>{escape(title)}</h1>"
        f"<p class='lede'>Run at {escape(report['timestamp'])}; outputs "
        f"{'published' if tonight.published else 'NOT published'}; "
        f"{report['summary']['passed']} of {report['summary']['total_tests']} checks passed. "
        f"History: the last {len(history.runs)} runs of this warehouse.</p>"
        + "".join(sections)
        + "</body></html>\n"
    )


# --- tonight ------------------------------------------------------------------------------


def _tonight_section(tonight: Tonight) -> str:
    report = tonight.report
    scan = report["metrics"].get("anomalies")
    raised = scan["raised"] if scan else []
    if scan is None:
        unusual = "<p>Not scanned: this run processed no new delivery.</p>"
    elif not raised:
        unusual = (
            f"<p class='calm'>Nothing unusual: {scan['metrics_judged']} metrics judged "
            f"against {scan['training_runs']} earlier runs, "
            f"{scan['metrics_waiting_for_history']} still building their history.</p>"
        )
    else:
        unusual = (
            "<ul>"
            + "".join(
                f"<li class='anomaly {'blocking' if a['blocking'] else 'warning'}' "
                f"data-metric='{escape(a['metric'])}' data-subject='{escape(a['subject'])}'>"
                f"<b>{'blocking' if a['blocking'] else 'warning'}</b> {escape(a['message'])}</li>"
                for a in raised
            )
            + "</ul>"
        )
    failures = failures_besides_anomalies(report)
    failed = (
        "<ul>"
        + "".join(
            f"<li class='failure {escape(f['severity'])}'><b>{escape(f['test'])}</b> on "
            f"{escape(f['model'])}{escape(scope_note(f))}: {escape(f['message'])}</li>"
            for f in failures
        )
        + "</ul>"
        if failures
        else "<p class='calm'>No check failed or warned.</p>"
    )
    stopped = report["metrics"].get("stopped_at")
    stop = (
        f"<p class='stopped'>Stopped at <b>{escape(stopped['step'])}</b>: "
        f"{escape(str(stopped['error']))}</p>"
        if stopped
        else ""
    )
    quarantine_rows = "".join(
        f"<tr class='quarantine'><td>{escape(table)}</td><td>{escape(reason)}</td>"
        f"<td class='n'>{count}</td>"
        f"<td>{_ids(tonight.quarantine_keys.get(table, {}).get(reason, []), count)}</td></tr>"
        for table, reasons in report["quarantine"].items()
        for reason, count in reasons.items()
    )
    quarantine = (
        "<table><tr><th>table</th><th>reason</th><th>rows</th><th>ids delivered</th></tr>"
        f"{quarantine_rows}</table>"
        if quarantine_rows
        else "<p class='calm'>Nothing quarantined.</p>"
    )
    return (
        "<section id='tonight'><h2>Tonight</h2>"
        f"{stop}<h3>Unusual tonight</h3><div id='anomalies'>{unusual}</div>"
        f"<h3>Failures and warnings</h3>{failed}<h3>Quarantine</h3>{quarantine}</section>"
    )


def _ids(ids: list[str], count: int) -> str:
    """The delivered ids, a blank one said so, and how many more there are."""
    shown = ", ".join(f"<code>{escape(i)}</code>" if i.strip() else "<i>blank</i>" for i in ids)
    more = count - len(ids)
    return shown + (f" and {more} more" if more > 0 else "")


# --- trends -------------------------------------------------------------------------------

PLOT_WIDTH, PLOT_HEIGHT, PAD = 260, 90, 6


def _trends_section(history: RecentHistory, tonight: Tonight) -> str:
    tonight_id = tonight.report["run_id"]
    keys = sorted(history.metrics.get(tonight_id, {}))
    by_metric: dict[str, list[MetricKey]] = defaultdict(list)
    for key in keys:
        if key[0] in DEFAULT_ANOMALY_RULES:
            by_metric[key[0]].append(key)
    groups = []
    for metric in DEFAULT_ANOMALY_RULES:
        if not by_metric.get(metric):
            continue
        plots = "".join(_trend(history, key, tonight) for key in by_metric[metric])
        groups.append(f"<h3>{escape(metric)}</h3><div class='grid'>{plots}</div>")
    body = "".join(groups) or "<p>No metrics recorded yet.</p>"
    return (
        "<section id='trends'><h2>Trends</h2><p>Each point is a run (oldest left, tonight "
        "the large dot); the shaded band is tonight's expected range, where the metric "
        f"has enough history to be judged.</p>{body}</section>"
    )


def _trend(history: RecentHistory, key: MetricKey, tonight: Tonight) -> str:
    points = [
        (index, history.metrics[run["run_id"]][key])
        for index, run in enumerate(history.runs)
        if key in history.metrics[run["run_id"]]
    ]
    metric, subject = key
    band = tonight.bands.get(key)
    values = [v for _, v in points] + [b for b in (band or ()) if b is not None]
    low, high = min(values), max(values)
    if high == low:
        low, high = low - 1, high + 1
    count = max(len(history.runs) - 1, 1)

    def x(index: float) -> float:
        return PAD + (PLOT_WIDTH - 2 * PAD) * index / count

    def y(value: float) -> float:
        return PLOT_HEIGHT - PAD - (PLOT_HEIGHT - 2 * PAD) * (value - low) / (high - low)

    shapes = []
    if band is not None:
        top = y(band[1]) if band[1] is not None else 0
        bottom = y(band[0]) if band[0] is not None else PLOT_HEIGHT
        shapes.append(
            f"<rect class='band' x='0' y='{top:.1f}' width='{PLOT_WIDTH}' "
            f"height='{max(bottom - top, 1):.1f}'/>"
        )
    line = " ".join(f"{x(i):.1f},{y(v):.1f}" for i, v in points)
    shapes.append(f"<polyline class='series' points='{line}'/>")
    shapes.extend(
        f"<circle class='point' cx='{x(i):.1f}' cy='{y(v):.1f}' r='2'/>" for i, v in points[:-1]
    )
    last_index, last_value = points[-1]
    shown = escape(shown_value(metric, last_value))
    outside = band is not None and (
        (band[0] is not None and last_value < band[0])
        or (band[1] is not None and last_value > band[1])
    )
    shapes.append(
        f"<circle class='tonight{' outside' if outside else ''}' cx='{x(last_index):.1f}' "
        f"cy='{y(last_value):.1f}' r='4'><title>tonight: {shown}</title></circle>"
    )
    judged = "judged" if band is not None else "building history"
    return (
        f"<figure class='trend' data-metric='{escape(metric)}' data-subject='{escape(subject)}'>"
        f"<svg viewBox='0 0 {PLOT_WIDTH} {PLOT_HEIGHT}' width='{PLOT_WIDTH}' "
        f"height='{PLOT_HEIGHT}' role='img'>{''.join(shapes)}</svg>"
        f"<figcaption>{escape(subject)}<br><b>{shown}</b> <i>{judged}</i></figcaption>"
        "</figure>"
    )


# --- checks -------------------------------------------------------------------------------


def _checks_section(history: RecentHistory) -> str:
    # A check is its name on its model: one expectation can run on several tables.
    names = sorted({key for checks in history.checks.values() for key in checks})
    header = "".join(
        f"<th class='run' title='{escape(str(run['run_id']))}'>{_short_time(run['run_at'])}</th>"
        for run in history.runs
    )
    rows = []
    for model, name in names:
        cells = "".join(
            f"<td class='cell {history.checks[run['run_id']].get((model, name), 'absent')}' "
            f"title='{escape(_short_time(run['run_at']))}: "
            f"{history.checks[run['run_id']].get((model, name), 'not run')}'></td>"
            for run in history.runs
        )
        rows.append(
            f"<tr class='check' data-model='{escape(model)}' data-check='{escape(name)}'>"
            f"<th>{escape(model)} · {escape(name)}</th>{cells}</tr>"
        )
    table = (
        f"<table class='strip'><tr><th>check</th>{header}</tr>{''.join(rows)}</table>"
        if rows
        else "<p>No checks recorded yet.</p>"
    )
    return (
        "<section id='checks'><h2>Checks, run by run</h2><p>Green passed, amber warned, "
        f"red failed, grey did not run.</p>{table}</section>"
    )


def _short_time(moment: datetime) -> str:
    return moment.strftime("%m-%d %H:%M")


# --- lineage ------------------------------------------------------------------------------

NODE_WIDTH, NODE_HEIGHT, COLUMN_GAP, ROW_GAP = 200, 52, 50, 14


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
    names = {
        unique_id: (
            f"{node['schema']}.{node['name']}"
            if node["resource_type"] == "source"
            else node["name"]
        )
        for unique_id, node in {**manifest.get("nodes", {}), **manifest.get("sources", {})}.items()
    }
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


def _lineage_section(history: RecentHistory, tonight: Tonight, manifest: Path | None) -> str:
    if manifest is None or not manifest.is_file():
        return "<section id='lineage'><h2>Lineage</h2><p>No dbt manifest yet.</p></section>"
    parents = lineage_graph(json.loads(manifest.read_text()), tonight.published_files)
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
    boxes = "".join(_lineage_node(node, position[node], history, tonight) for node in parents)
    return (
        "<section id='lineage'><h2>Lineage</h2><p>From the delivered files through every "
        "dbt model to the published files and Databricks tables; each node with its last "
        "run, seconds, rows and tests.</p>"
        f"<svg class='lineage' viewBox='0 0 {width} {height}' width='{width}' "
        f"height='{height}'>{''.join(edges)}{boxes}</svg></section>"
    )


def _lineage_node(
    node: str, at: tuple[float, float], history: RecentHistory, tonight: Tonight
) -> str:
    kind, _, name = node.partition(":") if ":" in node else ("model", "", node)
    if kind == "model" and "." in name:
        kind = "source"  # a raw table, schema.table
    short = name if kind == "file" else name.split(".")[-1]
    details = []
    if kind == "model":
        last = _last_run_of(history, name)
        details.append(f"{_short_time(last[0])} · {last[1]:.1f} s" if last else "not run yet")
    elif kind == "source":
        details.append("raw table")
    elif kind == "databricks":
        export = tonight.report["metrics"].get("exports", {}).get(name, {})
        details.append(f"Databricks: {export.get('status', 'not exported')}")
    else:
        details.append("delivered" if name.split(".")[0] in DELIVERY_FILES else "published")
    rows = tonight.rows_by_relation.get(short)
    if rows is not None and kind in ("model", "source"):
        details.append(f"{rows:,} rows")
    tests = Counter(
        status
        for (model, _), status in history.checks.get(tonight.report["run_id"], {}).items()
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


STYLE = """
body{font:14px/1.4 system-ui,sans-serif;margin:24px;color:#1d2330;background:#fbfbfc}
h1{font-size:20px}h2{margin-top:32px;border-bottom:1px solid #dde;padding-bottom:4px}
.lede{color:#555}.calm{color:#2f7d32}.stopped{color:#b3261e}
li.anomaly.warning b{color:#9a6700}li.anomaly.blocking b,li.failure.error b{color:#b3261e}
table{border-collapse:collapse}td,th{padding:2px 6px;text-align:left}td.n{text-align:right}
.grid{display:flex;flex-wrap:wrap;gap:10px}
figure.trend{width:260px;margin:0;background:#fff;border:1px solid #e3e5ea;border-radius:6px;padding:4px}
figcaption{font-size:12px;color:#444}
rect.band{fill:#d6e9d8}polyline.series{fill:none;stroke:#4a6fa5;stroke-width:1.5}
circle.point{fill:#4a6fa5}circle.tonight{fill:#1d2330}circle.tonight.outside{fill:#d93025}
table.strip th{font-weight:normal;font-size:12px;white-space:nowrap;max-width:520px;
overflow:hidden;text-overflow:ellipsis}
table.strip th.run{writing-mode:vertical-rl;font-size:10px;color:#666}
td.cell{width:10px;height:14px;padding:0;border:1px solid #fff}
td.pass{background:#4caf50}td.warn{background:#f2b600}td.fail{background:#d93025}
td.absent{background:#e6e6e6}
svg.lineage{background:#fff;border:1px solid #e3e5ea;border-radius:6px}
path.edge{fill:none;stroke:#9aa5b8;stroke-width:1.2}
g.node rect{fill:#eef2f8;stroke:#9aa5b8}g.node.pass rect{fill:#e6f4e7;stroke:#4caf50}
g.node.warn rect{fill:#fff6d6;stroke:#f2b600}g.node.fail rect{fill:#fde7e5;stroke:#d93025}
g.node text{font-size:11px}g.node text.name{font-weight:600;font-size:12px}
g.node text.tests{fill:#555}
"""
