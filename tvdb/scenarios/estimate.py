"""`tvdb run --estimate`: parse and chunk locally, then forecast what the run's calls would cost and
whether its real calls fit the budgets. Spends nothing and writes nothing to the ledger.

Only services that run in real mode count against budgets, exactly as in a run; mock services'
calls are priced as "would cost" only. A document the local parser finds no text in (a scanned
page) still counts as a parse request when the parser is real, since LlamaParse would OCR and bill it.
"""

from __future__ import annotations

import asyncio
import hashlib
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import NamedTuple

from tvdb.catalog import embedding_model
from tvdb.clock import Clock
from tvdb.config import Settings
from tvdb.domain import Mode, ParseRequest
from tvdb.errors import DocumentError, ErrorCode
from tvdb.ledger.budget import BudgetForecast, LedgerBudget
from tvdb.ledger.guard import CallScope, SpendRequest
from tvdb.ledger.prices import LLAMAPARSE, OPENAI, PriceTable, UnitPrice, nusd_to_usd
from tvdb.pipeline.jobs import JobStore
from tvdb.scenarios.loader import LoadedScenario
from tvdb.scenarios.patterns import as_named
from tvdb.services.factory import budget_settings
from tvdb.storage import Database

# the stages each ledger service's calls are priced under (the retrieval queries are OpenAI calls too)
_SERVICE_STAGES = {LLAMAPARSE: ("parse",), OPENAI: ("embed", "query")}


# a document's status in the forecast: the run would parse and embed it, or complete it from the earlier
# job that holds identical bytes under identical settings (no calls), or the local parser failed it
WOULD_RUN, REUSED, FAILED = "would run", "reused", "failed"


@dataclass(frozen=True, slots=True)
class DocumentEstimate:
    path: str
    status: str  # WOULD_RUN, REUSED or FAILED (locally)
    error_code: str | None
    pages: int
    chunks: int
    tokens: int
    reused_from: str | None = None  # the job a reused document's result would come from


class _Local(NamedTuple):
    """A document as the local parser and chunker saw it: its estimate, its chunks' token counts and
    the SHA-256 of its bytes (None when they could not be read), the key a run's reuse looks up."""

    estimate: DocumentEstimate
    counts: list[int]
    sha256: str | None


@dataclass(frozen=True)
class Estimate:
    """A forecast at live prices: what every call would cost, and whether the real ones fit."""

    scenario: str
    modes: dict[str, str]  # service → mock | real | hybrid
    documents: tuple[DocumentEstimate, ...]
    requests: dict[str, int]  # stage → API requests the run would send
    would_cost_nusd: dict[str, int]  # stage → cost at live prices, real and mock together
    unpriced: tuple[tuple[str, str], ...]
    forecast: BudgetForecast  # the real and hybrid calls against every budget (hybrid: at most this)
    parse_pages: int = 0  # pages the parse requests would bill
    parse_tier: str = "fast"

    @property
    def reused(self) -> int:
        """Documents the run would reuse from earlier runs instead of parsing and embedding them."""
        return sum(1 for d in self.documents if d.status == REUSED)

    @property
    def parse_credits(self) -> int:
        """LlamaParse credits: billed pages × the tier's credits per page (contracts.md §2.7)."""
        from tvdb.catalog import PARSE_CREDITS_PER_PAGE

        return self.parse_pages * PARSE_CREDITS_PER_PAGE.get(self.parse_tier, 0)

    @property
    def fits(self) -> bool:
        """False when the run's real-mode calls would be refused. Hybrid calls past a budget run
        local instead of being refused, so they never make a run not fit."""
        return self.forecast.fits or Mode.REAL not in {Mode(m) for m in self.modes.values()}

    @property
    def _unpriced_stages(self) -> set[str]:
        return {stage for service, _ in self.unpriced for stage in _SERVICE_STAGES[service]}

    def as_json(self, base: Path | None = None) -> dict[str, object]:
        """`base`, the scenario's folder, names each document as the scenario does (`path`, as in a run's
        `--json`); `absolute_path` is where it was read."""
        return {
            "scenario": self.scenario,
            "fits": self.fits,
            "modes": self.modes,
            # an unknown price makes the figure unknown (null), never a smaller-looking number
            "would_cost_usd": None if self.unpriced else nusd_to_usd(sum(self.would_cost_nusd.values())),
            "by_stage_usd": {k: None if k in self._unpriced_stages else nusd_to_usd(v)
                             for k, v in self.would_cost_nusd.items()},
            "real_spend_usd": self.forecast.total_usd,
            "requests": self.requests,
            "parse_pages": self.parse_pages,
            "parse_credits": self.parse_credits,
            "parse_tier": self.parse_tier,
            "reused_documents": self.reused,
            "unpriced": [list(p) for p in self.unpriced],
            "budgets": [c.as_dict() for c in self.forecast.checks],
            "documents": [{**asdict(d), "path": d.path if base is None else as_named(d.path, base),
                           "absolute_path": d.path} for d in self.documents],
        }


