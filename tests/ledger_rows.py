"""Helpers for ledger tests: write priced usage rows at chosen instants."""

from __future__ import annotations

import datetime as dt

from tvdb.domain import Implementation
from tvdb.ledger.prices import PriceTable
from tvdb.ledger.usage import Pricing, UsageRow, insert_usage, price_call
from tvdb.storage import Database

PRICES = PriceTable.load()
EMBED = "text-embedding-3-small"  # $0.02 per 1M tokens = 20 nano-USD per token
NUSD_PER_1M_TOKENS = 20_000_000
NUSD_PER_FAST_PAGE = 1_250_000  # 1 credit at $1.25 per 1,000 credits


def at(text: str) -> dt.datetime:
    """`2026-01-05T10:00` (UTC unless an offset is given)."""
    value = dt.datetime.fromisoformat(text)
    return value if value.tzinfo else value.replace(tzinfo=dt.UTC)


def add(
    db: Database,
    ts: dt.datetime | str,
    *,
    impl: str = "real",
    service: str = "openai",
    model: str = EMBED,
    units: float = 1_000_000,
    scenario: str | None = "quick",
    run_id: str | None = "run-1",
    status: str = "ok",
    prices: PriceTable = PRICES,
) -> int:
    """Insert one usage row priced like the ServiceCaller does (failed attempts: 0 units, $0)."""
    when = at(ts) if isinstance(ts, str) else ts
    implementation = Implementation(impl)
    unit = "tokens" if service == "openai" else "pages"
    if status == "error":
        units, pricing = 0, Pricing(0, 0, None)
    else:
        pricing = price_call(
            prices, service=service, model=model, units=units, implementation=implementation, day=when.date()
        )
    return insert_usage(
        db,
        UsageRow(
            ts=when,
            run_id=run_id,
            stage="embed" if service == "openai" else "parse",
            service=service,
            implementation=implementation,
            model=model,
            units=units,
            unit=unit,
            pricing=pricing,
            status=status,
            scenario=scenario,
        ),
    )


def reserve(
    db: Database, amount_nusd: int, *, now: dt.datetime, ttl_s: int = 600, status: str = "active"
) -> None:
    """An in-flight reservation row (as the budget guard writes it)."""
    from tvdb.clock import iso
    from tvdb.storage import transaction

    with transaction(db):
        db.execute(
            "INSERT INTO reservations (reservation_id, created_at, expires_at, service, model, amount_nusd, status) "
            "VALUES (?, ?, ?, ?, ?, ?, ?)",
            [f"r-{amount_nusd}-{iso(now)}-{status}", iso(now), iso(now + dt.timedelta(seconds=ttl_s)), "openai",
             EMBED, amount_nusd, status],
        )
