"""`tvdb cost …`: spend reports, pruning and repricing of the ledger (issue: money under control)."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Annotated

import typer

from tvdb.cli.common import NowOption as _NowOption
from tvdb.cli.common import now_or as _now
from tvdb.cli.common import open_ledger as _open
from tvdb.cli.common import option_errors
from tvdb.cli.common import plain_console as _console
from tvdb.cli.output import Format, FormatOption, JsonOption, pick_format

app = typer.Typer(
    help=("Cost ledger: where every cent went (report), keeping it small (prune), fixing prices (reprice), "
          "correcting assumed spend from the provider's usage (reconcile)."),
    no_args_is_help=True,
)


REPORT_HELP = """Spend per group over a period, today's budget, and a bar chart of spend per day.

Real money ("spent") is shown apart from what mock and replay calls would have cost. A call whose
price is unknown is counted as unpriced, never as $0. Days are calendar days in the configured
time zone (`timezone`, default UTC). Without --since/--until/--day: the last 7 days.


Examples:
  tvdb cost report                                   # last 7 days by service
  tvdb cost report --day 2026-11-29 --by model
  tvdb cost report --since 30d --by day --by mode    # several --by allowed
  tvdb cost report --since 2026-11-01 --until 2026-11-30 --service openai --mode real
  tvdb cost report --by run --format json | jq '.rows[] | {run, spent_usd}'
  tvdb cost report --by day --format csv > spend.csv
  tvdb cost report --json                            # same as --format json
"""


@app.command("report", help=REPORT_HELP, short_help="Spend per group, today's budget, spend per day.")
def report(
    ctx: typer.Context,
    since: Annotated[
        str | None,
        typer.Option(
            metavar="WHEN",
            help="Start: a date (its local midnight), a datetime, or a duration back from now (7d, 12h).",
        ),
    ] = None,
    until: Annotated[
        str | None,
        typer.Option(metavar="WHEN", help="End: a date (inclusive, whole day) or a datetime (exclusive)."),
    ] = None,
    day: Annotated[
        str | None, typer.Option(metavar="DATE", help="One local calendar day, e.g. 2026-11-29.")
    ] = None,
    by: Annotated[
        list[str] | None,
        typer.Option(
            "--by",
            metavar="GROUP",
            help="Group by day|service|model|scenario|mode|run; repeat or comma-separate. Default: service.",
        ),
    ] = None,
    fmt: FormatOption = None,
    as_json: JsonOption = False,
    service: Annotated[
        list[str] | None,
        typer.Option(metavar="NAME", help="Only this service (openai, llamaparse); repeatable."),
    ] = None,
    model: Annotated[
        list[str] | None, typer.Option(metavar="NAME", help="Only this model or parse tier; repeatable.")
    ] = None,
    scenario: Annotated[
        list[str] | None, typer.Option(metavar="NAME", help="Only this scenario; repeatable.")
    ] = None,
    run: Annotated[
        list[str] | None, typer.Option("--run", metavar="RUN_ID", help="Only this run id; repeatable.")
    ] = None,
    mode: Annotated[
        list[str] | None,
        typer.Option(
            "--mode",
            "--implementation",
            metavar="MODE",
            help="Only calls answered by real, mock or replay; repeatable.",
        ),
    ] = None,
    now: _NowOption = None,
) -> None:
    from tvdb.cli import render_cost
    from tvdb.ledger.periods import parse_period
    from tvdb.ledger.reports import ReportFilters, build_report

    chosen = pick_format(fmt, as_json)
    settings, db = _open(ctx)
    with option_errors(ctx):
        at = _now(now)
        period = parse_period(since=since, until=until, day=day, timezone=settings.timezone, now=at)
        groups = [g.strip() for item in (by or ["service"]) for g in item.split(",") if g.strip()]
        filters = ReportFilters(
            services=tuple(service or ()),
            models=tuple(model or ()),
            scenarios=tuple(scenario or ()),
            runs=tuple(run or ()),
            implementations=tuple(mode or ()),
        )
        result = build_report(
            db,
            period=period,
            now=at,
            daily_budget_usd=settings.daily_budget_usd,
            timezone=settings.timezone,
            by=groups,
            filters=filters,
        )
    if chosen is Format.JSON:
        sys.stdout.write(render_cost.report_json(result) + "\n")
    elif chosen is Format.CSV:
        sys.stdout.write(render_cost.report_csv(result))
    else:
        render_cost.print_report(result, _console(), plain=chosen is Format.PLAIN)


PRUNE_HELP = """Fold per-call usage rows older than a duration into one row per day and group.

