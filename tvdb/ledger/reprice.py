"""Repricing: recompute stored costs under another price version, keeping the old values.

When a price was wrong (CASES.md C15: a per-1M figure entered per token) the ledger can be
corrected from what it stored: each row's units (tokens or pages) times the unit price of the
chosen version. No row is deleted; every changed row's old price version and amounts go to
`usage_reprices` (one `reprice_id` per run), so a correction can be audited or undone.

Rows without billable units (failed attempts) cost nothing under every version and are left as
they are. Rows whose service/model/unit has no price in that version are left unchanged and
counted as `unpriced`. Folded days (`usage_daily`) are repriced from their summed units, which
can differ from per-call rounding by at most 1 nano-USD per folded call.
"""

from __future__ import annotations

import datetime as dt
import uuid
from collections.abc import Iterable
from dataclasses import dataclass

from tvdb.clock import iso
from tvdb.errors import ConfigError
from tvdb.ledger.prices import PriceTable
from tvdb.ledger.usage_store import UsageStore
from tvdb.storage import Database, transaction


@dataclass(frozen=True, slots=True)
class RepriceChange:
    """Changed rows of one service/model/old version: old and new totals in nano-USD (None = unknown)."""

    service: str
    model: str
    old_version: str | None
    rows: int
    old_spent_nusd: int
    new_spent_nusd: int
    old_would_cost_nusd: int
    new_would_cost_nusd: int
    old_unknown: int  # rows that had no price before


@dataclass(frozen=True, slots=True)
class RepriceResult:
    reprice_id: str | None  # None when nothing was written (dry run or no change)
    version: str
    examined: int
    changed: int
    unpriced: int
    changes: tuple[RepriceChange, ...]
    dry_run: bool = False

    @property
    def old_spent_nusd(self) -> int:
        return sum(c.old_spent_nusd for c in self.changes)

    @property
    def new_spent_nusd(self) -> int:
        return sum(c.new_spent_nusd for c in self.changes)


@dataclass
class _Sum:
    rows: int = 0
    old_spent: int = 0
    new_spent: int = 0
    old_would: int = 0
    new_would: int = 0
    old_unknown: int = 0


@dataclass(frozen=True, slots=True)
class _Row:
    source: str
    ref: str
    service: str
    model: str
    implementation: str
    units: float
    unit: str | None
    cost: int | None
    would: int | None
    version: str | None


def _rows(db: Database, from_version: str | None) -> Iterable[_Row]:
    for source, ref, values in UsageStore(db).priced_rows(from_version):
        yield _Row(source, ref, *values)


def reprice(
    db: Database, prices: PriceTable, version: str, *, now: dt.datetime,
    from_version: str | None = None, dry_run: bool = False,
) -> RepriceResult:
    """Recompute `cost_nusd`/`would_cost_nusd` (and the USD columns) of stored rows under `version`.

    Only rows priced under `from_version` when given. Old values are kept in `usage_reprices`.
    Idempotent: repricing twice under the same version changes nothing the second time.
    Raises ConfigError for a version the price table does not know.
    """
    if version not in prices.versions:
        raise ConfigError(f"unknown price version {version!r}; known: {', '.join(prices.versions)}")
    reprice_id = uuid.uuid4().hex[:12]
    sums: dict[tuple[str, str, str | None], _Sum] = {}
    examined = changed = unpriced = 0
    with transaction(db):
        for row in _rows(db, from_version):
            examined += 1
            unit_price = prices.lookup(row.service, row.model, version=version)
            if unit_price is None or (row.unit is not None and row.unit != unit_price.unit):
                unpriced += 1
                continue
            new_would = unit_price.cost_nusd(row.units)
            new_cost = new_would if row.implementation == "real" else 0
            if (new_cost, new_would, version) == (row.cost, row.would, row.version):
                continue
            changed += 1
            s = sums.setdefault((row.service, row.model, row.version), _Sum())
            s.rows += 1
            s.old_spent += (row.cost or 0) if row.implementation == "real" else 0
            s.new_spent += new_cost
            s.old_would += row.would or 0
            s.new_would += new_would
            s.old_unknown += int(row.would is None)
            if dry_run:
                continue
            _write(db, row, reprice_id, iso(now), version, new_cost, new_would)
    return RepriceResult(
        reprice_id=None if dry_run or not changed else reprice_id, version=version, examined=examined,
        changed=changed, unpriced=unpriced, dry_run=dry_run,
        changes=tuple(
            RepriceChange(
                svc, model, old, s.rows, s.old_spent, s.new_spent, s.old_would, s.new_would, s.old_unknown
            )
            for (svc, model, old), s in sorted(sums.items(), key=lambda kv: tuple(str(k) for k in kv[0]))
        ),
    )


def _write(db: Database, row: _Row, reprice_id: str, at: str, version: str,
           new_cost: int, new_would: int) -> None:
    store = UsageStore(db)
    store.record_old_values(reprice_id, at, row.source, row.ref, (row.version, row.cost, row.would),
                            (version, new_cost, new_would))
    store.set_cost(row.source, row.ref, new_cost, new_would, version)


def reprice_history(db: Database, reprice_id: str) -> list[dict[str, object]]:
    """The old and new values recorded by one reprice run, in row order."""
    return UsageStore(db).reprice_history(reprice_id)
