"""Reconcile assumed spend with the provider's own usage export (`tvdb cost reconcile FILE`).

Assumed spend (tvdb.ledger.guard) is the estimate of a request that may have been billed. A
provider's usage export says what it really billed, per day and model; this replaces the estimates
with those figures. The file is CSV with a header row and these columns (any order; others are
ignored):

    date      YYYY-MM-DD, a calendar day in `timezone` (default UTC, as provider exports are)
    service   openai | llamaparse (the ledger's service names; any service the ledger knows)
    model     the model or parse tier, as in the ledger (text-embedding-3-small, fast, …)
    cost_usd  what the provider billed that day for that service and model, in USD

For each (day, service, model): `known` = the ledger's real, non-assumed spend (answers the
provider itself priced), `billed` = the export's figure. The assumed rows of that group are set to
`max(0, billed − known)` together, in proportion to their estimates, and stop being assumed; with no
assumed rows and `billed > known` an adjustment row (stage `reconcile`) adds the difference, so the
ledger never reports less than the provider billed. A ledger above the provider's figure with
nothing assumed is reported, never lowered. Old values are kept in `usage_reprices` (reprice id
`reconcile-…`). Groups already folded by `tvdb cost prune` with assumed spend cannot be corrected
and are reported as `folded`. Running it again changes nothing. Amounts in nano-USD.
"""

from __future__ import annotations

import csv
import datetime as dt
import uuid
from dataclasses import dataclass
from decimal import Decimal, InvalidOperation
from pathlib import Path

from tvdb.clock import iso
from tvdb.domain import Implementation
from tvdb.errors import ConfigError
from tvdb.ledger.prices import usd_to_nusd
from tvdb.ledger.usage import Pricing, UsageRow, insert_usage
from tvdb.ledger.usage_store import UsageStore
from tvdb.ledger.windows import Window, day_window
from tvdb.storage import Database, transaction

COLUMNS = ("date", "service", "model", "cost_usd")


@dataclass(frozen=True, slots=True)
class BilledDay:
    day: dt.date
    service: str
    model: str
    billed_nusd: int
    line: int


@dataclass(frozen=True, slots=True)
class GroupResult:
    """One (day, service, model) of the export and what reconciling it did. Amounts in nano-USD."""

    day: dt.date
    service: str
    model: str
    billed_nusd: int
    known_nusd: int
    assumed_before_nusd: int
    assumed_rows: int
    added_nusd: int  # an adjustment row's amount (0 if none)
    status: str  # corrected | added | matches | ledger_above_provider | folded


@dataclass(frozen=True, slots=True)
class ReconcileResult:
    reconcile_id: str
    path: str
    timezone: str
    groups: tuple[GroupResult, ...]
    dry_run: bool


def read_usage_csv(path: Path) -> list[BilledDay]:
    """The rows of a provider usage CSV. Raises ConfigError naming the file, line and column."""
    try:
        text = path.read_text(encoding="utf-8-sig")
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(f"{path}: cannot read the usage file ({exc})") from None
    reader = csv.DictReader(text.splitlines())
    header = [h.strip().lower() for h in reader.fieldnames or []]
    missing = [c for c in COLUMNS if c not in header]
    if missing:
        raise ConfigError(f"{path}:1: missing column(s) {', '.join(missing)} (need: {', '.join(COLUMNS)})")
    out: list[BilledDay] = []
    seen: dict[tuple[dt.date, str, str], int] = {}
    for n, raw in enumerate(reader, start=2):
        row = {(k or "").strip().lower(): (v or "").strip() for k, v in raw.items()}
        if not any(row.values()):
            continue

        def bad(column: str, why: str, line: int = n) -> ConfigError:
            return ConfigError(f"{path}:{line}: {column}: {why}")

        try:
            day = dt.date.fromisoformat(row["date"])
        except ValueError:
            raise bad("date", f"{row['date']!r} is not a date (YYYY-MM-DD)") from None
        try:
            cost = Decimal(row["cost_usd"])
        except InvalidOperation:
            raise bad("cost_usd", f"{row['cost_usd']!r} is not a number") from None
        if not cost.is_finite() or cost < 0:
            raise bad("cost_usd", f"{row['cost_usd']!r} must be a finite amount ≥ 0")
        if not row["service"] or not row["model"]:
            raise bad("service" if not row["service"] else "model", "empty")
        key = (day, row["service"], row["model"])
        if key in seen:
            raise bad("date", f"{day} {key[1]} {key[2]} appears twice (also line {seen[key]}); sum them first")
        seen[key] = n
        out.append(BilledDay(day, row["service"], row["model"], usd_to_nusd(cost), n))
    return out