Reports over those days stay exact (they read the daily aggregates); the database stays small.
Only whole days in the configured time zone are folded; running it again changes nothing. Today
(in the budget's time zone, by the real clock and by --now) and the last hour are never folded,
and budget checks read the aggregates too, so pruning never hides spend from a budget.


Examples:
  tvdb cost prune --older-than 90d
  tvdb cost prune --older-than 30d --dry-run
"""


@app.command("prune", help=PRUNE_HELP, short_help="Fold old usage rows into exact daily aggregates.")
def prune(
    ctx: typer.Context,
    older_than: Annotated[
        str, typer.Option(metavar="DURATION", help="Age of rows to fold: 90d, 12w, 36h (at least 1d).")
    ] = "90d",
    dry_run: Annotated[
        bool, typer.Option("--dry-run", help="Show what would be folded; write nothing.")
    ] = False,
    as_json: Annotated[bool, typer.Option("--json", help="Print the result as JSON.")] = False,
    now: _NowOption = None,
) -> None:
    import datetime as dt
    import json

    from tvdb.cli import render_cost
    from tvdb.ledger.periods import parse_duration, shift
    from tvdb.ledger.retention import prune as do_prune

    with option_errors(ctx):
        age = parse_duration(older_than, what="--older-than")
        at = _now(now)
        shift(at, -age, "--older-than", older_than)  # the cutoff must be a date, not an OverflowError
    settings, db = _open(ctx)
    from tvdb.clock import SystemClock

    # the real clock too: a --now in the future must not fold the windows today's budget reads
    result = do_prune(db, age, at, timezone=settings.timezone, dry_run=dry_run, also_now=(SystemClock().now(),),
                      recent=dt.timedelta(seconds=settings.alerts.error_rate_window_s))
    if as_json:
        sys.stdout.write(json.dumps(render_cost.prune_dict(result), indent=2) + "\n")
    else:
        render_cost.print_prune(result, _console())


REPRICE_HELP = """Recompute the cost of stored rows under a price version, from their stored units.

For a price that was wrong (e.g. a per-1M figure entered per token): fix the price table or the
`prices:` key of tvdb.yaml, then reprice. No row is deleted; the old values are kept in the
`usage_reprices` table. Rows with no price in that version are left unchanged.


Examples:
  tvdb cost reprice --dry-run                     # newest version, show what would change
  tvdb cost reprice --price-version 2026-11-01
  tvdb cost reprice --price-version 2026-11-01+config --from-version 2026-11-01
"""


@app.command("reprice", help=REPRICE_HELP, short_help="Recompute stored costs under a price version.")
def reprice(
    ctx: typer.Context,
    price_version: Annotated[
        str | None,
        typer.Option(
            metavar="VERSION",
            help="Price version to apply (default: the newest, including tvdb.yaml overrides).",
        ),
    ] = None,
    from_version: Annotated[
        str | None, typer.Option(metavar="VERSION", help="Only rows currently priced under this version.")
    ] = None,
    dry_run: Annotated[
        bool, typer.Option("--dry-run", help="Show what would change; write nothing.")
    ] = False,
    as_json: Annotated[bool, typer.Option("--json", help="Print the result as JSON.")] = False,
    now: _NowOption = None,
) -> None:
    import json

    from tvdb.cli import render_cost
    from tvdb.ledger.prices import PriceTable
    from tvdb.ledger.reprice import reprice as do_reprice

    settings, db = _open(ctx)
    prices = PriceTable.load(settings.prices)
    version = price_version or prices.versions[-1]
    result = do_reprice(db, prices, version, now=_now(now), from_version=from_version, dry_run=dry_run)
    if as_json:
        sys.stdout.write(json.dumps(render_cost.reprice_dict(result), indent=2) + "\n")
    else:
        render_cost.print_reprice(result, _console())


RECONCILE_HELP = """Replace assumed spend with what the provider really billed, from its usage export.

Assumed spend is the estimate of a request that may have been billed but whose answer was never
read (a timeout after sending, a lost connection, an unreadable 200, a killed process); it counts
as spent until reconciled. FILE is a CSV with a header and the columns date (YYYY-MM-DD, a day in
--timezone), service (openai, llamaparse), model (model or parse tier) and cost_usd (what the
provider billed that day for that model). Old values are kept; running it again changes nothing.


Examples:
  tvdb cost reconcile openai-usage.csv --dry-run
  tvdb cost reconcile openai-usage.csv --json
"""


@app.command("reconcile", help=RECONCILE_HELP, short_help="Correct assumed spend from a provider usage CSV.")
def reconcile(
    ctx: typer.Context,
    file: Annotated[Path, typer.Argument(metavar="FILE", help="Provider usage CSV: date,service,model,cost_usd.")],
    timezone: Annotated[
        str, typer.Option(metavar="ZONE", help="Time zone of the file's dates (provider exports: UTC).")
    ] = "UTC",
    dry_run: Annotated[bool, typer.Option("--dry-run", help="Show what would change; write nothing.")] = False,
    as_json: JsonOption = False,
    now: _NowOption = None,
) -> None:
    import json
    from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

    from tvdb.cli import render_cost
    from tvdb.errors import ConfigError
    from tvdb.ledger.reconcile import reconcile as do_reconcile

    try:
        ZoneInfo(timezone)
    except (ZoneInfoNotFoundError, ValueError):
        raise ConfigError(f"--timezone: unknown time zone {timezone!r} (use an IANA name such as UTC)") from None
    _settings, db = _open(ctx)
    result = do_reconcile(db, file, now=_now(now), timezone=timezone, dry_run=dry_run)
    if as_json:
        sys.stdout.write(json.dumps(render_cost.reconcile_dict(result), indent=2) + "\n")
    else:
        render_cost.print_reconcile(result, _console())


ADVISE_HELP = """Concrete savings from the ledger's own history, in dollars from the stored rows and the price table.

Checks: documents parsed more than once, a cheaper parse tier that parsed the same documents fine,
embedding requests above the request minimum, the Batch API price for runs that can wait, and
cassettes instead of repeated real runs of the same scenario. "saved" is real money; "at live
prices" counts mock calls too (what the advice is worth once those runs go real).

\b
Examples:
  tvdb cost advise
  tvdb cost advise --json | jq '.advice[] | {kind, saved_usd}'
"""


@app.command("advise", help=ADVISE_HELP, short_help="Savings found in the ledger's history, in dollars.")
def advise(ctx: typer.Context, as_json: JsonOption = False, fmt: FormatOption = None) -> None:
    from tvdb.cli.render_history import print_advice
    from tvdb.history.advise import advise as find_savings
    from tvdb.ledger.prices import PriceTable

    chosen = pick_format(fmt, as_json)
    settings, db = _open(ctx)
    print_advice(_console(), find_savings(db, PriceTable.load(settings.prices)), chosen)
