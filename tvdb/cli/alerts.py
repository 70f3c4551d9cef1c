"""`tvdb alerts …`: list, acknowledge and mute budget and error-rate alerts; test delivery."""

from __future__ import annotations

import datetime as dt
import json
import sys
from typing import TYPE_CHECKING, Annotated

import typer

from tvdb.cli.common import NowOption as _NowOption
from tvdb.cli.common import now_or as _now
from tvdb.cli.common import open_ledger as _open
from tvdb.cli.common import plain_console as _console

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
    rich_markup_mode="rich",
)


_SQLITE_MAX_INT = 2**63 - 1  # larger ids or limits make sqlite3 raise OverflowError


def _error(message: str) -> None:
    from rich.console import Console
    from rich.text import Text

    Console(stderr=True, highlight=False).print(Text.assemble(("error:", "bold red"), " ", message))


_SEVERITY_STYLE = {"info": "cyan", "warning": "yellow", "critical": "bold red"}


def _print_alerts(alerts: list[Alert], console: Console, muted_until: dt.datetime | None) -> None:
    from rich.table import Table
    from rich.text import Text

    if muted_until is not None:
        console.print(
            Text(f"muted until {muted_until.isoformat(timespec='minutes')}", "yellow"),
            "(alerts are stored, not sent)",
        )
    if not alerts:
        console.print("no alerts")
        return
    t = Table(title_justify="left")
    for col in ("id", "severity", "raised (UTC)", "alert", "delivery", "ack"):
        t.add_column(col)
    for a in alerts:
        t.add_row(
            str(a.alert_id),
            Text(str(a.severity), _SEVERITY_STYLE.get(str(a.severity), "")),
            a.created_at.strftime("%Y-%m-%d %H:%M"),
            Text.assemble((a.title, "bold"), "\n", a.message),
            a.delivery_status,
            a.acknowledged_at.strftime("%Y-%m-%d %H:%M") if a.acknowledged_at else "",
        )
    console.print(t)


LIST_HELP = """Alerts, newest first: unacknowledged ones unless --all.

[b]Examples[/b]

  tvdb alerts list
  tvdb alerts list --all --json
"""


@app.command("list", help=LIST_HELP)
def list_(
    ctx: typer.Context,
    all_: Annotated[bool, typer.Option("--all", help="Include acknowledged alerts.")] = False,
    as_json: Annotated[
        bool, typer.Option("--json", help="Print a JSON object {alerts, muted_until}.")
    ] = False,
    limit: Annotated[
        int, typer.Option(min=0, max=_SQLITE_MAX_INT, help="At most this many (0 = no limit).")
    ] = 50,
    now: _NowOption = None,
) -> None:
    from tvdb.ledger.alerts import list_alerts, muted_until

    _, db = _open(ctx)
    alerts = list_alerts(db, include_acknowledged=all_, limit=limit or None)
    until = muted_until(db, _now(now))
    if as_json:
        out = {"alerts": [a.as_dict() for a in alerts], "muted_until": until.isoformat() if until else None}
        sys.stdout.write(json.dumps(out, indent=2) + "\n")
    else:
        _print_alerts(alerts, _console(), until)


@app.command(
    "ack",
    help="Acknowledge alerts by id, or every open one.\n\n[b]Examples[/b]\n\n"
    "  tvdb alerts ack 3 4\n\n  tvdb alerts ack --all",
)
def ack(
    ctx: typer.Context,
    ids: Annotated[
        list[int] | None,
        typer.Argument(
            metavar="ID...", min=-_SQLITE_MAX_INT, max=_SQLITE_MAX_INT, help="Alert ids (see tvdb alerts list)."
        ),
    ] = None,
    all_: Annotated[bool, typer.Option("--all", help="Acknowledge every unacknowledged alert.")] = False,
    now: _NowOption = None,
) -> None:
    from tvdb.ledger.alerts import acknowledge

    if bool(ids) == all_:
        _error("give alert ids or --all (not both); see tvdb alerts list")
        raise typer.Exit(2)
    _, db = _open(ctx)
    done = acknowledge(db, None if all_ else list(ids or []), now=_now(now))
    missing = sorted(set(ids or []) - set(done))
    if done or not missing:
        _console().print(f"acknowledged {len(done)} alert(s)" + (f": {', '.join(map(str, done))}" if done else ""))
    if missing:
        _error(f"no open alert with id {', '.join(map(str, missing))} (see `tvdb alerts list --all`)")
        raise typer.Exit(2)


MUTE_HELP = """Stop sending alerts for a while; they are still raised and stored.

[b]Examples[/b]

  tvdb alerts mute --for 2h
  tvdb alerts mute --for 1d --reason "load test"
"""


@app.command("mute", help=MUTE_HELP)
def mute(
    ctx: typer.Context,
    for_: Annotated[str, typer.Option("--for", metavar="DURATION", help="How long: 30m, 2h, 1d.")],
    reason: Annotated[str | None, typer.Option(metavar="TEXT", help="Why (shown in the ledger).")] = None,
    now: _NowOption = None,
) -> None:
    from tvdb.ledger.alerts import mute as do_mute
    from tvdb.ledger.periods import parse_duration, shift

    duration = parse_duration(for_, what="--for")
    at = _now(now)
    shift(at, duration, "--for", for_)  # the end of the mute must be a date, not an OverflowError
    _, db = _open(ctx)
    until = do_mute(db, now=at, duration=duration, reason=reason)
    _console().print(
        f"alerts muted until {until.isoformat(timespec='minutes')} "
        "(still stored; `tvdb alerts unmute` ends it)"
    )


@app.command("unmute", help="End the mute window now.")
def unmute(ctx: typer.Context, now: _NowOption = None) -> None:
    from tvdb.ledger.alerts import unmute as do_unmute

    _, db = _open(ctx)
    n = do_unmute(db, now=_now(now))
    _console().print("alerts unmuted" if n else "alerts were not muted")


def _print_deliveries(results: list[DeliveryResult], console: Console) -> None:
    for r in results:
        from rich.text import Text

        why = f" ({r.reason})" if r.reason else ""
        mark = Text(r.status, "green" if r.status == "delivered" else "red")
        console.print(Text.assemble(f"{r.target}: ", mark, f" after {r.attempts} attempt(s){why}"))


@app.command(
    "test", help="Send a test alert to every configured channel (webhook, Slack, email); ignores mute."
)
def test(ctx: typer.Context, now: _NowOption = None) -> None:
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
    _print_deliveries(results, _console())
    if any(r.status != "delivered" for r in results):
        raise typer.Exit(1)


@app.command(
    "check", help="Evaluate the thresholds now and deliver new alerts (for cron; runs do this at their end)."
)
def check(ctx: typer.Context, now: _NowOption = None) -> None:
    from tvdb.alerts.delivery import deliver_alerts
    from tvdb.clock import FakeClock, SystemClock
    from tvdb.ledger.alerts import evaluate_alerts, format_alert

    settings, db = _open(ctx)
    clock = FakeClock(_now(now)) if now else SystemClock()
    new = evaluate_alerts(db, settings, clock)
    console = _console()
    for a in new:
        console.print(format_alert(a))
    if not new:
        console.print("no new alerts")
    _print_deliveries(deliver_alerts(new, settings, db=db, clock=clock), console)
