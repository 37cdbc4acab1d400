"""The dashboard's charts: Vega-Lite specifications built with altair, rendered to static
SVG by vl-convert in this process, inlined in the page. The page stays one offline file
with no JavaScript; the library draws the axes, time scale, ticks and labels that hand-
drawn SVG lacked (docs/data-quality.md has the measured cost and why).

Points are placed by the run's time, not by its position in the list, so a missed night
shows as a gap. Each chart names its unit on its axis and tonight's value beside its
point; the expected band, when the metric is judged, is shaded behind the line.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from html import escape

from flows.config import DEFAULT_ANOMALY_RULES
from flows.quality.anomalies import shown_value
from flows.quality.dashboard_headline import STEP_SECONDS, run_seconds, usual_seconds
from flows.quality.history import MetricKey, RecentHistory

WIDTH, HEIGHT = 300, 120
# The y axis's title and tick format per metric (shown_value writes tonight's label).
UNITS: dict[str, tuple[str, str]] = {
    "rows_delivered": ("rows", ",d"),
    "rows_published": ("rows", ",d"),
    "change_set": ("records", ",d"),
    "quarantine_rate": ("share of rows delivered", ".0%"),
    "nulls": ("rows", ",d"),
    "duplicates": ("rows", ",d"),
    "step_seconds": ("seconds", ",.1f"),
    "hours_since_previous_delivery": ("hours", ",.0f"),
}
INK, OUTSIDE, LINE, BAND, USUAL = "#1d2330", "#d93025", "#4a6fa5", "#cfe8d1", "#7a7f8c"


@dataclass(frozen=True)
class Series:
    """One metric of one subject over the recent runs, tonight last."""

    title: str
    metric: str  # for the unit
    subject: str
    points: list[tuple[datetime, float]]  # (run time, naive UTC; value), oldest first
    band: tuple[float | None, float | None] | None = None  # tonight's expected range
    usual: float | None = None  # the median of the earlier runs, drawn as a dashed line

    @property
    def outside(self) -> bool:
        if self.band is None or not self.points:
            return False
        low, high = self.band
        value = self.points[-1][1]
        return (low is not None and value < low) or (high is not None and value > high)


def chart_svg(series: Series) -> str:
    """The series as an inline SVG element."""
    import vl_convert

    return vl_convert.vegalite_to_svg(_spec(series))


def _spec(series: Series) -> dict:
    import altair as alt

    unit, tick_format = UNITS.get(series.metric, ("value", ",.2f"))
    rows = [{"at": _utc(at), "value": value} for at, value in series.points]
    values = [value for _, value in series.points]
    x = alt.X(
        "at:T",
        title="run time (UTC)",
        # A utc scale formats its ticks in UTC too (a formatType would break the format).
        scale=alt.Scale(type="utc"),
        axis=alt.Axis(format=_time_format(series.points), labelAngle=0, tickCount=4),
    )
    y = alt.Y("value:Q", title=unit, axis=alt.Axis(format=tick_format, tickCount=4))
    layers = []
    if series.band is not None:
        low, high = series.band
        # An open end of the band reaches as far as the plotted values do.
        low = low if low is not None else min(0.0, *values)
        high = high if high is not None else max(*values, low) * 1.1
        layers.append(
            alt.Chart(alt.Data(values=[{"low": low, "high": high}]))
            .mark_rect(color=BAND)
            .encode(y=alt.Y("low:Q"), y2="high:Q")
            .properties(name="band")
        )
    if series.usual is not None:
        layers.append(
            alt.Chart(alt.Data(values=[{"usual": series.usual}]))
            .mark_rule(color=USUAL, strokeDash=[4, 3])
            .encode(y="usual:Q")
            .properties(name="usual")
        )
    data = alt.Data(values=rows)
    layers.append(
        alt.Chart(data)
        .mark_line(color=LINE, point=alt.OverlayMarkDef(color=LINE, size=18))
        .encode(x=x, y=y)
        .properties(name="series")
    )
    tonight = alt.Data(values=[{**rows[-1], "label": shown_value(series.metric, values[-1])}])
    color = OUTSIDE if series.outside else INK
    layers.append(
        alt.Chart(tonight)
        .mark_point(filled=True, size=70, color=color, opacity=1)
        .encode(x=x, y=y)
        .properties(name="tonight")
    )
    layers.append(
        alt.Chart(tonight)
        .mark_text(align="right", dx=-7, dy=-9, fontWeight="bold", color=color)
        .encode(x=x, y=y, text="label:N")
        .properties(name="tonight_label")
    )
    return (
        alt.layer(*layers)
        .properties(width=WIDTH, height=HEIGHT, title=series.title)
        .configure_view(stroke=None)
        .configure_title(fontSize=13, anchor="start")
        .to_dict()
    )


def _time_format(points: list[tuple[datetime, float]]) -> str:
    """Ticks as precise as the runs are apart: nightly runs by the minute, runs within the
    hour (a re-run, a test) by the second."""
    span = points[-1][0] - points[0][0]
    return "%m-%d %H:%M:%S" if span < timedelta(hours=1) else "%m-%d %H:%M"


def _utc(moment: datetime) -> str:
    return moment.strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def chart_figure(series: Series) -> str:
    """The chart with its caption: tonight's value, and the band or why there is none."""
    tonight = shown_value(series.metric, series.points[-1][1])
    if series.band is not None:
        low, high = series.band
        shown = " to ".join(
            "…" if bound is None else shown_value(series.metric, bound) for bound in (low, high)
        )
        judged = f"expected {shown}" + (" — outside" if series.outside else "")
    elif series.usual is not None:
        judged = f"usual {shown_value(series.metric, series.usual)} (median, dashed)"
    else:
        judged = "not judged"
    return (
        f"<figure class='trend' data-metric='{escape(series.metric)}' "
        f"data-subject='{escape(series.subject)}' data-outside='{str(series.outside).lower()}'>"
        f"{chart_svg(series)}<figcaption>tonight <b>{escape(tonight)}</b>; "
        f"{escape(judged)}</figcaption></figure>"
    )


