"""The alerts' tables, owned here with their migrations: `alerts` (one per threshold per window:
`key` is unique), `alert_deliveries` and `alert_mutes` (tvdb.ledger.alerts decides, this stores).
"""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any

import sqlite_utils

from tvdb.clock import iso
from tvdb.storage import Database, Migration, transaction


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


def insert_alert(db: Database, alert: Alert) -> Alert | None:
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


def list_alerts(db: Database, *, include_acknowledged: bool = False,
                limit: int | None = None) -> list[Alert]:
    """Alerts, newest first (by the time they were raised, then by id: of the alerts raised together, the
    highest budget threshold first); unacknowledged only unless `include_acknowledged`."""
    cond = "" if include_acknowledged else " WHERE acknowledged_at IS NULL"
    lim = f" LIMIT {int(limit)}" if limit else ""
    rows = db.execute(f"SELECT {_COLUMNS} FROM alerts{cond} ORDER BY created_at DESC, alert_id DESC{lim}")
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


def _m010_alerts(db: sqlite_utils.Database) -> None:
    """Alerts (one per threshold per window: `key` is unique), their deliveries, and mute windows."""
    db.table("alerts").create(
        {
            "alert_id": int, "key": str, "kind": str, "severity": str, "title": str, "message": str,
            "created_at": str, "window_label": str, "window_start": str, "window_end": str,
            "details_json": str, "muted": int, "delivery_status": str, "acknowledged_at": str,
        },
        pk="alert_id",
    )
    db.table("alerts").create_index(["key"], unique=True)
    db.table("alerts").create_index(["acknowledged_at"])
    db.table("alert_deliveries").create(
        {
            "id": int, "alert_id": int, "channel": str, "status": str, "attempts": int, "reason": str,
            "at": str,
        },
        pk="id",
    )
    db.table("alert_deliveries").create_index(["alert_id"])
    db.table("alert_mutes").create(
        {"id": int, "created_at": str, "until": str, "reason": str, "ended_at": str}, pk="id"
    )


# PostgreSQL's steps (tvdb.storage.postgres), the same schema in its dialect: bigint for INTEGER,
# double precision for REAL, bytea for BLOB, identity columns for integer ids (tests/test_pg_schema.py).

_PG_M010 = (
    "CREATE TABLE alerts (alert_id bigint GENERATED BY DEFAULT AS IDENTITY PRIMARY KEY, key text, kind text, "
    "severity text, title text, message text, created_at text, window_label text, window_start text, "
    "window_end text, details_json text, muted bigint, delivery_status text, acknowledged_at text)",
    "CREATE UNIQUE INDEX idx_alerts_key ON alerts (key)",
    "CREATE INDEX idx_alerts_acknowledged_at ON alerts (acknowledged_at)",
    "CREATE TABLE alert_deliveries (id bigint GENERATED BY DEFAULT AS IDENTITY PRIMARY KEY, alert_id bigint, "
    "channel text, status text, attempts bigint, reason text, at text)",
    "CREATE INDEX idx_alert_deliveries_alert_id ON alert_deliveries (alert_id)",
    "CREATE TABLE alert_mutes (id bigint GENERATED BY DEFAULT AS IDENTITY PRIMARY KEY, created_at text, until text, "
    "reason text, ended_at text)",
)


M010 = Migration(__name__, _m010_alerts, postgresql=_PG_M010)
