"""Usage rows: one per service request attempt, mock or real, priced from the price table.

Columns (table `usage`): ts, run_id, job_id (the job, or NULL for a request that served
several jobs; `job_ids` then lists them as JSON), correlation_id, scenario, stage
(`parse`/`embed`), service (`llamaparse`/`openai`), implementation (`real`/`mock`/`replay`),
provenance (why that implementation ran), model (model or tier), units + unit (`tokens`/
`pages`), usage_json (the provider's raw `usage`), cost_usd (money actually spent: 0 for mock
and replay), would_cost_usd (live price of the call), both NULL when the price is unknown,
never 0; the same amounts as integer nano-dollars (`*_nusd`); price_version, status
(`ok`/`error`), error_code, http_status, latency_ms, request_id, attempt (1-based), assumed
(1: the cost is the estimate of a request that may have been billed but whose answer was never
read — tvdb.ledger.guard), reservation_id (the budget reservation the call was made under), credits
(LlamaParse credits used or, for mock and replay, that would have been used; NULL for tokens).
"""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

from tvdb.clock import iso
from tvdb.domain import Implementation
from tvdb.ledger.prices import PriceTable, nusd_to_usd
from tvdb.storage import Database


@dataclass(frozen=True, slots=True)
class Pricing:
    """Cost of one call in nano-dollars; None means the price is unknown. `credits`: the LlamaParse
    credits the call used (real) or would have used (mock, replay); None for token-priced calls."""

    cost_nusd: int | None
    would_cost_nusd: int | None
    price_version: str | None
    credits: float | None = None


def price_call(
    prices: PriceTable, *, service: str, model: str, units: float, implementation: Implementation, day: dt.date
) -> Pricing:
    """What the call cost (`cost`: real money) and would cost at live prices (`would_cost`)."""
    unit_price = prices.lookup(service, model, day=day)
    if unit_price is None:  # unknown is never $0: the row's costs stay NULL (issue: money under control)
        return Pricing(None, None, None)
    would = unit_price.cost_nusd(units)
    cost = would if implementation is Implementation.REAL else 0
    per = unit_price.credits_per_unit
    credits = None if per is None else float(per * Decimal(str(units)))
    return Pricing(cost, would, unit_price.version, credits)


@dataclass(frozen=True, slots=True)
class UsageRow:
    ts: dt.datetime
    run_id: str | None
    stage: str
    service: str
    implementation: Implementation
    model: str
    units: float
    unit: str
    pricing: Pricing
    status: str = "ok"
    job_ids: Sequence[str] = ()
    correlation_id: str | None = None
    scenario: str | None = None
    provenance: str | None = None
    usage: Mapping[str, Any] = field(default_factory=dict)
    error_code: str | None = None
    http_status: int | None = None
    latency_ms: float | None = None
    request_id: str | None = None
    attempt: int = 1
    # the cost is the estimate of a request that may have been billed (tvdb.ledger.guard)
    assumed: bool = False
    reservation_id: str | None = None

    def as_record(self) -> dict[str, Any]:
        p = self.pricing
        return {
            "ts": iso(self.ts),
            "run_id": self.run_id,
            "job_id": self.job_ids[0] if len(self.job_ids) == 1 else None,
            "job_ids": json.dumps(list(self.job_ids)),
            "correlation_id": self.correlation_id,
            "scenario": self.scenario,
            "stage": self.stage,
            "service": self.service,
            "implementation": str(self.implementation),
            "provenance": self.provenance,
            "model": self.model,
            "units": self.units,
            "unit": self.unit,
            "usage_json": json.dumps(dict(self.usage), sort_keys=True),
            "cost_usd": None if p.cost_nusd is None else nusd_to_usd(p.cost_nusd),
            "would_cost_usd": None if p.would_cost_nusd is None else nusd_to_usd(p.would_cost_nusd),
            "cost_nusd": p.cost_nusd,
            "would_cost_nusd": p.would_cost_nusd,
            "price_version": p.price_version,
            "credits": p.credits,
            "status": self.status,
            "error_code": self.error_code,
            "http_status": self.http_status,
            "latency_ms": self.latency_ms,
            "request_id": self.request_id,
            "attempt": self.attempt,
            "assumed": int(self.assumed),
            "reservation_id": self.reservation_id,
        }


def insert_usage(db: Database, row: UsageRow) -> int:
    """Write one usage row (inside the caller's transaction if one is open); returns its id."""
    from tvdb.ledger.usage_store import UsageStore

    return UsageStore(db).insert(row)


@dataclass(frozen=True, slots=True)
class CorrelatedUsage:
    """What one correlation id's requests of a run used: `would_cost_nusd` of its successful calls (None
    when one has no known price), embedding `tokens` and parsed `pages` of those calls, all attempts."""

    would_cost_nusd: int | None
    tokens: int
    pages: int
    requests: int


def usage_by_correlation(db: Database, run_id: str, correlation_id: str | None = None) -> dict[str, CorrelatedUsage]:
    """Per correlation id (or only `correlation_id`), the usage rows of `run_id` (a `pipeline:` hook's
    document: every request its code made, whatever the stage)."""
    from tvdb.ledger.usage_store import UsageStore

    return {cid: CorrelatedUsage(None if unknown else would, tokens, pages, requests)
            for cid, would, unknown, tokens, pages, requests in UsageStore(db).by_correlation(run_id, correlation_id)}
