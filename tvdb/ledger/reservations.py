"""The `reservations` table: money and one request slot held for a real call until it settles.

    active ─┬─ settled    the provider answered; `settled_nusd` is what it billed
            ├─ assumed    it may have billed and we cannot tell: the estimate is spent (a usage row
            │             with `assumed = 1` carries it), either because the call's outcome was
            │             unreadable or because the reservation's owner is gone
            └─ released   proven not processed: the money is free again

An active reservation counts against every budget until it leaves `active`; it never lapses into
free room. Its owner is "gone" when the process that took it is dead (pid and pid start time on
this host: `tvdb.owner`) or, for an owner on another host, when its lease (`expires_at`) has
passed. `sweep` turns such reservations into assumed spend. Rows written by older versions with
status `expired` are swept the same way. All amounts are integer nano-USD.
"""

from __future__ import annotations

import datetime as dt
import json
from typing import Any

import sqlite_utils

from tvdb.clock import iso
from tvdb.domain import Implementation
from tvdb.ledger.guard import Reservation
from tvdb.ledger.usage import Pricing, UsageRow, insert_usage
from tvdb.owner import owner_alive
from tvdb.storage import Database, Migration, transaction

OWNER_GONE = "owner_gone"  # error_code of the usage row that carries a swept reservation's estimate
_OPEN = "('active', 'expired')"


class ReservationStore:
    """SQL for the `reservations` table. Every method joins the caller's open transaction."""

    def __init__(self, db: Database) -> None:
        self.db = db

    def insert(self, reservation: Reservation, now: dt.datetime, owner: dict[str, Any]) -> None:
        request, scope = reservation.request, reservation.request.scope
        assert reservation.expires_at is not None
        self.db.execute(
            "INSERT INTO reservations (reservation_id, created_at, expires_at, service, model, run_id, "
            "scenario, stage, correlation_id, job_ids, units, unit, amount_nusd, status, pid, pid_started, "
            "host) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, 'active', ?, ?, ?)",
            [reservation.reservation_id, iso(now), iso(reservation.expires_at), request.service,
             request.model, scope.run_id, scope.scenario, scope.stage, scope.correlation_id,
             json.dumps(list(scope.job_ids)), request.units, request.unit, request.estimate_nusd,
             owner["pid"], owner["pid_started"], owner["host"]],
        )

    def settle(self, reservation_id: str, actual_nusd: int | None, now: dt.datetime) -> None:
        """→ settled with what the provider billed. If a sweep had already taken the owner for gone
        (a lease that ran out while the call was still alive), its assumed usage row is replaced by
        the real one the caller writes in the same transaction."""
        with transaction(self.db):
            # UPDATE first: on PostgreSQL it waits for a sweep that holds this row, and the DELETE
            # after it then sees the assumed usage row that sweep committed
            self.db.execute(
                "UPDATE reservations SET status = 'settled', settled_nusd = ?, settled_at = ? "
                "WHERE reservation_id = ? AND status IN ('active', 'expired', 'assumed')",
                [actual_nusd, iso(now), reservation_id],
            )
            self.db.execute(
                f"DELETE FROM usage WHERE reservation_id = ? AND assumed = 1 AND error_code = '{OWNER_GONE}'",
                [reservation_id],
            )

    def assume(self, reservation_id: str, now: dt.datetime) -> None:
        """→ assumed at the reserved amount (the caller writes the assumed usage row beside it)."""
        with transaction(self.db):
            self.db.execute(
                "UPDATE reservations SET status = 'assumed', settled_nusd = amount_nusd, settled_at = ? "
                f"WHERE reservation_id = ? AND status IN {_OPEN}",
                [iso(now), reservation_id],
            )

    def release(self, reservation_id: str, now: dt.datetime) -> None:
        with transaction(self.db):
            self.db.execute(
                "UPDATE reservations SET status = 'released', settled_at = ? "
                f"WHERE reservation_id = ? AND status IN {_OPEN}",
                [iso(now), reservation_id],
            )

    def sweep(self, now: dt.datetime) -> int:
        """Turn the reservations whose owner is gone into assumed spend; returns how many.

        Each becomes a usage row at its creation time (status `error`, error_code `owner_gone`,
        `assumed` = 1, cost = the reserved estimate), so every budget, limit and report counts it
        as spent, in the window the call was made in.
        """
        columns = ("reservation_id", "created_at", "expires_at", "service", "model", "run_id", "scenario",
                   "stage", "correlation_id", "job_ids", "units", "unit", "amount_nusd", "pid",
                   "pid_started", "host")
        assumed = 0
        with transaction(self.db):  # read and write under the budget lock: two sweepers never both assume
            self.db.lock_budget_window()
            rows = [dict(zip(columns, r, strict=True)) for r in self.db.execute(
                f"SELECT {', '.join(columns)} FROM reservations WHERE status IN {_OPEN}")]
            for r in (r for r in rows if _gone(r, now)):
                # the reservation first: a settle that committed meanwhile (it takes no budget lock)
                # has won the row, and then no assumed spend is written
                changed = self.db.execute(
                    "UPDATE reservations SET status = 'assumed', settled_nusd = amount_nusd, settled_at = ? "
                    f"WHERE reservation_id = ? AND status IN {_OPEN}", [iso(now), r["reservation_id"]])
                if changed.rowcount != 1:
                    continue
                assumed += 1
                amount = r["amount_nusd"] or 0
                insert_usage(self.db, UsageRow(
                    ts=dt.datetime.fromisoformat(r["created_at"]), run_id=r["run_id"], stage=r["stage"] or "unknown",
                    service=r["service"], implementation=Implementation.REAL, model=r["model"],
                    units=r["units"] or 0, unit=r["unit"] or "", pricing=Pricing(amount, amount, None),
                    status="error", job_ids=json.loads(r["job_ids"] or "[]"), correlation_id=r["correlation_id"],
                    scenario=r["scenario"], error_code=OWNER_GONE, assumed=True, reservation_id=r["reservation_id"],
                    provenance="its process ended with the request in flight: the estimate counts as spent",
                ))
        return assumed

    def held_nusd(self, *, run_id: str | None = None) -> int:
        """Money held by active reservations (optionally of one run): in flight, not yet settled."""
        where, args = "status = 'active'", []
        if run_id is not None:
            where += " AND run_id = ?"
            args.append(run_id)
        row = self.db.execute(
            f"SELECT COALESCE(SUM(amount_nusd), 0) FROM reservations WHERE {where}", args).fetchone()
        return int(row[0])

    def held_slots(self, service: str) -> int:
        """Request slots held by active reservations of `service` (each is a request in flight)."""
        row = self.db.execute(
            "SELECT COUNT(*) FROM reservations WHERE status = 'active' AND service = ?", [service]).fetchone()
        return int(row[0])

    def slot_times(self, service: str) -> list[str]:
        """Creation times of the active reservations of `service` (ISO UTC, oldest first)."""
        return [r[0] for r in self.db.execute(
            "SELECT created_at FROM reservations WHERE status = 'active' AND service = ? ORDER BY created_at",
            [service])]


