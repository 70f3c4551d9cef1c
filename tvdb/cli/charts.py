"""The dashboard's charts as inline SVG, drawn with matplotlib's SVG backend when the report is written.

Text is drawn as paths (`svg.fonttype: path`), so the SVG needs no font, no network and no script;
ids are salted and the date left out, so the same data gives the same bytes. No pyplot: each chart
is its own `Figure`, nothing global is left behind.
"""

from __future__ import annotations

import io
from collections.abc import Sequence
from typing import TYPE_CHECKING

from tvdb.history.dashboard import RatePoint, ScenarioModes
from tvdb.history.metrics import STAGE_ORDER
from tvdb.ledger.prices import nusd_to_usd
from tvdb.ledger.reports import DayPoint, ReportRow

if TYPE_CHECKING:
    from matplotlib.axes import Axes
    from matplotlib.figure import Figure

REAL, MOCK, REPLAY, BUDGET, ERROR, RETRY = "#1f5fa8", "#9cc3e6", "#7fc97f", "#c0392b", "#c0392b", "#e6a23c"
MODE_COLORS = {"real": REAL, "hybrid": "#8e6cc0", "mock": MOCK}
_SIZE = (7.2, 3.3)  # inches at 100 dpi: 720 × 330 CSS pixels


def _figure(size: tuple[float, float] = _SIZE) -> Figure:
    from matplotlib.figure import Figure

    return Figure(figsize=size, dpi=100, layout="constrained")


def to_svg(fig: Figure) -> str:
    """The figure as an `<svg>` element (no XML prolog or doctype), ready to inline in HTML."""
    import matplotlib

    buf = io.StringIO()
    with matplotlib.rc_context({"svg.fonttype": "path", "svg.hashsalt": "tvdb"}):
        fig.savefig(buf, format="svg", metadata={"Date": None})
    text = buf.getvalue()
    return text[text.index("<svg"):]


def _empty(ax: Axes, message: str) -> None:
    ax.text(0.5, 0.5, message, ha="center", va="center", transform=ax.transAxes, color="#666666")
    ax.set_xticks([])
    ax.set_yticks([])


def _usd_axis(ax: Axes) -> None:
    from matplotlib.ticker import FuncFormatter

    ax.yaxis.set_major_formatter(FuncFormatter(lambda v, _: f"${v:,.4g}"))
    ax.grid(axis="y", alpha=0.3)


