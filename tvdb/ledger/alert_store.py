"""The alerts' tables, owned here with their migrations: `alerts` (one per threshold per window:
`key` is unique), `alert_deliveries` and `alert_mutes` (tvdb.ledger.alerts decides, this stores).
"""

from __future__ import annotations

import sqlite_utils

from tvdb.storage import Migration


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


M010 = Migration(__name__, _m010_alerts)
