"""`tvdb cost advise`: concrete savings found in the ledger's own history, each in dollars computed
from the stored usage rows and the price table.

- documents parsed more than once (same bytes, same tier): a parse cache would have answered the
  repeats — saving what they cost;
- a cheaper parse tier: documents parsed at a tier when the same bytes parsed fine (the job
  completed) at a cheaper one — saving the price difference per page;
- embedding requests above the request minimum (max(⌈inputs/2048⌉, ⌈tokens/300,000⌉) per run):
  OpenAI bills per token, so packing them saves requests (hourly limits, latency), not dollars;
- the Batch API price for the embedding requests of runs that could wait (half the live price);
- cassettes instead of repeated real runs: a scenario run for real again with the same settings and
  documents could have replayed the first run's cassette — saving the later runs' real spend.

`saved_usd` is real money that would have been saved; `saved_would_cost_usd` the same at live prices
including mock calls (what the advice is worth once those runs go real). Items overlap (a repeated
agentic parse is both a repeat and a tier choice); each is its own alternative.

Only what a cache or a cassette could really have answered counts: a parse repeats an earlier one
of the same family — real after real (or after a replay of a recorded real answer), mock after mock
— never a real parse after a mock one (a mock result answers no real request); a tier is proven
"fine" for real parses only by a real or replayed parse; replayed calls cost nothing and are never
savings themselves; and the run that records a cassette is the advice taken, not a repeat.
"""

from __future__ import annotations

import datetime as dt
import json
import math
from dataclasses import asdict, dataclass
from typing import Any

from tvdb.history.advice_store import AdviceStore
from tvdb.ledger.prices import PriceTable, batch_price, nusd_to_usd
from tvdb.storage import Database

MAX_INPUTS, MAX_TOKENS = 2048, 300_000  # per embeddings request (tvdb.services.batching)


@dataclass(frozen=True, slots=True)
class Advice:
    kind: str
    title: str
    detail: str
    occurrences: int
    saved_nusd: int
    saved_would_cost_nusd: int

    def as_json(self) -> dict[str, Any]:
        out = asdict(self)
        out["saved_usd"] = nusd_to_usd(self.saved_nusd)
        out["saved_would_cost_usd"] = nusd_to_usd(self.saved_would_cost_nusd)
        return out


def _day(ts: str) -> dt.date:
    return dt.date.fromisoformat(ts[:10])


def _n(count: int, noun: str, plural: str | None = None) -> str:
    """`1 real run`, `2 real runs`."""
    return f"{count} {noun if count == 1 else plural or noun + 's'}"


def _family(implementation: str) -> str:
    """Which calls can answer each other: real and replay (a recorded real answer) vs mock."""
    return "mock" if implementation == "mock" else "real"


def _repeated_parses(rows: list[dict[str, Any]]) -> Advice:
    seen: set[tuple[str, str, str]] = set()
    count = saved = would = 0
    for r in rows:
        key = (r["sha256"], r["tier"], _family(r["implementation"]))
        if key in seen and r["implementation"] != "replay":  # a replay already cost nothing
            count += 1
            saved += r["cost_nusd"] or 0
            would += r["would_cost_nusd"] or 0
        seen.add(key)
    return Advice("repeated_parse", "Documents parsed more than once",
                  f"{_n(count, 'parse')} repeated a document already parsed at the same tier; cache parse "
                  "results by content hash and tier (or dedupe documents) to pay once", count, saved, would)


