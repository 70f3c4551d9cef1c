"""The HTML dashboard (`tvdb report --html`): one self-contained file, charts as inline SVG, no
script, no stylesheet or font or image from anywhere else, so it opens offline and in CI artifacts."""

from __future__ import annotations

from html import escape

from tvdb.cli import charts
from tvdb.cli.render_history import duration
from tvdb.history.dashboard import Dashboard
from tvdb.history.store import RunSummary
from tvdb.money import format_usd
from tvdb.words import counted

CHART_IDS = ("spend-per-day", "spend-by-service", "stage-latency", "error-rates", "real-vs-mock")

_CSS = """
body { font-family: system-ui, -apple-system, "Segoe UI", sans-serif; margin: 24px; color: #1d2733;
       background: #ffffff; }
h1 { font-size: 22px; margin: 0 0 4px; }
h2 { font-size: 16px; margin: 0 0 6px; }
p.meta { color: #56616e; margin: 0 0 18px; }
.grid { display: grid; grid-template-columns: repeat(auto-fill, 744px); gap: 18px; }
* { box-sizing: border-box; }
figure.chart { margin: 0; padding: 10px; width: 744px; border: 1px solid #dde3ea; border-radius: 6px; }
figure.chart svg { display: block; width: 720px; height: 330px; }
figcaption { color: #56616e; font-size: 13px; margin-top: 4px; }
table { border-collapse: collapse; margin-top: 18px; font-size: 13px; }
th, td { padding: 4px 10px; border-bottom: 1px solid #e4e8ee; text-align: left; white-space: nowrap; }
td.num { text-align: right; font-variant-numeric: tabular-nums; }
.passed { color: #1e7d32; } .failed { color: #b3261e; } .interrupted, .running { color: #a15c00; }
"""


def _figure(chart_id: str, title: str, svg: str, caption: str) -> str:
    return (f'<figure class="chart" id="{chart_id}"><h2>{escape(title)}</h2>{svg}'
            f"<figcaption>{escape(caption)}</figcaption></figure>")


def _status(r: RunSummary) -> str:
    if r.status == "finished" and r.passed is not None:
        return "passed" if r.passed else "failed"
    return r.status


def _runs_table(runs: tuple[RunSummary, ...]) -> str:
    head = "".join(f"<th>{h}</th>" for h in ("run id", "scenario", "mode", "status", "documents", "failed",
                                             "spent", "would cost", "duration", "started (UTC)"))
    rows = []
    for r in runs:
        status = _status(r)
        cells = [escape(r.run_id), escape(r.scenario), escape(r.mode), f'<span class="{status}">{status}</span>']
        nums = [str(r.documents), str(r.failed), format_usd(r.spent_usd), format_usd(r.would_cost_usd),
                duration(r.duration_s)]
        rows.append("<tr>" + "".join(f"<td>{c}</td>" for c in cells)
                    + "".join(f'<td class="num">{escape(n)}</td>' for n in nums)
                    + f"<td>{escape((r.started_at or '')[:19].replace('T', ' '))}</td></tr>")
    body = "".join(rows) or '<tr><td colspan="10">no runs in this period</td></tr>'
    return f'<table id="runs"><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>'


def render_dashboard(d: Dashboard) -> str:
    """The whole page as one string (UTF-8 HTML5)."""
    start = d.period.since.date().isoformat() if d.period.since else "the first run"
    spent = sum(p.spent_nusd for p in d.daily) / 1e9
    would = sum(p.not_spent_nusd for p in d.daily) / 1e9
    figures = [
        _figure(CHART_IDS[0], "Spend per day", charts.spend_per_day(d.daily, d.daily_budget_usd),
                f"Real spend per day ({d.timezone}) against the daily budget of {format_usd(d.daily_budget_usd)}; "
                "light bars: what mock and replay calls would have cost."),
        _figure(CHART_IDS[1], "Spend by service and mode", charts.spend_by_service(d.by_service_mode),
                "Real money spent, and the live-price value of calls answered by mocks and cassettes."),
        _figure(CHART_IDS[2], "Time per stage", charts.stage_latency(d.stage_ms),
                "Wall time each document spent in each stage (box: quartiles; whiskers: 1.5 IQR)."),
        _figure(CHART_IDS[3], "Error and retry rates", charts.error_retry_rates(d.rates),
                "Per day: failed request attempts and retried attempts, as a share of all attempts."),
        _figure(CHART_IDS[4], "Real vs mock: latest run of each scenario", charts.real_vs_mock(d.scenarios),
                "Per scenario, its latest run in each mode: cost at live prices and duration."),
    ]
    return (
        '<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8">'
        '<meta name="viewport" content="width=device-width, initial-scale=1">'
        f"<title>tvdb dashboard</title><style>{_CSS}</style></head><body>"
        "<h1>tvdb dashboard</h1>"
        f'<p class="meta">Runs and calls since {escape(start)} · written '
        f'{escape(d.generated_at.isoformat(timespec="seconds"))}'
        f" · spent {escape(format_usd(spent))} · mock and replay calls would have cost {escape(format_usd(would))}"
        f" · {counted(len(d.runs), 'run')} shown</p>"
        f'<div class="grid">{"".join(figures)}</div>'
        f"<h2 style=\"margin-top:22px\">Runs</h2>{_runs_table(d.runs)}"
        "</body></html>\n"
    )
