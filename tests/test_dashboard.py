"""The dashboard drawn from a hand-made report and history, without a run: the headline's
figures, the title's link, the charts' time axis and band, the anomalies back to normal,
and the lineage's links into dbt's docs. (tests/test_run_history.py opens the dashboard of
real runs in a browser.)"""

from __future__ import annotations

import json
import re
from datetime import datetime, timedelta
from itertools import pairwise

from flows.quality.dashboard import Tonight, render_dashboard
from flows.quality.history import RecentHistory
from flows.quality.lineage import docs_pages, lineage_graph

START = datetime(2026, 11, 20, 2, 0)
# Four nights, the third two days after the second (a missed night).
RUN_TIMES = [START, START + timedelta(days=1), START + timedelta(days=3), START + timedelta(days=4)]
ACCOUNTS = [63.0, 63.0, 64.0, 63.0]


def history() -> RecentHistory:
    runs, metrics = [], {}
    for number, (at, accounts) in enumerate(zip(RUN_TIMES, ACCOUNTS, strict=True)):
        run_id = f"run-{number}"
        runs.append({"run_id": run_id, "run_at": at, "outcome": "passed", "published": True,
                     "processed_delivery": True})  # fmt: skip
        metrics[run_id] = {
            ("rows_delivered", "accounts"): accounts,
            ("rows_delivered", "customers"): 40.0,
            ("rows_published", "account_summary"): accounts - 30,
            ("quarantine_rate", "accounts.invalid_balance"): 0.1,
            ("step_seconds", "ingest"): 2.0 + number,
            ("step_seconds", "staging"): 4.0,
            ("change_set", "accounts"): 5.0 + number,
        }
    return RecentHistory(runs, metrics, {run["run_id"]: {} for run in runs})


def report(resolved: list[dict]) -> dict:
    return {
        "run_id": "run-3",
        "timestamp": "2026-11-24T02:00:00Z",
        "status": "passed",
        "summary": {"total_tests": 10, "passed": 10, "failed": 0, "warned": 0},
        "failures": [],
        "quarantine": {"accounts": {"invalid_balance": 6}, "customers": {}},
        "metrics": {
            "rows": {
                "accounts": {"delivered": 63, "account_summary": 33},
                "customers": {"delivered": 40, "customer_profile": 21},
            },
            "duration_seconds": {"ingest": 5.0, "staging": 4.0},
            "anomalies": {
                "training_runs": 3,
                "metrics_judged": 4,
                "metrics_waiting_for_history": 0,
                "raised": [],
                "resolved": resolved,
            },
        },
    }


RESOLVED = {
    "metric": "change_set",
    "subject": "accounts",
    "value": 8.0,
    "expected_low": None,
    "expected_high": 60.0,
    "raised_in_run": "run-2",
    "message": "change_set of accounts is 8 tonight, back within the expected range (up to 60)",
}
BANDS = {("rows_delivered", "accounts"): (23.0, 103.0), ("change_set", "accounts"): (None, 60.0)}


def render(resolved=(), run_url=None, docs=None, manifest=None) -> str:
    tonight = Tonight(report(list(resolved)), True, BANDS, {}, {}, (), run_url, docs)
    return render_dashboard(history(), tonight, manifest)


def figure(html: str, name: str) -> str:
    return re.search(rf"data-figure='{name}'><dt>[^<]*</dt><dd>([^<]*)</dd>", html).group(1)


def test_the_headline_gives_tonight_against_the_usual():
    html = render()
    assert figure(html, "outcome") == "passed, published"
    assert figure(html, "rows-in") == "103"
    assert figure(html, "rows-published") == "54"
    assert figure(html, "quarantine-rate") == "5.83%"  # 6 of 103
    # Tonight 5 + 4 s; the usual, the median of 6, 7 and 8 s.
    assert figure(html, "duration") == "9.0 s (usual 7.0 s)"
    assert figure(html, "anomalies") == "0"
    assert "<h1>Ledgerflow run run-3: passed</h1>" in html  # no address known: no link


