"""Budget and error-rate alerts, stored in the ledger: raise, list, acknowledge, mute.

`evaluate_alerts` (called by the runner at the end of a run) raises:

- a budget alert for each threshold of `alerts.thresholds_pct` (default 50/80/100 % of the daily
  budget, real money spent today in the configured zone): info below 80 %, warning below 100 %,
  critical from 100 %; key `budget:<day start>:<pct>`;
- an error-rate alert per service when, over the last `alerts.error_rate_window_s` seconds, it had
  at least `alerts.error_rate_min_calls` real calls (not counting runs whose scenario injects
  faults) and errors/calls ≥ `alerts.error_rate_threshold`
  (warning); key `error_rate:<service>:<window bucket start>`, buckets aligned to the window length.

Each key is unique in the table, so an alert is raised once per threshold per window even when
several processes evaluate at the same time. While a mute window is open, alerts are still
stored but marked `muted`, and `tvdb.alerts.deliver_alerts` does not send them.
"""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Sequence
from dataclasses import replace
from decimal import Decimal

from tvdb.clock import Clock, iso
from tvdb.config import Settings
from tvdb.ledger.alert_store import (
    Alert,
    Severity,
    acknowledge,
    deliveries,
    get_alert,
    insert_alert,
    list_alerts,
    mute,
    muted_until,
    record_deliveries,
    unmute,
)
from tvdb.ledger.prices import nusd_to_usd, usd_to_nusd
from tvdb.ledger.reservations import ReservationStore
from tvdb.ledger.usage_store import UsageStore
from tvdb.ledger.windows import day_window, real_spend_nusd
from tvdb.money import format_usd
from tvdb.storage import Database, transaction

# the stored alerts' API lives with their tables (tvdb.ledger.alert_store); callers import it from here
__all__ = ["Alert", "Severity", "acknowledge", "budget_severity", "deliveries", "evaluate_alerts", "format_alert",
           "get_alert", "list_alerts", "mute", "muted_until", "record_deliveries", "unmute"]


def format_alert(alert: Alert) -> str:
    """One line for a terminal: `[warning] #3 Daily budget 80% used: …`."""
    return f"[{alert.severity}] #{alert.alert_id} {alert.title}: {alert.message}"


def budget_severity(pct: float) -> Severity:
    return Severity.CRITICAL if pct >= 100 else Severity.WARNING if pct >= 80 else Severity.INFO


def _budget_candidates(db: Database, settings: Settings, now: dt.datetime) -> list[Alert]:
    window = day_window(now, settings.timezone)
    budget = usd_to_nusd(Decimal(str(settings.daily_budget_usd)))
    spent = real_spend_nusd(db, window)
    if spent == 0:
        return []
    pct = float("inf") if budget == 0 else 100 * spent / budget
    reserved = ReservationStore(db).held_nusd()
    out = []
    for threshold in sorted(set(settings.alerts.thresholds_pct)):
        if pct < threshold:
            continue
        details = {
            "threshold_pct": threshold, "percent_used": None if budget == 0 else pct,
            "spent_usd": nusd_to_usd(spent), "daily_budget_usd": nusd_to_usd(budget),
            "reserved_usd": nusd_to_usd(reserved),
        }
        used = "over a $0 budget" if budget == 0 else f"{pct:.1f}%"
        out.append(Alert(
            alert_id=0, key=f"budget:{window.start_iso}:{threshold:g}", kind="budget",
            severity=budget_severity(threshold), title=f"Daily budget {threshold:g}% used",
            message=(
                f"spent {format_usd(nusd_to_usd(spent))} of the {format_usd(nusd_to_usd(budget))} daily budget "
                f"({used}), {window.label}; {format_usd(nusd_to_usd(reserved))} reserved by calls in flight"
            ),
            created_at=now, window_label=window.label, window_start=window.start, window_end=window.end,
            details=details,
        ))
    return out


_RUN_REFUSAL = re.compile(r"run (\S+) budget ")  # CostLimitExceeded's message for a run's own budget


def _refusal_candidates(db: Database, settings: Settings, now: dt.datetime,
                        refusals: Sequence[str]) -> list[Alert]:
    """A refusal by the daily budget is the day's 100 % alert; one by a run's own budget
    (`budget.max_usd`) is that run's alert, so it never takes the key of the day's real breach."""
    runs: dict[str, list[str]] = {}
    for r in refusals:
        if (m := _RUN_REFUSAL.match(r)) is not None:
            runs.setdefault(m[1], []).append(r)
    daily = [r for r in refusals if not _RUN_REFUSAL.match(r)]
    out = _daily_refusal(db, settings, now, daily) if daily else []
    return out + [_run_refusal(settings, now, run_id, messages) for run_id, messages in runs.items()]