async def _local_document(path: Path, settings: Settings) -> _Local:
    from tvdb.catalog import selected_page_count
    from tvdb.pipeline.chunk import chunk_pages
    from tvdb.pipeline.detect import detect_media_type
    from tvdb.pipeline.stages import estimate_pages, read_document
    from tvdb.services.local.parser import LocalParser

    media_type = ""
    data = b""
    digest: str | None = None
    try:
        data = read_document(path, settings.max_document_bytes, settings.max_document_mb)
        digest = hashlib.sha256(data).hexdigest()
        media_type = detect_media_type(data, path.name)
        result = await LocalParser().parse(ParseRequest(data, path.name, media_type, settings.parse.tier))
    except DocumentError as exc:
        pages = estimate_pages(data, media_type, settings.parse) if exc.code is ErrorCode.NO_TEXT else 0
        return _Local(DocumentEstimate(str(path), FAILED, exc.code.value, pages, 0, 0), [], digest)
    chunks = chunk_pages(result.document.pages, max_tokens=settings.chunking.max_tokens,
                         overlap_tokens=settings.chunking.overlap_tokens, model=settings.embedding.model)
    counts = [c.token_count for c in chunks]
    billed = selected_page_count(result.pages_billed, max_pages=settings.parse.max_pages,
                                 target=settings.parse.target_pages)
    return _Local(DocumentEstimate(str(path), WOULD_RUN, None, billed, len(chunks), sum(counts)), counts, digest)


def _request(service: str, model: str, units: int, unit: str, price: UnitPrice | None, scope: CallScope,
             settings: Settings) -> SpendRequest:
    return SpendRequest(service, model, units, unit, price.cost_nusd(units) if price else None, scope,
                        settings.budget.max_usd)


def _query_requests(loaded: LoadedScenario, settings: Settings, price: UnitPrice | None) -> list[SpendRequest]:
    """One embedding request per retrieval expectation, as the run sends them after ingestion (in the
    embedder's space; none when the scenario's own `search:` hook answers the queries)."""
    from tvdb.tokens import count_tokens

    retrieval = loaded.scenario.expectations.retrieval
    if not retrieval or loaded.scenario.search is not None:
        return []
    model = settings.embedding.model
    scope = CallScope(None, loaded.scenario.name, "query")
    tokens = count_tokens([r.query for r in retrieval], embedding_model(model).encoding)
    return [_request(OPENAI, model, n, "tokens", price, scope, settings) for n in tokens]


def _open_ledger(settings: Settings) -> Database:
    """The ledger a run would use, read only; without one, an empty in-memory one (nothing spent or stored)."""
    from tvdb.db import open_db, open_storage

    if settings.database_url is not None:
        return open_storage(settings)
    return open_db(settings.database_path if settings.database_path.exists() else Path(":memory:"))


def _with_reuse(results: list[_Local], jobs: JobStore, reuse_key: str) -> list[_Local]:
    """`results` with each document a run would reuse marked REUSED (no calls: no token counts to embed).
    The run's own lookup (tvdb.pipeline.stages.record_upload): identical bytes and reuse key, completed."""
    out = []
    for r in results:
        earlier = jobs.find_reusable(r.sha256, reuse_key, exclude_run="") if r.sha256 else None
        if earlier is None:
            out.append(r)
            continue
        out.append(_Local(replace(r.estimate, status=REUSED, error_code=None, reused_from=earlier.job_id,
                                  pages=earlier.pages or 0, chunks=earlier.chunks or 0, tokens=earlier.tokens or 0),
                          [], r.sha256))
    return out