def test_the_title_links_to_the_run_when_its_address_is_known():
    html = render(run_url="http://127.0.0.1:4200/flow-runs/flow-run/run-3")
    assert "<h1><a href='http://127.0.0.1:4200/flow-runs/flow-run/run-3'>" in html


def test_the_charts_place_runs_by_time_and_name_their_units():
    html = render()
    chart = html[html.index("data-metric='rows_delivered' data-subject='accounts'") :]
    chart = chart[: chart.index("</figure>")]
    texts = re.findall(r"<text[^>]*>([^<]*)</text>", chart)
    assert "run time (UTC)" in texts and "rows" in texts
    assert any(re.fullmatch(r"\d\d-\d\d \d\d:\d\d", text) for text in texts)
    assert "band_marks" in chart  # judged: the expected band is drawn
    assert "expected 23 to 103" in chart
    # The points' x follow the runs' times: the gap of the missed night is twice as wide.
    symbols = re.search(r'class="mark-symbol role-mark layer_\d+_layer_\d+_marks"[^>]*>(.*?)</g>',
                        chart).group(1)  # fmt: skip
    xs = [float(x) for x in re.findall(r'transform="translate\(([\d.]+),', symbols)]
    gaps = [b - a for a, b in pairwise(xs)]
    assert len(xs) == 4 and abs(gaps[1] - 2 * gaps[0]) < 1 and abs(gaps[2] - gaps[0]) < 1


def test_the_long_tail_is_folded_away():
    html = render()
    tail = html[html.index("<details id='long-tail'>") :]
    tail = tail[: tail.index("</details>")]
    assert "data-metric='step_seconds' data-subject='ingest'" in tail
    assert "data-metric='rows_delivered'" not in tail  # charted above


def test_anomalies_back_to_normal_are_listed_and_charted():
    html = render(resolved=[RESOLVED])
    assert (
        "<li class='resolved' data-metric='change_set' data-subject='accounts'>"
        f"{RESOLVED['message']}</li>"
    ) in html
    assert figure(html, "anomalies") == "0 (1 back to normal)"
    assert "<figure class='trend' data-metric='change_set' data-subject='accounts'" in html
    assert "Back to normal" not in render()


MANIFEST = {
    "nodes": {
        "model.ledgerflow.account_summary": {
            "resource_type": "model", "name": "account_summary", "schema": "marts",
            "depends_on": {"nodes": ["source.ledgerflow.raw.accounts"]},
        },
    },
    "sources": {
        "source.ledgerflow.raw.accounts": {
            "resource_type": "source", "name": "accounts", "schema": "raw",
        },
    },
    "exposures": {
        "exposure.ledgerflow.published_files": {
            "meta": {"dashboard_nodes": "file"},
            "depends_on": {"nodes": ["model.ledgerflow.account_summary"]},
        },
        "exposure.ledgerflow.databricks_tables": {
            "meta": {"dashboard_nodes": "databricks"},
            "depends_on": {"nodes": ["model.ledgerflow.account_summary"]},
        },
    },
}  # fmt: skip


def test_each_lineage_node_links_to_its_page_in_the_docs(tmp_path):
    graph = lineage_graph(MANIFEST, ("account_summary.csv",))
    assert docs_pages(MANIFEST, graph) == {
        "account_summary": "#!/model/model.ledgerflow.account_summary",
        "raw.accounts": "#!/source/source.ledgerflow.raw.accounts",
        "file:account_summary.csv": "#!/exposure/exposure.ledgerflow.published_files",
        "databricks:account_summary": "#!/exposure/exposure.ledgerflow.databricks_tables",
    }
    manifest = tmp_path / "manifest.json"
    manifest.write_text(json.dumps(MANIFEST))
    html = render(docs="dbt_docs.html", manifest=manifest)
    assert "<a id='dbt-docs' href='dbt_docs.html'>" in html
    assert (
        "<a class='docs' href='dbt_docs.html#!/model/model.ledgerflow.account_summary'>"
        "<g class='node model untested' data-node='account_summary'>"
    ) in html
    assert "<a class='docs'" not in render(manifest=manifest)  # no docs written: no links