def _run_refusal(settings: Settings, now: dt.datetime, run_id: str, refusals: list[str]) -> Alert:
    window = day_window(now, settings.timezone)
    return Alert(
        alert_id=0, key=f"run_budget:{run_id}", kind="budget", severity=Severity.CRITICAL,
        title="Run budget reached: calls were refused", message="; ".join(refusals),
        created_at=now, window_label=window.label, window_start=window.start, window_end=window.end,
        details={"threshold_pct": 100.0, "run_id": run_id, "refused": list(refusals)},
    )


def _daily_refusal(db: Database, settings: Settings, now: dt.datetime, refusals: list[str]) -> list[Alert]:
    window = day_window(now, settings.timezone)
    budget = usd_to_nusd(Decimal(str(settings.daily_budget_usd)))
    spent = real_spend_nusd(db, window)
    reserved = ReservationStore(db).held_nusd()
    details = {
        "threshold_pct": 100.0, "percent_used": None if budget == 0 else 100 * spent / budget,
        "spent_usd": nusd_to_usd(spent), "daily_budget_usd": nusd_to_usd(budget),
        "reserved_usd": nusd_to_usd(reserved), "refused": list(refusals),
    }
    return [Alert(
        alert_id=0, key=f"budget:{window.start_iso}:100", kind="budget", severity=Severity.CRITICAL,
        title="Budget reached: calls were refused",
        message=(f"{'; '.join(refusals)} (spent {format_usd(nusd_to_usd(spent))} of the "
                 f"{format_usd(nusd_to_usd(budget))} daily budget, {window.label})"),
        created_at=now, window_label=window.label, window_start=window.start, window_end=window.end,
        details=details,
    )]


def _error_rate_candidates(db: Database, settings: Settings, now: dt.datetime,
                           implementations: Sequence[str]) -> list[Alert]:
    cfg = settings.alerts
    start = now - dt.timedelta(seconds=cfg.error_rate_window_s)
    epoch = int(now.timestamp())
    bucket = dt.datetime.fromtimestamp(epoch - epoch % cfg.error_rate_window_s, dt.UTC)
    # calls of a run whose scenario injects faults are left out (UsageStore.errors_by_service): its 429s
    # are the test doing its job, and an alert on every CI run of it would teach people to ignore the
    # alert (budget alerts still count every cent; the rows stay in the ledger and on the dashboard)
    rows = UsageStore(db).errors_by_service(start, now + dt.timedelta(microseconds=1), implementations)
    out = []
    minutes = cfg.error_rate_window_s / 60
    for service, calls, errors in rows:
        if calls < cfg.error_rate_min_calls or errors / calls < cfg.error_rate_threshold:
            continue
        label = f"last {minutes:g} min to {now.strftime('%Y-%m-%d %H:%M:%S')}Z"
        out.append(Alert(
            alert_id=0, key=f"error_rate:{service}:{iso(bucket)}", kind="error_rate",
            severity=Severity.WARNING,
            title=f"{service} error rate {100 * errors / calls:.0f}%",
            message=(
                f"{errors} of {calls} {'/'.join(implementations)} calls to {service} failed in the "
                f"{label} (threshold {100 * cfg.error_rate_threshold:g}%)"
            ),
            created_at=now, window_label=label, window_start=start, window_end=now,
            details={"service": service, "calls": calls, "errors": errors, "error_rate": errors / calls,
                     "threshold": cfg.error_rate_threshold},
        ))
    return out


def evaluate_alerts(
    db: Database, settings: Settings, clock: Clock, *,
    error_rate_implementations: Sequence[str] = ("real",), refusals: Sequence[str] = (),
) -> list[Alert]:
    """Raise and store the alerts due now; returns only the new ones (already raised keys are skipped).

    `refusals`: why budgets refused calls of the run that is ending (CostLimitExceeded messages). A
    refusal raises the critical 100 % alert of the day (key `budget:<day start>:100`) even though the
    refused call left spend under the budget: the budget is full for what the run needed.

    Error rates count real calls by default (mock faults are planned, not incidents). Alerts raised
    while muted are stored with `muted=True` and `delivery_status='muted'`. New alerts are stored and
    returned in `_order`: budget thresholds ascending, then error rates by service.
    """
    now = clock.now()
    new: list[Alert] = []
    with transaction(db):
        is_muted = muted_until(db, now) is not None
        candidates = [*_refusal_candidates(db, settings, now, refusals), *_budget_candidates(db, settings, now),
                      *_error_rate_candidates(db, settings, now, error_rate_implementations)]
        for c in sorted(candidates, key=_order):
            stored = insert_alert(db, _muted(c) if is_muted else c)
            if stored is not None:
                new.append(stored)
    return new


def _order(a: Alert) -> tuple[int, float, str]:
    """Budget alerts by threshold (50, 80, 100: the order the day crossed them), then error rates by
    service. A refusal's 100 % alert is built first but must not be stored, printed and listed
    before the 50 % one: alert ids follow this order."""
    return (0 if a.kind == "budget" else 1, float(a.details.get("threshold_pct", 0.0)), a.key)


def _muted(a: Alert) -> Alert:
    return replace(a, muted=True, delivery_status="muted")


