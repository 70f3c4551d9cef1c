"""`tvdb runs [list|show|compare]`: run history. `tvdb runs` alone is `tvdb runs list`."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import typer

from tvdb.bounds import MAX_COUNT
from tvdb.cli.common import NowOption, now_or, option_errors, plain_console, settings_for
from tvdb.cli.output import Format, FormatOption, JsonOption, pick_format

MAX_PERCENT = 1_000_000.0  # --threshold / --cost-tolerance: past any real change, so inf is refused


def percent(value: str | float) -> float:
    """An option's percentage: a number from 0 to MAX_PERCENT. Parsed here rather than by min/max,
    whose check words `nan` (not a number at all) as "should be less than or equal to 1000000"."""
    try:
        number = float(value)  # a str from the command line, or the float default
    except ValueError:
        number = float("nan")
    if not 0 <= number <= MAX_PERCENT:  # false for nan too
        raise typer.BadParameter(f"must be a number between 0 and {MAX_PERCENT:,.0f} (percent), got {value!r}")
    return number


app = typer.Typer(
    help="Run history: list runs, show one stage by stage, compare two. A run id prefix works wherever a "
         "run id does.",
    invoke_without_command=True,
)

ScenarioOpt = Annotated[str | None, typer.Option("--scenario", "-s", metavar="NAME", help="Only this scenario.")]
SinceOpt = Annotated[str | None, typer.Option(
    "--since", metavar="WHEN", help="Only runs started since a date, a datetime or a duration back (7d, 12h).")]
LimitOpt = Annotated[int, typer.Option("--limit", "-n", min=1, max=MAX_COUNT, help="How many runs, newest first.")]
DataDirOpt = Annotated[Path | None, typer.Option("--data-dir", help="Where the database lives.")]


def _store(ctx: typer.Context, data_dir: Path | None) -> Any:
    from tvdb.db import open_storage
    from tvdb.history.store import RunStore

    settings = settings_for(ctx, {"data_dir": data_dir})
    return settings, RunStore(open_storage(settings))


def _list(ctx: typer.Context, scenario: str | None, since: str | None, limit: int, fmt: Format,
          data_dir: Path | None, now: str | None) -> None:
    from tvdb.cli.render_history import print_runs
    from tvdb.clock import iso
    from tvdb.history.detail import recent_runs
    from tvdb.ledger.periods import parse_period

    settings, store = _store(ctx, data_dir)
    start = None
    if since is not None:
        with option_errors(ctx):
            period = parse_period(since=since, timezone=settings.timezone, now=now_or(now), default_days=None)
        start = iso(period.since) if period.since else None
    print_runs(plain_console(), recent_runs(store, scenario=scenario, since=start, limit=limit), fmt)


LIST_HELP = """List runs, newest first: full run id, scenario, mode, status, documents, cost, duration.

A run whose process was killed shows as interrupted (continue it with `tvdb resume RUN_ID`).

\b
Examples:
  tvdb runs
  tvdb runs list --scenario quickstart --since 7d
  tvdb runs list --json | jq -r '.runs[0].run_id'
"""


@app.callback(help=LIST_HELP)
def _default(
    ctx: typer.Context, scenario: ScenarioOpt = None, since: SinceOpt = None, limit: LimitOpt = 20,
    as_json: JsonOption = False, fmt: FormatOption = None, data_dir: DataDirOpt = None, now: NowOption = None,
) -> None:
    if ctx.invoked_subcommand is None:
        _list(ctx, scenario, since, limit, pick_format(fmt, as_json), data_dir, now)


@app.command("list", help=LIST_HELP, short_help="List runs, newest first.")
def list_runs(
    ctx: typer.Context, scenario: ScenarioOpt = None, since: SinceOpt = None, limit: LimitOpt = 20,
    as_json: JsonOption = False, fmt: FormatOption = None, data_dir: DataDirOpt = None, now: NowOption = None,
) -> None:
    _list(ctx, scenario, since, limit, pick_format(fmt, as_json), data_dir, now)


@app.command("show", short_help="One run per stage and per document, with its event timeline.")
def show(
    ctx: typer.Context,
    run: Annotated[str, typer.Argument(metavar="RUN", help="Run id or a unique prefix of it.")],
    as_json: JsonOption = False, fmt: FormatOption = None,
    data_dir: DataDirOpt = None,
) -> None:
    """One run per stage and per document: times, calls, errors, cost, and each job's event timeline.


    \b
    Examples:
      tvdb runs show 20261129-095006-91843d
      tvdb runs show 20261129-0950 --json
    """
    from tvdb.cli.render_history import print_run_detail
    from tvdb.history.detail import run_detail

    chosen = pick_format(fmt, as_json)
    _, store = _store(ctx, data_dir)
    print_run_detail(plain_console(), run_detail(store, run), chosen)


@app.command("compare", short_help="Compare two runs stage by stage; regressions marked.")
def compare(
    ctx: typer.Context,
    run_a: Annotated[str, typer.Argument(metavar="RUN_A", help="The baseline run (id or prefix).")],
    run_b: Annotated[str, typer.Argument(metavar="RUN_B", help="The run to judge against it.")],
    threshold: Annotated[float, typer.Option(
        "--threshold", parser=percent, metavar="PCT",
        help="p95 latency increase (percent) that counts as a regression.")
    ] = 20.0,
    cost_tolerance: Annotated[float, typer.Option(
        "--cost-tolerance", parser=percent, metavar="PCT",
        help="Cost increase at live prices (percent of A) that is still not a regression.")] = 1.0,
    fail_on_regression: Annotated[bool, typer.Option(
        "--fail-on-regression", help="Exit 1 when B regresses against A (for CI).")] = False,
    as_json: JsonOption = False, fmt: FormatOption = None,
    data_dir: DataDirOpt = None,
) -> None:
    """Compare run B with run A: per-stage latency p50/p95, error and retry rates, cost, chunks,
    retrieval recall, and the cosine similarity of the same documents' vectors (same space only).

    Regressions (marked ▲): p95 latency up more than --threshold percent, error or retry rate up,
    cost at live prices up by more than --cost-tolerance percent (default 1), retrieval recall down.

    Exit codes: 0 compared (and, with --fail-on-regression, no regression); 1 B regressed and
    --fail-on-regression was given; 2 an unknown or ambiguous run id, or bad usage.


    \b
    Examples:
      tvdb runs compare 20261129-0950 20261130-1012
      tvdb runs compare A B --threshold 50 --fail-on-regression --json
    """
    from tvdb.cli.render_history import print_comparison
    from tvdb.history.compare import compare_runs

    chosen = pick_format(fmt, as_json)
    _, store = _store(ctx, data_dir)
    result = compare_runs(store, run_a, run_b, threshold_pct=threshold, cost_tolerance_pct=cost_tolerance)
    code = 1 if fail_on_regression and result.regressions else 0
    print_comparison(plain_console(), result, chosen, exit_code=code)
    if code:
        raise typer.Exit(code)
