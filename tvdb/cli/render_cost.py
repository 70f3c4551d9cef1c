"""Rendering of cost reports, prune, reprice and reconcile results: Rich tables, JSON and CSV."""

from __future__ import annotations

import csv
import datetime as dt
import io
import json
from typing import Any

from rich.console import Console, Group
from rich.panel import Panel
from rich.text import Text

from tvdb.cli.output import Col, Kind, TableData, csv_cell, print_table, print_title
from tvdb.ledger.prices import nusd_to_usd
from tvdb.ledger.reconcile import ReconcileResult
from tvdb.ledger.reports import Amount, CostReport, DayPoint, ReportRow, report_to_dict, row_to_dict
from tvdb.ledger.reprice import RepriceResult
from tvdb.ledger.retention import PruneResult
from tvdb.money import format_usd
from tvdb.words import counted

CSV_METRICS = (
    "calls",
    "errors",
    "spent_usd",
    "would_cost_usd",
    "mock_would_cost_usd",
    "replay_would_cost_usd",
    "unknown_price_calls",
    # the sums over priced calls: the columns above are empty when a group has an unpriced call
    "spent_known_usd",
    "would_cost_known_usd",
    "mock_would_cost_known_usd",
    "replay_would_cost_known_usd",
    "llamaparse_credits",  # pages × the tier's credits per page, for LlamaParse rows
)
_BAR_WIDTH = 30
# a terminal row per day: a month still fits on a screen; longer periods show their last days
_CHART_DAYS = 31


usd = format_usd  # one formatter for every amount (tvdb.money)


def _amount(a: Amount) -> str:
    """The amount; with unpriced calls, the sum of the priced ones and how many are missing."""
    if not a.unknown:
        return usd(a.usd)
    return _unpriced_note(usd(a.known_usd), a.unknown) if a.known else "unknown"


def report_json(report: CostReport) -> str:
    return json.dumps(report_to_dict(report), indent=2)


def report_csv(report: CostReport) -> str:
    """One line per group: the group keys, then CSV_METRICS; unknown amounts are empty cells."""
    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator="\n")
    writer.writerow([*report.by, *CSV_METRICS])
    for row in report.rows:
        data = row_to_dict(row)
        writer.writerow(
            [
                *(csv_cell(v) for v in row.keys.values()),
                *(csv_cell(data[m]) for m in CSV_METRICS),
            ]
        )
    return buf.getvalue()


def _period(report: CostReport) -> str:
    """`2026-01-04 … 2026-01-10 (UTC)` for whole local days, else local datetimes."""
    from zoneinfo import ZoneInfo

    tz = ZoneInfo(report.timezone)
    p = report.period
    since = p.since.astimezone(tz) if p.since else None
    until = p.until.astimezone(tz) if p.until else None
    if all(t is None or t.time() == dt.time(0) for t in (since, until)):
        first = since.date().isoformat() if since else "the beginning"
        last = (until.date() - dt.timedelta(days=1)).isoformat() if until else "now"
    else:
        first = since.isoformat(timespec="minutes") if since else "the beginning"
        last = until.isoformat(timespec="minutes") if until else "now"
    return f"{first} … {last} ({report.timezone})"


def groups_table(report: CostReport) -> TableData:
    """The groups of a report as a table (the shared renderer keeps keys and amounts whole)."""
    totals = report.totals
    cols = [
        *(Col(name, Kind.ID, footer="total" if i == 0 else "") for i, name in enumerate(report.by)),
        Col("calls", Kind.NUM, footer=str(totals.calls)),
        Col("errors", Kind.NUM, footer=str(totals.errors)),
        Col("credits", Kind.NUM, "llamaparse_credits", footer=_credits(totals.credits)),
        Col("spent (real)", Kind.MONEY, "spent_usd", footer=_amount(totals.spent)),
        Col("would cost: mock", Kind.MONEY, "mock_would_cost_usd", footer=_amount(totals.mock_would_cost)),
        Col("would cost: replay", Kind.MONEY, "replay_would_cost_usd", footer=_amount(totals.replay_would_cost)),
        Col("unpriced", Kind.NUM, "unknown_price_calls", footer=str(totals.unknown_price_calls)),
    ]
    title = f"Spend by {', '.join(report.by) or 'nothing'} · {_period(report)}"
    return TableData(cols, [_cells(row) for row in report.rows], title=title)


def _cells(row: ReportRow) -> list[str | Text | None]:
    return [
        *("—" if v is None else v for v in row.keys.values()),
        str(row.calls),
        str(row.errors),
        _credits(row.credits),
        _amount(row.spent),
        _amount(row.mock_would_cost),
        _amount(row.replay_would_cost),
        str(row.unknown_price_calls),
    ]


def _credits(credits: float) -> str:
    """LlamaParse credits, whole when they are (they usually are), else to two places."""
    return f"{credits:g}" if credits == int(credits) else f"{credits:.2f}"


