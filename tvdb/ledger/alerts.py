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
import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from decimal import Decimal
from enum import StrEnum
from typing import Any

from tvdb.clock import Clock, iso
from tvdb.config import Settings
from tvdb.ledger.prices import nusd_to_usd, usd_to_nusd
from tvdb.ledger.reservations import ReservationStore
from tvdb.ledger.windows import day_window, real_spend_nusd
from tvdb.money import format_usd
from tvdb.storage import Database, transaction


class Severity(StrEnum):
    INFO = "info"
    WARNING = "warning"
    CRITICAL = "critical"


@dataclass(frozen=True, slots=True)
class Alert:
    """One stored alert. `delivery_status`: pending | muted | delivered | failed | no_channels."""

    alert_id: int
    key: str
    kind: str  # budget | error_rate | test
    severity: Severity
    title: str
    message: str
    created_at: dt.datetime
    window_label: str
    window_start: dt.datetime | None = None
    window_end: dt.datetime | None = None
    details: Mapping[str, Any] = field(default_factory=dict)
    muted: bool = False
    delivery_status: str = "pending"
    acknowledged_at: dt.datetime | None = None

    def as_dict(self) -> dict[str, Any]:
        return {
            "id": self.alert_id, "key": self.key, "kind": self.kind, "severity": str(self.severity),
            "title": self.title, "message": self.message, "created_at": iso(self.created_at),
            "window": self.window_label,
            "window_start": iso(self.window_start) if self.window_start else None,
            "window_end": iso(self.window_end) if self.window_end else None,
            "details": dict(self.details), "muted": self.muted, "delivery_status": self.delivery_status,
            "acknowledged_at": iso(self.acknowledged_at) if self.acknowledged_at else None,
        }


def format_alert(alert: Alert) -> str:
    """One line for a terminal: `[warning] #3 Daily budget 80% used: …`."""
    return f"[{alert.severity}] #{alert.alert_id} {alert.title}: {alert.message}"


def budget_severity(pct: float) -> Severity:
    return Severity.CRITICAL if pct >= 100 else Severity.WARNING if pct >= 80 else Severity.INFO


_COLUMNS = (
    "alert_id, key, kind, severity, title, message, created_at, window_label, window_start, window_end, "
    "details_json, muted, delivery_status, acknowledged_at"
)


def _ts(text: str | None) -> dt.datetime | None:
    return dt.datetime.fromisoformat(text) if text else None


def _from_row(r: Sequence[Any]) -> Alert:
    return Alert(
        alert_id=r[0], key=r[1], kind=r[2], severity=Severity(r[3]), title=r[4], message=r[5],
        created_at=dt.datetime.fromisoformat(r[6]), window_label=r[7], window_start=_ts(r[8]),
        window_end=_ts(r[9]), details=json.loads(r[10] or "{}"), muted=bool(r[11]),
        delivery_status=r[12], acknowledged_at=_ts(r[13]),
    )


def muted_until(db: Database, now: dt.datetime) -> dt.datetime | None:
    """The end of the open mute window at `now`, or None when alerts are not muted."""
    row = db.execute(
        "SELECT MAX(until) FROM alert_mutes WHERE ended_at IS NULL AND until > ?", [iso(now)]
    ).fetchone()
    return _ts(row[0])


def mute(db: Database, *, now: dt.datetime, duration: dt.timedelta,
         reason: str | None = None) -> dt.datetime:
    """Suppress delivery (not storage) of alerts until `now + duration`; returns that time."""
    until = now + duration
    with transaction(db):
        db.execute(
            "INSERT INTO alert_mutes (created_at, until, reason) VALUES (?, ?, ?)",
            [iso(now), iso(until), reason],
        )
    return until


def unmute(db: Database, *, now: dt.datetime) -> int:
    """End every open mute window; returns how many were open."""
    with transaction(db):
        cur = db.execute(
            "UPDATE alert_mutes SET ended_at = ? WHERE ended_at IS NULL AND until > ?", [iso(now), iso(now)]
        )
    return cur.rowcount


def _insert(db: Database, alert: Alert) -> Alert | None:
    """Store `alert` unless its key exists; the stored alert (with its id) or None."""
    row = db.execute(
        "INSERT INTO alerts (key, kind, severity, title, message, created_at, window_label, "
        "window_start, window_end, details_json, muted, delivery_status) VALUES (?,?,?,?,?,?,?,?,?,?,?,?) "
        "ON CONFLICT (key) DO NOTHING RETURNING alert_id",
        [
            alert.key, alert.kind, str(alert.severity), alert.title, alert.message, iso(alert.created_at),
            alert.window_label, iso(alert.window_start) if alert.window_start else None,
            iso(alert.window_end) if alert.window_end else None,
            json.dumps(dict(alert.details), sort_keys=True),
            int(alert.muted), alert.delivery_status,
        ],
    ).fetchone()
    return None if row is None else get_alert(db, int(row[0]))


