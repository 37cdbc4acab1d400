"""The run's dashboard: one self-contained HTML file that opens from disk with no network.

Written with every run, from the run history (flows/quality/history.py) and what the run
itself found, never by scanning the warehouse's tables again, for the morning check:

- the headline: outcome, rows in and published, the share quarantined, the duration
  against the usual, the anomalies (flows/quality/dashboard_headline.py);
- tonight: what is unusual (the anomaly scan), what is back to normal, the failures with
  their offending keys, and the quarantine per reason with the ids delivered;
- trends: charts on a time axis with units and tonight's expected band, for the headline's
  metrics and whatever was raised or resolved tonight; every other judged metric in a
  folded table (flows/quality/dashboard_charts.py);
- checks: each check's history as a pass/warn/fail strip, one cell per run;
- lineage: from the delivered files to the published files and Databricks tables, each
  node linked to its page in dbt's docs when they are beside the dashboard
  (flows/quality/lineage.py).

The charts are static SVG rendered here: no JavaScript, no stylesheet or font to fetch, so
the file is the same offline, in a mail attachment or in five years. Every value from the
data is HTML-escaped (a delivered id is anyone's text).
"""

from __future__ import annotations

from dataclasses import dataclass
from html import escape
from pathlib import Path

from flows.quality.anomalies import failures_besides_anomalies
from flows.quality.checks import scope_note
from flows.quality.dashboard_charts import trends_section
from flows.quality.dashboard_headline import headline
from flows.quality.history import MetricKey, RecentHistory
from flows.quality.lineage import lineage_section, short_time

DASHBOARD_NAME = "dashboard.html"
RUNS_SHOWN = 30


@dataclass(frozen=True)
class Tonight:
    """What the dashboard needs of this run beyond the history."""

    report: dict
    published: bool
    bands: dict[MetricKey, tuple[float | None, float | None]]
    quarantine_keys: dict[str, dict[str, list[str]]]
    rows_by_relation: dict[str, int]  # relation name (e.g. stg_accounts) -> rows
    published_files: tuple[str, ...]
    run_url: str | None = None  # the run in Prefect's UI, when known
    docs: str | None = None  # dbt's docs file, relative to the dashboard, when written


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
        headline(report, tonight.published, history, tonight.run_url, tonight.docs),
        _tonight_section(tonight),
        trends_section(history, report, tonight.bands),
        _checks_section(history),
        lineage_section(
            history,
            report,
            tonight.rows_by_relation,
            tonight.published_files,
            manifest,
            tonight.docs,
        ),
    ]
    return (
        "<!DOCTYPE html>\n<html lang='en'><head><meta charset='utf-8'>"
        f"<title>{escape(title)}</title><style>{STYLE}</style></head><body>"
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
    resolved = (scan or {}).get("resolved", [])
    if resolved:
        unusual += (
            "<h3>Back to normal</h3><ul id='resolved'>"
            + "".join(
                f"<li class='resolved' data-metric='{escape(a['metric'])}' "
                f"data-subject='{escape(a['subject'])}'>{escape(a['message'])}</li>"
                for a in resolved
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


# --- checks -------------------------------------------------------------------------------


def _checks_section(history: RecentHistory) -> str:
    # A check is its name on its model: one expectation can run on several tables.
    names = sorted({key for checks in history.checks.values() for key in checks})
    header = "".join(
        f"<th class='run' title='{escape(str(run['run_id']))}'>{short_time(run['run_at'])}</th>"
        for run in history.runs
    )
    rows = []
    for model, name in names:
        cells = "".join(
            f"<td class='cell {history.checks[run['run_id']].get((model, name), 'absent')}' "
            f"title='{escape(short_time(run['run_at']))}: "
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


STYLE = """
body{font:14px/1.4 system-ui,sans-serif;margin:24px;color:#1d2330;background:#fbfbfc}
h1{font-size:20px}h2{margin-top:32px;border-bottom:1px solid #dde;padding-bottom:4px}
.lede{color:#555}.calm{color:#2f7d32}.stopped{color:#b3261e}
li.anomaly.warning b{color:#9a6700}li.anomaly.blocking b,li.failure.error b{color:#b3261e}
table{border-collapse:collapse}td,th{padding:2px 6px;text-align:left}td.n{text-align:right}
.grid{display:flex;flex-wrap:wrap;gap:10px}
#headline h1 a{color:inherit}
dl.figures{display:flex;flex-wrap:wrap;gap:10px;margin:8px 0}
dl.figures div{background:#fff;border:1px solid #e3e5ea;border-radius:6px;padding:6px 12px}
dl.figures dt{font-size:12px;color:#555}dl.figures dd{margin:0;font-size:18px;font-weight:600}
#headline.failed [data-figure=outcome] dd,div.figure.alert dd{color:#b3261e}
#headline.warned [data-figure=outcome] dd{color:#9a6700}
#headline.passed [data-figure=outcome] dd{color:#2f7d32}
li.resolved{color:#2f7d32}
figure.trend{margin:0;background:#fff;border:1px solid #e3e5ea;border-radius:6px;padding:4px}
figcaption{font-size:12px;color:#444;padding:0 6px}
details#long-tail{margin-top:12px}details#long-tail summary{cursor:pointer}
tr.metric.outside td{color:#b3261e}
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
