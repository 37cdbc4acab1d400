"""The run history and the anomaly scan in whole `ledgerflow run`s on one warehouse.

Two ordinary deliveries make the history (the minimum history is lowered to two for the
volume rule, through the one setting operators use); the third delivers 80% fewer
accounts: the run publishes with a warning, and the anomaly is in the report, the Slack
message received on loopback and `ledgerflow status`. The fourth does it again with the
volume rule set to block: nothing is published, the warehouse is as the third left it,
and the failed run is in the history with the anomaly that stopped it. The dashboard each
run writes is opened in headless Chromium with the network off and read from its DOM, and
its lineage opens dbt's docs written beside it.
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import sys

import duckdb
import pytest
from conftest import CONTRACT_DATA_FILES, SAMPLE_DIR, copy_sample
from slack_receiver import SlackReceiver
from test_write_audit_publish import dump

from flows.cli import main
from flows.config import ANOMALY_RULES_VAR, PROJECT_ROOT
from flows.steps.dbt_docs import docs_fingerprint
from flows.steps.step_cache import code_fingerprint

VOLUME_RULE = {"rows_delivered": {"min_history": 2}}


def run(delivery, paths) -> int:
    return main(
        ["run", "--input-dir", str(delivery), "--output-dir", str(paths["output"]),
         "--warehouse", str(paths["warehouse"])]
    )  # fmt: skip


def fewer_accounts(folder, keep: int):
    """The sample with only its first `keep` accounts."""
    delivery = copy_sample(folder)
    lines = (delivery / "accounts.csv").read_text(encoding="utf-8").splitlines(keepends=True)
    (delivery / "accounts.csv").write_text("".join(lines[: keep + 1]), encoding="utf-8")
    return delivery


def changed_balance(folder):
    delivery = copy_sample(folder)
    accounts = (delivery / "accounts.csv").read_text(encoding="utf-8")
    (delivery / "accounts.csv").write_text(accounts.replace("5000.00", "5300.00", 1), "utf-8")
    return delivery


def history_runs(warehouse):
    with duckdb.connect(str(warehouse)) as con:
        return con.execute(
            "select run_id, outcome, published, processed_delivery, stopped_at "
            "from history.runs order by run_at"
        ).fetchall()


@pytest.fixture(scope="module")
def nights(prefect_harness, tmp_path_factory):
    root = tmp_path_factory.mktemp("history")
    paths = {"warehouse": root / "warehouse.duckdb", "output": root / "output"}
    with pytest.MonkeyPatch.context() as env:
        env.setenv(ANOMALY_RULES_VAR, json.dumps(VOLUME_RULE))
        assert run(SAMPLE_DIR, paths) == 0
        assert run(changed_balance(root / "second"), paths) == 0
        with SlackReceiver() as slack:
            env.setenv("SLACK_WEBHOOK_URL", slack.url)
            assert run(fewer_accounts(root / "third", keep=12), paths) == 0
            slack_text = slack.wait_for("Unusual tonight")
    return {**paths, "root": root, "slack": slack_text}


def test_every_run_is_recorded_with_what_it_measured(nights):
    runs = history_runs(nights["warehouse"])
    assert [run[1:] for run in runs] == [("warned", True, True, None)] * 3
    with duckdb.connect(str(nights["warehouse"])) as con:
        delivered = con.execute(
            "select m.value from history.metrics as m inner join history.runs as r using (run_id) "
            "where m.metric = 'rows_delivered' and m.subject = 'accounts' order by r.run_at"
        ).fetchall()
        steps = con.execute(
            "select list(subject order by subject) from history.metrics "
            "where metric = 'step_seconds' and run_id = ?",
            [runs[0][0]],
        ).fetchone()[0]
        checks = con.execute(
            "select count(*), count(*) filter (where status = 'warn') from history.checks "
            "where run_id = ?",
            [runs[0][0]],
        ).fetchone()
        columns = con.execute(
            "select list(column_name order by position) from history.delivered_columns "
            "where run_id = ? and file = 'accounts.csv'",
            [runs[0][0]],
        ).fetchone()[0]
    assert delivered == [(63.0,), (63.0,), (12.0,)]
    assert {"ingest", "staging", "marts", "publish", "export"} <= set(steps)
    report = json.loads((nights["output"] / "quality_report.json").read_text())
    # The first run's 95 checks, its 3 warnings (two quarantine rates, accounts.csv's extra
    # column); tonight's, the anomaly's warning with them.
    assert checks == (95, 3)
    assert report["summary"]["total_tests"] == 96
    assert columns == ["accountid", "customerid", "branchcode", "balance", "accounttype"]


def test_a_volume_drop_is_a_warning_in_the_report_and_in_slack(nights):
    report = json.loads((nights["output"] / "quality_report.json").read_text())
    scan = report["metrics"]["anomalies"]
    assert scan["training_runs"] == 2
    (raised,) = scan["raised"]
    assert (raised["metric"], raised["subject"], raised["value"]) == (
        "rows_delivered",
        "accounts",
        12,
    )
    assert (raised["expected_low"], raised["expected_high"], raised["blocking"]) == (23, 103, False)
    assert report["status"] == "warned"
    assert {"test": "anomaly_rows_delivered_accounts", "model": "accounts", "severity": "warn",
            "message": raised["message"], "scope": "whole table"} in report["failures"]  # fmt: skip
    text = nights["slack"]
    assert "outputs published" in text
    dashboard = nights["output"] / "dashboard.html"
    assert f"Dashboard: {dashboard} ({dashboard.as_uri()})" in text.splitlines()
    assert dashboard.is_file()
    assert (
        "• warning rows_delivered of accounts is 12 tonight (below the expected range: "
        "23 to 103; median 63 over the last 2 runs)"
    ) in text


def test_status_lists_the_runs_and_what_was_unusual(nights, capsys):
    main(["status", "--warehouse", str(nights["warehouse"])])
    out = capsys.readouterr().out
    history = out[out.index("Run history in") :].splitlines()
    assert history[0] == f"Run history in {nights['warehouse']} (last 3 runs):"
    assert history[1].endswith("(no deployment): warned, published")
    assert history[2] == (
        "    unusual: rows_delivered of accounts is 12 tonight (below the expected range: "
        "23 to 103; median 63 over the last 2 runs)"
    )
    assert len(history) == 5


def test_a_blocking_rule_stops_the_publish_and_the_failed_run_is_recorded(nights, monkeypatch):
    paths = {"warehouse": nights["warehouse"], "output": nights["output"]}
    files = {name: (nights["output"] / name).read_bytes() for name in CONTRACT_DATA_FILES}
    before = dump(nights["warehouse"])
    monkeypatch.setenv(
        ANOMALY_RULES_VAR, json.dumps({"rows_delivered": {"min_history": 2, "blocking": True}})
    )

    assert run(fewer_accounts(nights["root"] / "fourth", keep=10), paths) == 1

    assert {name: (nights["output"] / name).read_bytes() for name in CONTRACT_DATA_FILES} == files
    assert dump(nights["warehouse"]) == before
    failed = json.loads((nights["output"] / "failed" / "quality_report.json").read_text())
    assert failed["metrics"]["stopped_at"]["step"] == "audit"
    assert "anomaly_rows_delivered_accounts" in failed["metrics"]["stopped_at"]["error"]
    assert failed["metrics"]["anomalies"]["raised"][0]["blocking"] is True
    assert history_runs(nights["warehouse"])[-1][1:] == ("failed", False, True, "audit")
    with duckdb.connect(str(nights["warehouse"])) as con:
        recorded = con.execute(
            "select metric, subject, value, blocking from history.anomalies where run_id = ?",
            [failed["run_id"]],
        ).fetchall()
    assert recorded == [("rows_delivered", "accounts", 10.0, True)]


# --- the dashboard, in a real headless browser with the network off -----------------------

CHROMIUM_INSTALL = "apt-get update && apt-get install -y chromium"
ARTIFACTS = PROJECT_ROOT / ".test-artifacts"


def chromium() -> str:
    """The system's Chromium (Playwright's own downloads are not used); its absence fails
    the test with the command that installs it, never a skip."""
    for name in ("chromium", "chromium-browser"):
        found = shutil.which(name)
        if found:
            return found
    pytest.fail(f"Chromium is not installed; install it with: {CHROMIUM_INSTALL}")


@pytest.fixture(scope="module")
def browser():
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        launched = playwright.chromium.launch(executable_path=chromium(), args=["--no-sandbox"])
        yield launched
        launched.close()


def open_offline(browser, path):
    """The page from disk in a context with the network off; returns it and the requests it
    tried beyond its own file."""
    context = browser.new_context(offline=True, viewport={"width": 1400, "height": 900})
    tried = []
    context.route(
        "**/*",
        lambda route: route.continue_() if route.request.url.startswith("file://")
        else (tried.append(route.request.url), route.abort()),
    )  # fmt: skip
    page = context.new_page()
    page.goto(path.as_uri())
    return page, tried


def test_the_dashboard_renders_offline_the_headline_charts_checks_lineage_and_anomaly(
    nights, browser
):
    page, tried = open_offline(browser, nights["output"] / "dashboard.html")
    ARTIFACTS.mkdir(exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / "dashboard.png"), full_page=True)
    assert tried == []

    report = json.loads((nights["output"] / "quality_report.json").read_text())
    headline = {
        name: page.locator(f"#headline [data-figure='{name}'] dd").inner_text()
        for name in ("outcome", "rows-in", "rows-published", "quarantine-rate", "duration",
                     "anomalies")
    }  # fmt: skip
    rows = report["metrics"]["rows"]
    quarantined = sum(sum(reasons.values()) for reasons in report["quarantine"].values())
    assert headline["outcome"] == "warned, published"
    assert headline["rows-in"] == "52"  # 12 accounts and the 40 customers
    assert headline["rows-published"] == str(
        rows["accounts"]["account_summary"] + rows["customers"]["customer_profile"]
    )
    assert headline["quarantine-rate"] == f"{quarantined / 52:.2%}"
    assert re.fullmatch(r"\d+\.\d s \(usual \d+\.\d s\)", headline["duration"])
    assert headline["anomalies"] == "1"
    # A run of the session's Prefect server, whose UI address is configured.
    title = page.locator("#headline h1 a")
    assert title.get_attribute("href").endswith(f"/flow-run/{report['run_id']}")

    anomaly = page.locator("#anomalies li.anomaly")
    assert anomaly.count() == 1
    assert anomaly.get_attribute("data-metric") == "rows_delivered"
    assert "rows_delivered of accounts is 12 tonight" in anomaly.inner_text()

    # The charts: static SVG, their axes' titles and time labels read as text.
    volume = page.locator("figure.trend[data-metric='rows_delivered'][data-subject='accounts']")
    titles = volume.locator("svg .role-axis-title text").all_text_contents()
    assert titles == ["run time (UTC)", "rows"]
    labels = volume.locator("svg .role-axis-label text").all_text_contents()
    # The runs' times, to the second: the three runs are seconds apart.
    assert any(re.fullmatch(r"\d\d-\d\d \d\d:\d\d:\d\d", label) for label in labels), labels
    assert volume.locator("svg .band_marks").count() == 1  # judged: its band is drawn
    assert volume.get_attribute("data-outside") == "true"  # and tonight is outside it
    assert volume.locator("svg .tonight_label_marks text").text_content() == "12"
    assert "expected 23 to 103" in volume.locator("figcaption").inner_text()
    box = volume.locator("svg").bounding_box()
    assert box["width"] > 300 and box["height"] > 120  # laid out, not an empty element
    duration = page.locator("figure.trend[data-metric='step_seconds'][data-subject='run']")
    assert duration.locator("svg .usual_marks").count() == 1  # the median, dashed
    assert page.locator("svg script").count() == 0  # no JavaScript anywhere

    tail = page.locator("details#long-tail")
    assert tail.get_attribute("open") is None  # folded away
    staging = tail.locator("tr.metric[data-metric='step_seconds'][data-subject='staging']")
    assert "building history" in staging.text_content()

    checks = page.locator("#checks tr.check")
    assert checks.count() >= 94
    warned = page.locator("#checks tr.check[data-check='quarantine_rate_customers'] td.cell")
    assert [warned.nth(i).get_attribute("class") for i in range(warned.count())] == [
        "cell warn"
    ] * 3
    new = page.locator("#checks tr.check[data-check='anomaly_rows_delivered_accounts'] td.cell")
    assert [new.nth(i).get_attribute("class") for i in range(3)] == [
        "cell absent", "cell absent", "cell warn"
    ]  # fmt: skip

    nodes = {
        page.locator("g.node").nth(i).get_attribute("data-node")
        for i in range(page.locator("g.node").count())
    }
    assert {
        "file:accounts.csv", "raw.accounts", "base_accounts_validated", "stg_accounts",
        "accounts_snapshot", "int_accounts_joined_to_customers", "account_summary",
        "file:account_summary.csv", "file:account_summary.parquet", "databricks:account_summary",
    } <= nodes  # fmt: skip
    assert page.locator("svg.lineage path.edge").count() >= len(nodes) - 2
    mart = page.locator("g.node[data-node='account_summary']").text_content()  # SVG
    assert "rows" in mart and " s" in mart and "pass" in mart
    assert (
        "Databricks: skipped"
        in page.locator("g.node[data-node='databricks:account_summary']").text_content()
    )

    quarantine = page.locator("tr.quarantine", has_text="invalid_has_loan").locator("td")
    assert [quarantine.nth(i).inner_text() for i in range(4)] == [
        "customers", "invalid_has_loan", "3", "13, 14, 15"
    ]  # fmt: skip  # the offending ids, as delivered
    page.context.close()


def test_the_lineage_opens_each_nodes_page_in_dbt_docs_offline(nights, browser):
    docs = nights["output"] / "dbt_docs.html"
    assert docs_fingerprint(docs) == code_fingerprint()  # made from this code
    page, tried = open_offline(browser, nights["output"] / "dashboard.html")
    assert page.locator("#dbt-docs").get_attribute("href") == "dbt_docs.html"
    link = page.locator("a.docs:has(g.node[data-node='account_summary'])")
    assert link.get_attribute("href") == "dbt_docs.html#!/model/model.ledgerflow.account_summary"
    published = page.locator("a.docs:has(g.node[data-node='databricks:account_summary'])")
    assert published.get_attribute("href").endswith(
        "#!/exposure/exposure.ledgerflow.databricks_tables"
    )
    link.click()
    page.wait_for_url("**/dbt_docs.html#!/model/model.ledgerflow.account_summary")
    page.get_by_text("One row per savings account that passed staging").first.wait_for()
    assert tried == []
    page.context.close()


def test_a_failed_run_has_its_dashboard_beside_its_failed_report(nights, browser):
    failed = nights["output"] / "failed" / "dashboard.html"
    assert failed.is_file()  # the blocking case above ran first, in this module
    page, tried = open_offline(browser, failed)
    assert tried == []
    assert page.locator("#anomalies li.anomaly.blocking").count() == 1
    assert "Stopped at audit" in page.locator("#tonight p.stopped").inner_text()
    assert (
        page.locator("#headline [data-figure='outcome'] dd").inner_text() == "failed, NOT published"
    )
    assert page.locator("#dbt-docs").count() == 0  # docs come with a publish
    page.context.close()


def test_status_says_when_a_run_holds_the_warehouse(tmp_path):
    from flows.status import warehouse_history_lines

    warehouse = tmp_path / "warehouse.duckdb"
    hold = (
        "import duckdb, sys, time; c = duckdb.connect(sys.argv[1]); "
        "print('held', flush=True); time.sleep(60)"
    )
    holder = subprocess.Popen(
        [sys.executable, "-c", hold, str(warehouse)], stdout=subprocess.PIPE, text=True
    )
    try:
        assert holder.stdout.readline() == "held\n"
        (line,) = warehouse_history_lines(warehouse)
    finally:
        holder.kill()
        holder.wait()
    assert line.startswith(f"Run history in {warehouse}: not readable now (IO Error: Could not")
    assert warehouse_history_lines(warehouse) == [
        f"Run history in {warehouse} (last 0 runs):"
    ]  # free again: a warehouse no run has recorded in yet