def _budget_lines(report: CostReport) -> tuple[str, list[Text]]:
    """The daily budget block: its title and its lines (boxed in a table, as they are in plain)."""
    b = report.budget
    pct = "n/a ($0 budget)" if b.percent_used is None else f"{b.percent_used:.1f}%"
    proj_pct = "" if b.projected_percent is None else f" ({b.projected_percent:.0f}% of budget)"
    style = "green" if (b.percent_used or 0) < 80 else "yellow" if (b.percent_used or 0) < 100 else "red"
    lines = [
        Text.assemble(
            "spent today   ",
            (f"{usd(nusd_to_usd(b.spent_today_nusd))} of {usd(nusd_to_usd(b.daily_nusd))} ({pct})", style),
        ),
        # estimates of requests that may have been billed, counted as spent until reconciled
        *([Text(f"  assumed     {usd(nusd_to_usd(b.assumed_today_nusd))} of it (estimates: tvdb cost reconcile)",
                "yellow")] if b.assumed_today_nusd else []),
        Text(f"reserved      {usd(nusd_to_usd(b.reserved_nusd))} (calls in flight)"),
        Text(f"remaining     {usd(nusd_to_usd(b.remaining_nusd))}"),
        Text(f"projected     {usd(nusd_to_usd(b.projected_nusd))} by end of day at today's rate{proj_pct}"),
    ]
    if b.unknown_today:
        lines.append(Text(f"unpriced      {b.unknown_today} real call(s) today have no known price", "red"))
    return f"Daily budget · {b.window_label}", lines


def _print_budget(console: Console, report: CostReport, *, plain: bool) -> None:
    title, lines = _budget_lines(report)
    if plain:  # a CI log shows box-drawing characters as mojibake, and plain promises no borders
        print_title(console, title)
        for line in lines:
            console.print(Text.assemble("  ", line.plain), crop=False, soft_wrap=True)
        return
    console.print(Panel(Group(*lines), title=title, title_align="left", expand=False))


def _unpriced_note(text: str, unknown: int) -> str:
    """`text`, followed by how many calls it leaves out for want of a price."""
    return " ".join(part for part in (text, f"(+{unknown} unpriced)" if unknown else "") if part)


def _chart_title(points: tuple[DayPoint, ...], *, cut: bool) -> str:
    """What the chart shows, from the days it was given: a title that says 31 days over a 7-day
    report makes the reader look for bars that are not there."""
    days = counted(len(points), "day")
    span = f"the last {days} of the period" if cut else days
    first, last = points[0].day.isoformat(), points[-1].day.isoformat()
    dates = first if first == last else f"{first} … {last}"
    return f"Real spend per day · {dates} ({span})"


def _chart(report: CostReport, *, plain: bool = False) -> TableData | None:
    points = report.daily[-_CHART_DAYS:]
    if not points:
        return None
    top = max(max(p.spent_nusd for p in points), 1)
    cols = [Col("day", Kind.ID), Col("bar", Kind.WORD), Col("spent", Kind.MONEY),
            Col("not spent (mock/replay)", Kind.MONEY)]
    rows: list[list[str | Text | None]] = []
    for p in points:
        n = round(_BAR_WIDTH * p.spent_nusd / top)
        full, sliver = ("#", ".") if plain else ("█", "▏")  # plain: ASCII, as a CI log shows it
        bar = full * n if n else (sliver if p.spent_nusd else "")
        spent = _unpriced_note(usd(nusd_to_usd(p.spent_nusd)), p.spent_unknown)
        not_spent = _unpriced_note(f"+{usd(nusd_to_usd(p.not_spent_nusd))}" if p.not_spent_nusd else "",
                                   p.not_spent_unknown)
        rows.append([p.day.isoformat(), Text(bar.ljust(_BAR_WIDTH), "cyan"), spent, Text(not_spent, "dim")])
    return TableData(cols, rows, title=_chart_title(points, cut=len(points) < len(report.daily)))


def print_report(report: CostReport, console: Console, *, plain: bool = False) -> None:
    print_table(console, groups_table(report), plain=plain)
    if report.aggregated_rows:
        console.print(Text(f"includes {report.aggregated_rows} daily aggregate row(s) of pruned days", "dim"))
    _print_budget(console, report, plain=plain)
    chart = _chart(report, plain=plain)
    if chart is not None:
        print_table(console, chart, plain=True)


def prune_dict(result: PruneResult) -> dict[str, Any]:
    return {
        "cutoff": result.cutoff.isoformat(),
        "timezone": result.timezone,
        "rows_folded": result.rows_folded,
        "aggregates": result.aggregates,
        "first_day": result.first_day.isoformat() if result.first_day else None,
        "last_day": result.last_day.isoformat() if result.last_day else None,
        "spent_usd": nusd_to_usd(result.spent_nusd),
        "would_cost_usd": nusd_to_usd(result.would_cost_nusd),
        "dry_run": result.dry_run,
        "protected": result.protected,
    }


