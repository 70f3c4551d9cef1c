"""`tvdb alerts …`: list, acknowledge and mute budget and error-rate alerts; test delivery."""

from __future__ import annotations

import datetime as dt
from typing import TYPE_CHECKING, Annotated, Any

import typer
from rich.text import Text

from tvdb.cli.common import NowOption as _NowOption
from tvdb.cli.common import now_or as _now
from tvdb.cli.common import open_ledger as _open
from tvdb.cli.common import option_errors
from tvdb.cli.common import plain_console as _console
from tvdb.cli.output import (
    Col,
    Format,
    FormatOption,
    JsonOption,
    Kind,
    TableData,
    clean,
    emit_table,
    pick_format,
    print_table,
    stdout_json,
)

if TYPE_CHECKING:
    from rich.console import Console

    from tvdb.alerts.delivery import DeliveryResult
    from tvdb.ledger.alerts import Alert

app = typer.Typer(
    help=(
        "Budget and error-rate alerts: raised at the end of runs (50/80/100 % of the daily budget, "
        "service error rates), stored in the ledger, delivered to a webhook, Slack and email."
    ),
    no_args_is_help=True,
)


_SQLITE_MAX_INT = 2**63 - 1  # larger ids or limits make sqlite3 raise OverflowError
_SEVERITY_STYLE = {"info": "cyan", "warning": "yellow", "critical": "bold red"}


def _sqlite_int(value: Any) -> Any:
    """Typer callback: an int SQLite can hold (checked here rather than with min/max, whose
    `[0<=x<=9223372036854775807]` would fill the help)."""
    for v in value if isinstance(value, list) else [value]:
        if v is not None and not -_SQLITE_MAX_INT <= v <= _SQLITE_MAX_INT:
            raise typer.BadParameter(f"{v} is too large")
    return value


def _alerts_table(alerts: list[Alert]) -> TableData:
    cols = [Col("id", Kind.NUM), Col("severity", Kind.WORD), Col("raised (UTC)", Kind.ID, "created_at"),
            Col("alert", Kind.TEXT), Col("delivery", Kind.WORD, "delivery_status"), Col("ack", Kind.ID)]
    rows: list[list[str | Text | None]] = []
    for a in alerts:
        rows.append([
            str(a.alert_id),
            Text(str(a.severity), _SEVERITY_STYLE.get(str(a.severity), "")),
            a.created_at.strftime("%Y-%m-%d %H:%M"),
            Text.assemble((clean(a.title), "bold"), "\n", clean(a.message)),
            a.delivery_status,
            a.acknowledged_at.strftime("%Y-%m-%d %H:%M") if a.acknowledged_at else "",
        ])
    return TableData(cols, rows)


def _print_alerts(alerts: list[Alert], console: Console, muted_until: dt.datetime | None, fmt: Format) -> None:
    if muted_until is not None and fmt in (Format.TABLE, Format.PLAIN):
        console.print(
            Text(f"muted until {muted_until.isoformat(timespec='minutes')}", "yellow"),
            "(alerts are stored, not sent)",
        )
    if fmt is Format.CSV:
        emit_table(console, _alerts_table(alerts), fmt)
    elif not alerts:
        console.print("no alerts")
    else:
        print_table(console, _alerts_table(alerts), plain=fmt is Format.PLAIN)


LIST_HELP = """Alerts, newest first: unacknowledged ones unless --all.


Examples:
  tvdb alerts list
  tvdb alerts list --all --json
"""


@app.command("list", help=LIST_HELP)
def list_(
    ctx: typer.Context,
    all_: Annotated[bool, typer.Option("--all", help="Include acknowledged alerts.")] = False,
    as_json: Annotated[
        bool, typer.Option("--json", help="Print a JSON object {alerts, muted_until} (same as --format json).")
    ] = False,
    fmt: FormatOption = None,
    limit: Annotated[
        int, typer.Option(min=0, callback=_sqlite_int, help="At most this many (0 = no limit).")
    ] = 50,
    now: _NowOption = None,
) -> None:
    from tvdb.ledger.alerts import list_alerts, muted_until

    chosen = pick_format(fmt, as_json)
    _, db = _open(ctx)
    alerts = list_alerts(db, include_acknowledged=all_, limit=limit or None)
    until = muted_until(db, _now(now))
    if chosen is Format.JSON:
        stdout_json({"alerts": [a.as_dict() for a in alerts], "muted_until": until.isoformat() if until else None})
    else:
        _print_alerts(alerts, _console(), until, chosen)


@app.command(
    "ack",
    help="Acknowledge alerts by id, or every open one.\n\n\b\nExamples:\n"
    "  tvdb alerts ack 3 4\n  tvdb alerts ack --all",
)
def ack(
    ctx: typer.Context,
    ids: Annotated[
        list[int] | None,
        typer.Argument(
            metavar="ID", callback=_sqlite_int, help="Alert ids (see tvdb alerts list)."
        ),
    ] = None,
    all_: Annotated[bool, typer.Option("--all", help="Acknowledge every unacknowledged alert.")] = False,
    as_json: JsonOption = False,
    now: _NowOption = None,
) -> None:
    from tvdb.errors import ConfigError
    from tvdb.ledger.alerts import acknowledge

    if bool(ids) == all_:
        raise typer.BadParameter("give alert ids or --all (not both); see tvdb alerts list", param_hint="ID")
    _, db = _open(ctx)
    done = acknowledge(db, None if all_ else list(ids or []), now=_now(now))
    missing = sorted(set(ids or []) - set(done))
    if missing:
        # the ones that exist are acknowledged; the error says which did not
        raise ConfigError(f"no open alert with id {', '.join(map(str, missing))} (see `tvdb alerts list --all`)"
                          + (f"; acknowledged {', '.join(map(str, done))}" if done else ""))
    if as_json:
        stdout_json({"acknowledged": done})
    else:
        _console().print(f"acknowledged {len(done)} alert(s)" + (f": {', '.join(map(str, done))}" if done else ""))