# --- which charts ---------------------------------------------------------------------------

# The headline's metrics, charted first. Each chart costs about 60 ms to render (the first
# about 0.5 s more, vl-convert starting its engine): a few charts, not one per metric.
KEY_METRICS = ("rows_delivered", "rows_published")


def trends_section(
    history: RecentHistory,
    report: dict,
    bands: dict[MetricKey, tuple[float | None, float | None]],
) -> str:
    """Charts of the run's duration, rows in and out, the share quarantined, and of any
    metric raised or back to normal tonight; every other judged metric in a table, folded."""
    tonight = history.metrics.get(report["run_id"], {})
    if not tonight:
        return "<section id='trends'><h2>Trends</h2><p>No metrics recorded yet.</p></section>"
    scan = report["metrics"].get("anomalies") or {}
    flagged = [
        (a["metric"], a["subject"]) for a in [*scan.get("raised", []), *scan.get("resolved", [])]
    ]
    keys = [key for key in sorted(tonight) if key[0] in KEY_METRICS]
    keys += [key for key in dict.fromkeys(flagged) if key in tonight and key not in keys]
    series = [_duration_series(history, report["run_id"]), _quarantine_series(history)]
    series += [_metric_series(history, key, bands.get(key)) for key in keys]
    charts = "".join(chart_figure(s) for s in series if s is not None and s.points)
    rest = [key for key in sorted(tonight) if key[0] in DEFAULT_ANOMALY_RULES and key not in keys]
    return (
        "<section id='trends'><h2>Trends</h2><p>Each point is a run, placed at its time "
        "(UTC); tonight's is the large dot, red when outside the shaded band, tonight's "
        f"expected range for a metric with enough history to be judged.</p>"
        f"<div class='grid'>{charts}</div>{_long_tail(rest, tonight, bands)}</section>"
    )


def _metric_series(
    history: RecentHistory, key: MetricKey, band: tuple[float | None, float | None] | None
) -> Series:
    metric, subject = key
    points = [
        (run["run_at"], history.metrics[run["run_id"]][key])
        for run in history.runs
        if key in history.metrics[run["run_id"]]
    ]
    return Series(f"{metric.replace('_', ' ')} · {subject}", metric, subject, points, band)


def _duration_series(history: RecentHistory, run_id: str) -> Series:
    points = [
        (run["run_at"], seconds)
        for run in history.runs
        if (seconds := run_seconds(history.metrics[run["run_id"]])) is not None
    ]
    usual = usual_seconds(history, run_id)
    return Series("run duration", STEP_SECONDS, "run", points, usual=usual)


def _quarantine_series(history: RecentHistory) -> Series:
    """Rows quarantined per row delivered, both files together, run by run (the history
    keeps each reason's rate per file: weighted back by the file's rows)."""
    points = []
    for run in history.runs:
        metrics = history.metrics[run["run_id"]]
        delivered = {s: v for (m, s), v in metrics.items() if m == "rows_delivered"}
        if not sum(delivered.values()):
            continue
        quarantined = sum(
            rate * delivered.get(subject.split(".")[0], 0)
            for (metric, subject), rate in metrics.items()
            if metric == "quarantine_rate"
        )
        points.append((run["run_at"], quarantined / sum(delivered.values())))
    return Series("quarantined, all reasons", "quarantine_rate", "all", points)


def _long_tail(
    keys: list[MetricKey],
    tonight: dict[MetricKey, float],
    bands: dict[MetricKey, tuple[float | None, float | None]],
) -> str:
    if not keys:
        return ""

    def judged(key: MetricKey) -> tuple[str, str]:
        band = bands.get(key)
        if band is None:
            return "building history", ""
        shown = " to ".join("…" if bound is None else shown_value(key[0], bound) for bound in band)
        low, high = band
        value = tonight[key]
        outside = (low is not None and value < low) or (high is not None and value > high)
        return ("outside" if outside else "within"), shown

    rows = "".join(
        f"<tr class='metric {verdict.replace(' ', '-')}' data-metric='{escape(key[0])}' "
        f"data-subject='{escape(key[1])}'><td>{escape(key[0])}</td><td>{escape(key[1])}</td>"
        f"<td class='n'>{escape(shown_value(key[0], tonight[key]))}</td>"
        f"<td>{escape(expected)}</td><td>{verdict}</td></tr>"
        for key in keys
        for verdict, expected in [judged(key)]
    )
    return (
        f"<details id='long-tail'><summary>Every other judged metric ({len(keys)}), "
        "tonight against its expected range</summary><table><tr><th>metric</th>"
        "<th>subject</th><th>tonight</th><th>expected</th><th></th></tr>"
        f"{rows}</table></details>"
    )