def get_alert(db: Database, alert_id: int) -> Alert | None:
    row = db.execute(f"SELECT {_COLUMNS} FROM alerts WHERE alert_id = ?", [alert_id]).fetchone()
    return None if row is None else _from_row(row)


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


def _refusal_candidates(db: Database, settings: Settings, now: dt.datetime,
                        refusals: Sequence[str]) -> list[Alert]:
    if not refusals:
        return []
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
    marks = ", ".join("?" for _ in implementations)
    # calls of a run whose scenario injects faults are left out: its 429s are the test doing its job,
    # and an alert on every CI run of it would teach people to ignore the alert (budget alerts still
    # count every cent; the rows stay in the ledger, in `runs compare` and on the dashboard)
    rows = db.execute(
        "SELECT service, COUNT(*), SUM(status = 'error') FROM usage "
        f"WHERE ts >= ? AND ts < ? AND implementation IN ({marks}) "
        "AND (run_id IS NULL OR run_id NOT IN (SELECT run_id FROM runs "
        "WHERE COALESCE(json_array_length(json_extract(spec_json, '$.scenario.faults')), 0) > 0)) "
        "GROUP BY service ORDER BY service",
        [iso(start), iso(now + dt.timedelta(microseconds=1)), *implementations],
    ).fetchall()
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
    while muted are stored with `muted=True` and `delivery_status='muted'`.
    """
    now = clock.now()
    new: list[Alert] = []
    with transaction(db):
        is_muted = muted_until(db, now) is not None
        candidates = [*_refusal_candidates(db, settings, now, refusals), *_budget_candidates(db, settings, now),
                      *_error_rate_candidates(db, settings, now, error_rate_implementations)]
        for c in candidates:
            stored = _insert(db, _muted(c) if is_muted else c)
            if stored is not None:
                new.append(stored)
    return new


def _muted(a: Alert) -> Alert:
    return replace(a, muted=True, delivery_status="muted")


def list_alerts(db: Database, *, include_acknowledged: bool = False,
                limit: int | None = None) -> list[Alert]:
    """Alerts, newest first; unacknowledged only unless `include_acknowledged`."""
    cond = "" if include_acknowledged else " WHERE acknowledged_at IS NULL"
    lim = f" LIMIT {int(limit)}" if limit else ""
    rows = db.execute(f"SELECT {_COLUMNS} FROM alerts{cond} ORDER BY alert_id DESC{lim}")
    return [_from_row(r) for r in rows]


def acknowledge(db: Database, ids: Sequence[int] | None, *, now: dt.datetime) -> list[int]:
    """Acknowledge alerts `ids` (None: all unacknowledged); returns the ids that were acknowledged."""
    with transaction(db):
        if ids is None:
            todo = [r[0] for r in db.execute("SELECT alert_id FROM alerts WHERE acknowledged_at IS NULL")]
        else:
            marks = ", ".join("?" for _ in ids) or "NULL"
            todo = [r[0] for r in db.execute(
                f"SELECT alert_id FROM alerts WHERE acknowledged_at IS NULL AND alert_id IN ({marks})",
                list(ids),
            )]
        db.executemany(
            "UPDATE alerts SET acknowledged_at = ? WHERE alert_id = ?", [(iso(now), i) for i in todo]
        )
    return sorted(todo)


def record_deliveries(
    db: Database, alert_id: int, outcomes: Sequence[tuple[str, str, int, str | None]], *,
    now: dt.datetime, status: str,
) -> None:
    """Store delivery outcomes (channel, status, attempts, reason) and the alert's summary status."""
    with transaction(db):
        db.executemany(
            "INSERT INTO alert_deliveries (alert_id, channel, status, attempts, reason, at) "
            "VALUES (?,?,?,?,?,?)",
            [(alert_id, ch, st, n, reason, iso(now)) for ch, st, n, reason in outcomes],
        )
        db.execute("UPDATE alerts SET delivery_status = ? WHERE alert_id = ?", [status, alert_id])


def deliveries(db: Database, alert_id: int) -> list[dict[str, Any]]:
    cur = db.execute(
        "SELECT channel, status, attempts, reason, at FROM alert_deliveries WHERE alert_id = ? ORDER BY id",
        [alert_id],
    )
    return [dict(zip(("channel", "status", "attempts", "reason", "at"), r, strict=True)) for r in cur]
