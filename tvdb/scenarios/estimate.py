"""`tvdb run --estimate`: parse and chunk locally, then forecast what a real run would cost and
whether it fits the budgets. Spends nothing and writes nothing to the ledger.
"""

from __future__ import annotations

import asyncio
from dataclasses import asdict, dataclass
from pathlib import Path

from tvdb.catalog import embedding_model
from tvdb.clock import Clock
from tvdb.config import Settings
from tvdb.domain import ParseRequest
from tvdb.errors import DocumentError
from tvdb.ledger.budget import BudgetForecast, LedgerBudget
from tvdb.ledger.prices import LLAMAPARSE, OPENAI, PriceTable
from tvdb.scenarios.loader import LoadedScenario
from tvdb.services.calls import CallScope, SpendRequest


@dataclass(frozen=True, slots=True)
class DocumentEstimate:
    path: str
    status: str  # "ok" or "failed"
    error_code: str | None
    pages: int
    chunks: int
    tokens: int


@dataclass(frozen=True)
class Estimate:
    """A forecast at live prices. `requests` counts the API requests a real run would send."""

    scenario: str
    documents: tuple[DocumentEstimate, ...]
    requests: dict[str, int]
    forecast: BudgetForecast

    def as_json(self) -> dict[str, object]:
        return {
            "scenario": self.scenario,
            "fits": self.forecast.fits,
            "would_cost_usd": self.forecast.total_usd,
            "by_stage_usd": {k: v / 1e9 for k, v in self.forecast.by_stage_nusd.items()},
            "requests": self.requests,
            "unpriced": [list(p) for p in self.forecast.unpriced],
            "budgets": [c.as_dict() for c in self.forecast.checks],
            "documents": [asdict(d) for d in self.documents],
        }


async def _local_document(path: Path, settings: Settings) -> tuple[DocumentEstimate, list[int]]:
    from tvdb.pipeline.chunk import chunk_pages
    from tvdb.pipeline.detect import detect_media_type
    from tvdb.services.local.parser import LocalParser

    try:
        data = path.read_bytes()
        if len(data) > settings.max_document_bytes:
            return DocumentEstimate(str(path), "failed", "too_large", 0, 0, 0), []
        media_type = detect_media_type(data, path.name)
        result = await LocalParser().parse(ParseRequest(data, path.name, media_type, settings.parse.tier))
    except DocumentError as exc:
        return DocumentEstimate(str(path), "failed", exc.code.value, 0, 0, 0), []
    chunks = chunk_pages(result.document.pages, max_tokens=settings.chunking.max_tokens,
                         overlap_tokens=settings.chunking.overlap_tokens, model=settings.embedding.model)
    counts = [c.token_count for c in chunks]
    return DocumentEstimate(str(path), "ok", None, result.pages_billed, len(chunks), sum(counts)), counts


def estimate(loaded: LoadedScenario, settings: Settings, clock: Clock) -> Estimate:
    """Forecast a real run of `loaded` under `settings` (budget state read from the ledger, if any)."""
    from tvdb.db import open_db
    from tvdb.services.batching import plan_batches

    async def gather() -> list[tuple[DocumentEstimate, list[int]]]:
        return await asyncio.gather(*(_local_document(p, settings) for p in loaded.documents))

    results = asyncio.run(gather())
    prices = PriceTable.load(settings.prices)
    day = clock.now().date()
    tier = settings.parse.tier
    model = settings.embedding.model
    scope_parse = CallScope(None, loaded.scenario.name, "parse")
    scope_embed = CallScope(None, loaded.scenario.name, "embed")
    requests: list[SpendRequest] = []
    parse_price = prices.lookup(LLAMAPARSE, tier, day=day)
    for doc, _ in results:
        if doc.status == "ok":
            requests.append(SpendRequest(LLAMAPARSE, tier, doc.pages, "pages",
                                         parse_price.cost_nusd(doc.pages) if parse_price else None,
                                         scope_parse, settings.budget.max_usd))
    counts = [c for _, cs in results for c in cs]
    batches = plan_batches(counts, embedding_model(model)) if counts else []
    embed_price = prices.lookup(OPENAI, model, day=day)
    for batch in batches:
        tokens = sum(counts[i] for i in batch)
        requests.append(SpendRequest(OPENAI, model, tokens, "tokens",
                                     embed_price.cost_nusd(tokens) if embed_price else None,
                                     scope_embed, settings.budget.max_usd))
    # an existing ledger gives today's real spend; without one, nothing has been spent
    path = settings.database_path if settings.database_path.exists() else Path(":memory:")
    forecast = LedgerBudget(open_db(path), settings, clock).forecast(requests)
    return Estimate(loaded.scenario.name, tuple(d for d, _ in results),
                    {"parse": sum(1 for r in requests if r.service == LLAMAPARSE), "embed": len(batches)}, forecast)