def _cheaper_tier(rows: list[dict[str, Any]], prices: PriceTable) -> Advice:
    def per_page(tier: str, day: dt.date) -> int | None:
        price = prices.lookup("llamaparse", tier, day=day)
        return None if price is None else price.cost_nusd(1)

    fine: dict[tuple[str, str], set[str]] = {}  # (bytes, family) → tiers that parsed them to completion
    for r in rows:
        if r["state"] == "complete":
            fine.setdefault((r["sha256"], _family(r["implementation"])), set()).add(r["tier"])
    count = saved = would = 0
    tiers: set[str] = set()
    for r in rows:
        if r["implementation"] == "replay":
            continue
        day = _day(r["ts"])
        mine = per_page(r["tier"], day)
        options = [(p, t) for t in fine.get((r["sha256"], _family(r["implementation"])), ())
                   if (p := per_page(t, day)) is not None]
        if mine is None or not options:
            continue
        cheapest, tier = min(options)
        if cheapest >= mine:
            continue
        delta = int(round((mine - cheapest) * r["pages"]))
        count += 1
        tiers.add(f"{r['tier']} → {tier}")
        would += delta
        saved += delta if r["implementation"] == "real" else 0
    return Advice("cheaper_tier", "A cheaper parse tier parsed the same documents fine",
                  f"{_n(count, 'parse')} used a dearer tier than one that parsed the same bytes to completion"
                  + (f" ({', '.join(sorted(tiers))})" if tiers else ""), count, saved, would)


def _request_minimum(rows: list[dict[str, Any]]) -> Advice:
    extra = 0
    runs = 0
    for r in rows:
        minimum = max(math.ceil((r["inputs"] or 0) / MAX_INPUTS), math.ceil((r["tokens"] or 0) / MAX_TOKENS), 1)
        if r["requests"] > minimum:
            extra += r["requests"] - minimum
            runs += 1
    return Advice("request_minimum", "Embedding requests above the minimum",
                  f"{_n(extra, 'embedding request')} in {_n(runs, 'run')} beyond max(⌈inputs/2048⌉, "
                  "⌈tokens/300,000⌉); OpenAI "
                  "bills per token, so packing saves requests (hourly limits, latency), not dollars", extra, 0, 0)


def _batch_api(rows: list[dict[str, Any]], prices: PriceTable) -> Advice:
    count = saved = 0
    for r in rows:
        price = batch_price(prices, r["model"], day=_day(r["ts"]))
        if price is None or r["cost_nusd"] is None:
            continue
        delta = r["cost_nusd"] - price.cost_nusd(r["units"])
        if delta > 0:
            count += 1
            saved += delta
    return Advice("batch_api", "Batch API price for runs that can wait",
                  f"{_n(count, 'real embedding request')} at the live price; the Batch API (results within "
                  "24 h) charges "
                  "half: worth it for nightly and other non-urgent runs", count, saved, saved)


def _cassettes(rows: list[dict[str, Any]]) -> Advice:
    seen: set[tuple[str, str]] = set()
    count = saved = 0
    scenarios: set[str] = set()
    for r in rows:
        spec = json.loads(r["spec_json"] or "{}")
        key = (r["scenario"], json.dumps([spec.get("settings"), spec.get("documents")], sort_keys=True))
        recording = (spec.get("tape") or {}).get("record_mode", "none") != "none"
        if key in seen and not recording:  # recording a cassette is taking the advice, not a repeat
            count += 1
            saved += r["spent"] or 0
            scenarios.add(r["scenario"])
        seen.add(key)
    return Advice("cassettes", "Cassettes instead of repeated real runs",
                  f"{_n(count, 'real run')} repeated an earlier real run of the same scenario, settings and "
                  "documents" + (f" ({', '.join(sorted(scenarios))})" if scenarios else "")
                  + "; record the first and replay it", count, saved, saved)


def advise(db: Database, prices: PriceTable) -> list[Advice]:
    """Every kind of advice, biggest saving (at live prices) first; zero items are kept, so the
    output always says what was checked."""
    store = AdviceStore(db)
    parses = store.parses()
    items = [_repeated_parses(parses), _cheaper_tier(parses, prices), _request_minimum(store.embed_requests()),
             _batch_api(store.real_embeds(), prices), _cassettes(store.real_spend_by_run())]
    return sorted(items, key=lambda a: (-a.saved_would_cost_nusd, -a.saved_nusd, a.kind))