MUTE_HELP = """Stop sending alerts for a while; they are still raised and stored.


Examples:
  tvdb alerts mute --for 2h
  tvdb alerts mute --for 1d --reason "load test"
"""


@app.command("mute", help=MUTE_HELP)
def mute(
    ctx: typer.Context,
    for_: Annotated[str, typer.Option("--for", metavar="DURATION", help="How long: 30m, 2h, 1d.")],
    reason: Annotated[str | None, typer.Option(metavar="TEXT", help="Why (shown in the ledger).")] = None,
    as_json: JsonOption = False,
    now: _NowOption = None,
) -> None:
    from tvdb.ledger.alerts import mute as do_mute
    from tvdb.ledger.periods import parse_duration, shift

    with option_errors(ctx):
        duration = parse_duration(for_, what="--for")
        at = _now(now)
        shift(at, duration, "--for", for_)  # the end of the mute must be a date, not an OverflowError
    _, db = _open(ctx)
    until = do_mute(db, now=at, duration=duration, reason=reason)
    if as_json:
        stdout_json({"muted_until": until.isoformat(), "reason": reason})
        return
    _console().print(
        f"alerts muted until {until.isoformat(timespec='minutes')} "
        "(still stored; `tvdb alerts unmute` ends it)"
    )


@app.command("unmute", help="End the mute window now.")
def unmute(ctx: typer.Context, as_json: JsonOption = False, now: _NowOption = None) -> None:
    from tvdb.ledger.alerts import unmute as do_unmute

    _, db = _open(ctx)
    n = do_unmute(db, now=_now(now))
    if as_json:
        stdout_json({"unmuted": bool(n)})
    else:
        _console().print("alerts unmuted" if n else "alerts were not muted")


def _deliveries_json(results: list[DeliveryResult]) -> list[dict[str, Any]]:
    return [{"target": r.target, "status": r.status, "attempts": r.attempts, "reason": r.reason} for r in results]


def _print_deliveries(results: list[DeliveryResult], console: Console) -> None:
    for r in results:
        why = f" ({clean(r.reason)})" if r.reason else ""
        mark = Text(r.status, "green" if r.status == "delivered" else "red")
        console.print(Text.assemble(f"{clean(r.target)}: ", mark, f" after {r.attempts} attempt(s){why}"))


@app.command(
    "test", help="Send a test alert to every configured channel (webhook, Slack, email); ignores mute.",
    short_help="Send a test alert to every configured channel.",
)
def test(ctx: typer.Context, as_json: JsonOption = False, now: _NowOption = None) -> None:
    from tvdb.alerts.channels import configured_channels
    from tvdb.alerts.delivery import deliver_alerts, make_test_alert
    from tvdb.errors import ConfigError

    settings, _ = _open(ctx)
    if not configured_channels(settings.alerts):
        raise ConfigError(
            "no alert channel configured: set alerts.webhook_url, alerts.slack_webhook_url or "
            "alerts.smtp.host + alerts.smtp.recipients in tvdb.yaml (or TVDB_ALERTS_WEBHOOK_URL, "
            "TVDB_ALERTS_SLACK_WEBHOOK_URL, TVDB_ALERTS_SMTP_HOST …)"
        )
    results = deliver_alerts([make_test_alert(_now(now))], settings)
    if as_json:
        stdout_json({"deliveries": _deliveries_json(results), "exit_code": 0 if all(
            r.status == "delivered" for r in results) else 1})
    else:
        _print_deliveries(results, _console())
    if any(r.status != "delivered" for r in results):
        raise typer.Exit(1)


@app.command(
    "check", help="Evaluate the thresholds now and deliver new alerts (for cron; runs do this at their end).",
    short_help="Raise and deliver new alerts now (for cron).",
)
def check(ctx: typer.Context, as_json: JsonOption = False, now: _NowOption = None) -> None:
    from tvdb.alerts.delivery import deliver_alerts
    from tvdb.clock import FakeClock, SystemClock
    from tvdb.ledger.alerts import evaluate_alerts, format_alert

    settings, db = _open(ctx)
    clock = FakeClock(_now(now)) if now else SystemClock()
    new = evaluate_alerts(db, settings, clock)
    deliveries = deliver_alerts(new, settings, db=db, clock=clock)
    if as_json:
        stdout_json({"alerts": [a.as_dict() for a in new], "deliveries": _deliveries_json(deliveries)})
        return
    console = _console()
    for a in new:
        console.print(format_alert(a))
    if not new:
        console.print("no new alerts")
    _print_deliveries(deliveries, console)
