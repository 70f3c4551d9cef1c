"""`tvdb report --html PATH`: the dashboard as one self-contained HTML file."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from tvdb.cli.common import NowOption, now_or, open_ledger, plain_console
from tvdb.cli.output import JsonOption, as_written, stdout_json

REPORT_HELP = """Write the dashboard: one self-contained HTML file with charts drawn when it is written.

Spend per day against the daily budget, spend by service and mode (real vs would-have-cost), time
per stage, error and retry rates per day, the latest real and mock runs of each scenario, and the
run list. Charts are inline SVG: the file needs no network and no JavaScript, so it can be opened
offline or kept as a CI artifact.

\b
Examples:
  tvdb report --html report.html --open
  tvdb report --html artifacts/tvdb.html --since 7d
"""


def report(
    ctx: typer.Context,
    html: Annotated[Path, typer.Option("--html", metavar="PATH", help="Where to write the HTML file.")],
    open_it: Annotated[bool, typer.Option("--open", help="Open it in the default browser afterwards.")] = False,
    since: Annotated[str, typer.Option(
        "--since", metavar="WHEN", help="Runs and calls since a date, a datetime or a duration back.")] = "30d",
    as_json: JsonOption = False,
    now: NowOption = None,
) -> None:
    from tvdb.cli.render_html import render_dashboard
    from tvdb.errors import ConfigError
    from tvdb.history.dashboard import build_dashboard
    from tvdb.ledger.periods import parse_period

    settings, db = open_ledger(ctx)
    at = now_or(now)
    period = parse_period(since=since, timezone=settings.timezone, now=at, default_days=None)
    dashboard = build_dashboard(db, period=period, now=at, daily_budget_usd=settings.daily_budget_usd,
                                timezone=settings.timezone)
    page = as_written(render_dashboard(dashboard))  # a key-shaped scenario name is masked, as on the terminal
    try:
        html.parent.mkdir(parents=True, exist_ok=True)
        html.write_text(page, encoding="utf-8")
    except OSError as exc:
        raise ConfigError(f"--html: cannot write {html}: {exc.strerror or exc}") from None
    if as_json:
        stdout_json({"path": str(html.resolve()), "bytes": len(page.encode())})
    else:
        plain_console().print(f"Wrote {html} ({len(page.encode()) / 1024:.0f} KiB): open it in a browser.")
    if open_it:
        import webbrowser

        webbrowser.open(html.resolve().as_uri())


def register(app: typer.Typer) -> None:
    app.command("report", help=REPORT_HELP)(report)  # short help: tvdb.cli.lazy.COMMANDS