def spend_per_day(days: Sequence[DayPoint], daily_budget_usd: float) -> str:
    """Bars: real spend per local day (solid) and what mock/replay calls would have cost (light, on
    top); a dashed line at the daily budget."""
    fig = _figure()
    ax = fig.add_subplot()
    if not days:
        _empty(ax, "no calls in this period")
        return to_svg(fig)
    x = range(len(days))
    spent = [nusd_to_usd(d.spent_nusd) for d in days]
    not_spent = [nusd_to_usd(d.not_spent_nusd) for d in days]
    ax.bar(x, spent, color=REAL, label="spent (real)")
    ax.bar(x, not_spent, bottom=spent, color=MOCK, label="would have cost (mock, replay)")
    ax.axhline(daily_budget_usd, color=BUDGET, linestyle="--", linewidth=1.5,
               label=f"daily budget ${daily_budget_usd:,.4g}")
    step = max(1, len(days) // 10)
    ax.set_xticks(list(x)[::step], [d.day.isoformat()[5:] for d in days][::step])
    _usd_axis(ax)
    ax.set_ylabel("USD per day")
    ax.legend(loc="upper left", fontsize="small")
    return to_svg(fig)


def spend_by_service(rows: Sequence[ReportRow]) -> str:
    """Grouped bars per service: real spend, and what mock and replay calls would have cost."""
    fig = _figure()
    ax = fig.add_subplot()
    services = sorted({r.keys.get("service") or "?" for r in rows})
    if not services:
        _empty(ax, "no calls in this period")
        return to_svg(fig)
    series = (("spent (real)", REAL, "spent"), ("would cost (mock)", MOCK, "mock_would_cost"),
              ("would cost (replay)", REPLAY, "replay_would_cost"))
    width = 0.8 / len(series)
    for i, (label, color, attr) in enumerate(series):
        values = [sum(getattr(r, attr).known_usd for r in rows if (r.keys.get("service") or "?") == s)
                  for s in services]
        ax.bar([j + (i - 1) * width for j in range(len(services))], values, width, color=color, label=label)
    ax.set_xticks(range(len(services)), services)
    _usd_axis(ax)
    ax.set_ylabel("USD")
    ax.legend(fontsize="small")
    return to_svg(fig)


def stage_latency(stage_ms: dict[str, list[float]]) -> str:
    """Box plots of the wall time each document spent in each stage (milliseconds, log scale)."""
    fig = _figure()
    ax = fig.add_subplot()
    stages = [s for s in (*STAGE_ORDER, *sorted(stage_ms)) if stage_ms.get(s)]
    stages = list(dict.fromkeys(stages))
    if not stages:
        _empty(ax, "no stage times in this period")
        return to_svg(fig)
    data = [[max(v, 0.01) for v in stage_ms[s]] for s in stages]  # a log axis cannot show 0 ms
    box = ax.boxplot(data, patch_artist=True, widths=0.6)
    for patch in box["boxes"]:
        patch.set_facecolor(MOCK)
    ax.set_xticks(range(1, len(stages) + 1), stages)
    ax.set_yscale("log")
    ax.set_ylabel("ms per document")
    ax.grid(axis="y", alpha=0.3)
    return to_svg(fig)


def error_retry_rates(points: Sequence[RatePoint]) -> str:
    """Lines per local day: failed attempts / attempts and retried attempts / attempts (percent)."""
    fig = _figure()
    ax = fig.add_subplot()
    if not points:
        _empty(ax, "no calls in this period")
        return to_svg(fig)
    x = range(len(points))
    ax.plot(x, [p.error_rate * 100 for p in points], marker="o", color=ERROR, label="error rate")
    ax.plot(x, [p.retry_rate * 100 for p in points], marker="s", color=RETRY, label="retry rate")
    step = max(1, len(points) // 10)
    ax.set_xticks(list(x)[::step], [p.day.isoformat()[5:] for p in points][::step])
    ax.set_ylim(bottom=0, top=max(5.0, *(max(p.error_rate, p.retry_rate) * 110 for p in points)))
    ax.set_ylabel("% of attempts")
    ax.grid(axis="y", alpha=0.3)
    ax.legend(fontsize="small")
    return to_svg(fig)


def real_vs_mock(scenarios: Sequence[ScenarioModes]) -> str:
    """Per scenario, its latest run in each mode: cost at live prices (left) and duration (right)."""
    fig = _figure()
    left, right = fig.subplots(1, 2)
    if not scenarios:
        _empty(left, "no runs in this period")
        _empty(right, "")
        return to_svg(fig)
    names = [s.scenario for s in scenarios]
    modes = [m for m in MODE_COLORS if any(r.mode == m for s in scenarios for r in s.latest)]
    width = 0.8 / max(len(modes), 1)
    for i, mode in enumerate(modes):
        runs = [next((r for r in s.latest if r.mode == mode), None) for s in scenarios]
        xs = [j + (i - (len(modes) - 1) / 2) * width for j in range(len(names))]
        left.bar(xs, [r.would_cost_known_usd if r else 0 for r in runs], width, color=MODE_COLORS[mode], label=mode)
        right.bar(xs, [(r.duration_s or 0) if r else 0 for r in runs], width, color=MODE_COLORS[mode], label=mode)
    for ax, label in ((left, "would cost (USD)"), (right, "duration (s)")):
        ax.set_xticks(range(len(names)), names, rotation=20 if len(names) > 3 else 0)
        ax.set_title(label, fontsize="medium")
        ax.grid(axis="y", alpha=0.3)
    _usd_axis(left)
    left.legend(fontsize="small")
    return to_svg(fig)