def _gone(row: dict[str, Any], now: dt.datetime) -> bool:
    alive = owner_alive(row)
    if alive is not None:
        return not alive  # on this host the process itself says: a live owner never lapses
    return bool(row["expires_at"]) and row["expires_at"] <= iso(now)


# -- migrations of the table owned here (their place in the one history: tvdb.schema) -----------------


def _m002_reservations(db: sqlite_utils.Database) -> None:
    """Budget reservations: money and request slots held for a real call until it settles.

    status: active → settled | released | assumed (`expired` in databases of older versions).
    Amounts in integer nano-USD.
    """
    db.table("reservations").create(
        {
            "reservation_id": str, "created_at": str, "expires_at": str, "service": str, "model": str,
            "run_id": str, "scenario": str, "job_ids": str, "units": float, "unit": str,
            "amount_nusd": int, "status": str, "settled_nusd": int, "settled_at": str, "pid": int,
        },
        pk="reservation_id",
    )
    db.table("reservations").create_index(["status", "service"])
    db.table("reservations").create_index(["run_id"])


def _m004_reservation_owner(db: sqlite_utils.Database) -> None:
    """Reservation owners (stage, correlation id, pid start time, host) so that a dead owner's
    reservation is assumed spent (tvdb.ledger.guard)."""
    for column in ("stage", "correlation_id", "pid_started", "host"):
        db.table("reservations").add_column(column, str)


# PostgreSQL's steps (tvdb.storage.postgres), the same schema in its dialect: bigint for INTEGER,
# double precision for REAL, bytea for BLOB, identity columns for integer ids (tests/test_pg_schema.py).

_PG_M002 = (
    "CREATE TABLE reservations (reservation_id text PRIMARY KEY, created_at text, expires_at text, service text, "
    "model text, run_id text, scenario text, job_ids text, units double precision, unit text, "
    "amount_nusd bigint, status text, settled_nusd bigint, settled_at text, pid bigint)",
    "CREATE INDEX idx_reservations_status_service ON reservations (status, service)",
    "CREATE INDEX idx_reservations_run_id ON reservations (run_id)",
)

_PG_M004 = (
    "ALTER TABLE reservations ADD COLUMN stage text, ADD COLUMN correlation_id text, "
    "ADD COLUMN pid_started text, ADD COLUMN host text",
)


M002 = Migration(__name__, _m002_reservations, postgresql=_PG_M002)
M004 = Migration(__name__, _m004_reservation_owner, postgresql=_PG_M004)