def reconcile(db: Database, path: Path, *, now: dt.datetime, timezone: str = "UTC",
              dry_run: bool = False) -> ReconcileResult:
    """Correct assumed spend from the provider usage CSV at `path` (see the module docstring)."""
    billed = read_usage_csv(path)
    reconcile_id = f"reconcile-{now:%Y%m%dT%H%M%S}-{uuid.uuid4().hex[:6]}"
    groups: list[GroupResult] = []
    with transaction(db):
        for entry in billed:
            window = day_window(_local_noon(entry.day, timezone), timezone)
            groups.append(_group(db, entry, window, reconcile_id, now, str(path), dry_run))
    return ReconcileResult(reconcile_id, str(path), timezone, tuple(groups), dry_run)


def _local_noon(day: dt.date, timezone: str) -> dt.datetime:
    from zoneinfo import ZoneInfo

    return dt.datetime.combine(day, dt.time(12), tzinfo=ZoneInfo(timezone))


def _group(db: Database, entry: BilledDay, window: Window, reconcile_id: str, now: dt.datetime,
           source: str, dry_run: bool) -> GroupResult:
    known, assumed, folded_known, folded_assumed = UsageStore(db).billed_group(
        entry.service, entry.model, window.start_iso, window.end_iso)
    known += folded_known
    before = sum(a[1] for a in assumed)

    def result(status: str, added: int = 0) -> GroupResult:
        return GroupResult(entry.day, entry.service, entry.model, entry.billed_nusd, known,
                           before + folded_assumed, len(assumed), added, status)

    if folded_assumed:
        return result("folded")
    target = max(0, entry.billed_nusd - known)
    if assumed:
        if not dry_run:
            _set_assumed(db, assumed, target, reconcile_id, now)
        return result("corrected")
    if entry.billed_nusd > known:
        if not dry_run:
            _add_adjustment(db, entry, window, entry.billed_nusd - known, source)
        return result("added", entry.billed_nusd - known)
    return result("matches" if entry.billed_nusd == known else "ledger_above_provider")


def _set_assumed(db: Database, rows: list[tuple[int, int, int | None, str | None]], target: int,
                 reconcile_id: str, now: dt.datetime) -> None:
    """Spread `target` over the assumed rows in proportion to their estimates; they stop being assumed."""
    store = UsageStore(db)
    total = sum(r[1] for r in rows)
    given = 0
    for i, (row_id, cost, would, version) in enumerate(rows):
        share = target - given if i == len(rows) - 1 else (target * cost // total if total else target // len(rows))
        given += share
        store.record_old_values(reconcile_id, iso(now), "usage", str(row_id), (version, cost, would),
                                (version, share, share))
        store.set_cost("usage", str(row_id), share, share, version, assumed=False)


def _add_adjustment(db: Database, entry: BilledDay, window: Window, amount: int, source: str) -> None:
    insert_usage(db, UsageRow(
        ts=window.start, run_id=None, stage="reconcile", service=entry.service, implementation=Implementation.REAL,
        model=entry.model, units=0, unit="", pricing=Pricing(amount, amount, None),
        provenance=f"reconcile: the provider billed more than the ledger held ({source})",
    ))