def estimate(loaded: LoadedScenario, settings: Settings, clock: Clock, *, fresh: bool = False) -> Estimate:
    """Forecast `loaded` under `settings` (today's spend and the documents a run would reuse read from
    the ledger, if there is one; `fresh`, as `tvdb run --fresh`: reuse nothing)."""
    from tvdb.scenarios.runner import forecast_reuse_key
    from tvdb.services.batching import group_sizes, plan_batches
    from tvdb.services.modes import service_mode

    async def gather() -> list[_Local]:
        return await asyncio.gather(*(_local_document(p, settings) for p in loaded.documents))

    ledger = _open_ledger(settings)
    try:
        results = asyncio.run(gather())
        if not fresh and loaded.scenario.reuse:
            results = _with_reuse(results, JobStore(ledger, clock), forecast_reuse_key(settings, loaded.scenario))
        modes = {"parser": service_mode(settings, "parser")[0], "embedder": service_mode(settings, "embedder")[0]}
        prices = PriceTable.load(settings.prices)
        day = clock.now().date()
        tier, model = settings.parse.tier, settings.embedding.model
        parse_price, embed_price = prices.lookup(LLAMAPARSE, tier, day=day), prices.lookup(OPENAI, model, day=day)
        scope = CallScope(None, loaded.scenario.name, "parse")
        parse_requests = [
            _request(LLAMAPARSE, tier, r.estimate.pages, "pages", parse_price, scope, settings) for r in results
            if r.estimate.status == WOULD_RUN
            or (r.estimate.error_code == ErrorCode.NO_TEXT and modes["parser"] is Mode.REAL)
        ]
        counts = [c for r in results for c in r.counts]
        scope = CallScope(None, loaded.scenario.name, "embed")
        # planned as the run's embed queue plans them: group by group (tvdb.pipeline.embed)
        spec, start, batches = embedding_model(model), 0, []
        for size in group_sizes(counts, spec, settings.streaming.lookahead_requests):
            group = counts[start:start + size]
            batches += [sum(group[i] for i in batch) for batch in plan_batches(group, spec)]
            start += size
        embed_requests = [_request(OPENAI, model, tokens, "tokens", embed_price, scope, settings)
                          for tokens in batches]
        query_requests = _query_requests(loaded, settings, embed_price)
        paid = (Mode.REAL, Mode.HYBRID)  # hybrid spends at most what real would
        real = [*(parse_requests if modes["parser"] in paid else []),
                *(embed_requests + query_requests if modes["embedder"] in paid else [])]
        forecast = LedgerBudget(ledger, budget_settings(settings), clock).forecast(real)
    finally:
        ledger.close()
    every = [*parse_requests, *embed_requests, *query_requests]
    # pages as the run will record them: a document the mock parser fails bills (and records) 0 pages,
    # while real LlamaParse bills a scanned page it cannot read
    documents = tuple(replace(r.estimate, pages=0)
                      if r.estimate.status == FAILED and modes["parser"] is not Mode.REAL else r.estimate
                      for r in results)
    return Estimate(
        scenario=loaded.scenario.name, modes={k: str(v) for k, v in modes.items()},
        documents=documents,
        requests={"parse": len(parse_requests), "embed": len(embed_requests), "query": len(query_requests)},
        would_cost_nusd={"parse": sum(r.estimate_nusd or 0 for r in parse_requests),
                         "embed": sum(r.estimate_nusd or 0 for r in embed_requests),
                         "query": sum(r.estimate_nusd or 0 for r in query_requests)},
        unpriced=tuple(sorted({(r.service, r.model) for r in every if r.estimate_nusd is None})),
        forecast=forecast, parse_pages=int(sum(r.units for r in parse_requests)), parse_tier=tier,
    )