def print_prune(result: PruneResult, console: Console) -> None:
    verb = "would fold" if result.dry_run else "folded"
    if result.protected:
        console.print(f"kept everything from {result.cutoff.isoformat()} ({result.timezone}): today's budget "
                      "window and the last hour are never folded", highlight=False)
    if not result.rows_folded:
        console.print(
            f"nothing to prune: no usage rows before {result.cutoff.isoformat()} ({result.timezone})"
        )
        return
    console.print(
        f"{verb} {result.rows_folded} usage row(s) from {result.first_day} to {result.last_day} "
        f"into {result.aggregates} daily aggregate(s) "
        f"(before {result.cutoff.isoformat()}, {result.timezone}); "
        f"real spend {usd(nusd_to_usd(result.spent_nusd))} and totals are kept exactly",
        highlight=False,
    )


def reprice_dict(result: RepriceResult) -> dict[str, Any]:
    return {
        "reprice_id": result.reprice_id,
        "version": result.version,
        "examined": result.examined,
        "changed": result.changed,
        "unpriced": result.unpriced,
        "dry_run": result.dry_run,
        "changes": [
            {
                "service": c.service,
                "model": c.model,
                "old_version": c.old_version,
                "rows": c.rows,
                "old_spent_usd": nusd_to_usd(c.old_spent_nusd),
                "new_spent_usd": nusd_to_usd(c.new_spent_nusd),
                "old_would_cost_usd": nusd_to_usd(c.old_would_cost_nusd),
                "new_would_cost_usd": nusd_to_usd(c.new_would_cost_nusd),
                "previously_unpriced": c.old_unknown,
            }
            for c in result.changes
        ],
    }


def print_reprice(result: RepriceResult, console: Console) -> None:
    verb = "would change" if result.dry_run else "changed"
    console.print(
        f"price version {result.version}: {verb} {result.changed} of {result.examined} row(s) "
        f"with billable units; {result.unpriced} left unchanged (no price in that version)",
        highlight=False,
    )
    if not result.changes:
        return
    cols = [Col("service", Kind.ID), Col("model", Kind.ID), Col("old version", Kind.ID), Col("rows", Kind.NUM),
            Col("spent: old → new", Kind.TEXT), Col("would cost: old → new", Kind.TEXT)]
    rows: list[list[str | Text | None]] = []
    for c in result.changes:
        rows.append([
            c.service,
            c.model,
            c.old_version or "—",
            str(c.rows),
            f"{usd(nusd_to_usd(c.old_spent_nusd))} → {usd(nusd_to_usd(c.new_spent_nusd))}",
            f"{usd(nusd_to_usd(c.old_would_cost_nusd))} → {usd(nusd_to_usd(c.new_would_cost_nusd))}"
            + (f" ({c.old_unknown} were unpriced)" if c.old_unknown else ""),
        ])
    print_table(console, TableData(cols, rows, title="Repriced rows"))
    if result.reprice_id:
        console.print(f"old values kept in usage_reprices (reprice_id {result.reprice_id})", highlight=False)


def reconcile_dict(result: ReconcileResult) -> dict[str, Any]:
    """JSON-ready; USD floats, unrounded."""
    return {
        "reconcile_id": result.reconcile_id,
        "file": result.path,
        "timezone": result.timezone,
        "dry_run": result.dry_run,
        "groups": [
            {"day": g.day.isoformat(), "service": g.service, "model": g.model, "status": g.status,
             "billed_usd": nusd_to_usd(g.billed_nusd), "known_usd": nusd_to_usd(g.known_nusd),
             "assumed_before_usd": nusd_to_usd(g.assumed_before_nusd), "assumed_rows": g.assumed_rows,
             "added_usd": nusd_to_usd(g.added_nusd)}
            for g in result.groups
        ],
    }


_RECONCILED = {
    "corrected": "assumed rows set from the provider's figure",
    "added": "the provider billed more: an adjustment row adds the difference",
    "matches": "nothing assumed, ledger matches",
    "ledger_above_provider": "ledger above the provider's figure, nothing assumed to lower",
    "folded": "assumed spend already folded by prune: not corrected",
}


def print_reconcile(result: ReconcileResult, console: Console) -> None:
    cols = [Col("day", Kind.ID), Col("service", Kind.ID), Col("model", Kind.ID), Col("provider billed", Kind.TEXT),
            Col("ledger known", Kind.TEXT), Col("assumed before", Kind.TEXT), Col("result", Kind.TEXT)]
    rows: list[list[str | Text | None]] = [
        [g.day.isoformat(), g.service, g.model, usd(nusd_to_usd(g.billed_nusd)), usd(nusd_to_usd(g.known_nusd)),
         f"{usd(nusd_to_usd(g.assumed_before_nusd))} ({g.assumed_rows} row(s))", _RECONCILED[g.status]]
        for g in result.groups
    ]
    title = "Reconcile (dry run: nothing written)" if result.dry_run else "Reconciled with the provider's usage"
    print_table(console, TableData(cols, rows, title=title))
    if not result.dry_run and any(g.status == "corrected" for g in result.groups):
        console.print(f"old values kept in usage_reprices (reprice_id {result.reconcile_id})", highlight=False)
