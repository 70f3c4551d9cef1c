"""Judge a finished run against its scenario's expectations.

Document status: each document gets the status of the most specific matching entry that states
one (an exact path beats a glob, a longer glob beats a shorter one); with none, `complete` is
expected, so a failed document fails the run unless the scenario says it should fail.
"""

from __future__ import annotations

import math
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from tvdb.catalog import embedding_model
from tvdb.domain import EmbeddingRequest, EmbeddingSpace, Mode
from tvdb.errors import TvdbError
from tvdb.money import format_usd
from tvdb.pipeline.context import PipelineContext
from tvdb.pipeline.search import TopK
from tvdb.scenarios.patterns import as_named, matches, specificity
from tvdb.scenarios.results import DocumentResult, ExpectationResult, UsageSummary
from tvdb.scenarios.schema import (
    DocumentExpectation,
    Expectations,
    ProvenanceExpectation,
    RequestExpectation,
    RetrievalExpectation,
)

if TYPE_CHECKING:
    import numpy as np
    import numpy.typing as npt

    from tvdb.pipeline.search import VectorStats

from tvdb.ledger.guard import CallScope
from tvdb.services.modes import STAGE_ROLE

RETRIEVAL = "retrieval"  # ExpectationResult.kind of retrieval expectations


def _chunks(n: int) -> str:
    return f"{n} chunk" + ("" if n == 1 else "s")


def document_expectations(
    entries: Sequence[DocumentExpectation], documents: Sequence[DocumentResult], base: Path
) -> list[ExpectationResult]:
    out: list[ExpectationResult] = []
    for entry in entries:
        if not any(matches(entry.document, d.path, base) for d in documents):
            out.append(ExpectationResult(f"documents matching {entry.document!r}", False, "no document matches"))
    for doc in documents:
        name = as_named(doc.path, base)
        stated = [e for e in entries if e.status is not None and matches(e.document, doc.path, base)]
        rule = max(stated, key=lambda e: specificity(e.document)) if stated else None
        want = rule.status if rule else "complete"
        code = rule.error_code if rule else None
        if want == "complete":
            ok = doc.status == "complete"
            desc = f"{name}: complete"
        else:
            ok = doc.status == "failed" and (code is None or doc.error_code == code)
            desc = f"{name}: failed" + (f" with {code}" if code else "")
        got = doc.status + (f" ({doc.error_code}: {doc.error_message})" if doc.error_code else "")
        out.append(ExpectationResult(desc, ok, "" if ok else f"got {got}"))
        if want == "failed":
            continue  # chunk bounds describe documents that are meant to complete
        for e in entries:
            if not matches(e.document, doc.path, base):
                continue
            if e.min_chunks is not None:
                out.append(ExpectationResult(f"{name}: at least {_chunks(e.min_chunks)}", doc.chunks >= e.min_chunks,
                                             f"got {doc.chunks}"))
            if e.max_chunks is not None:
                out.append(ExpectationResult(f"{name}: at most {_chunks(e.max_chunks)}", doc.chunks <= e.max_chunks,
                                             f"got {doc.chunks}"))
    return out


def _requests(ctx: PipelineContext, e: RequestExpectation) -> ExpectationResult:
    from tvdb.ledger.usage_store import UsageStore

    n = UsageStore(ctx.db).count_requests(ctx.run_id, e.service, stage=e.stage, status=e.status, retries=e.retries)
    what = (f"{e.service} {f'{e.stage} ' if e.stage else ''}{'retries' if e.retries else 'requests'}"
            + (f" with status {e.status}" if e.status else ""))
    bounds = [f"≥ {e.min}" if e.min is not None else "", f"≤ {e.max}" if e.max is not None else ""]
    ok = (e.min is None or n >= e.min) and (e.max is None or n <= e.max)
    return ExpectationResult(f"{what} {' and '.join(b for b in bounds if b)}".strip(), ok, f"got {n}")


async def evaluate(
    ctx: PipelineContext, expectations: Expectations, documents: Sequence[DocumentResult],
    usage: UsageSummary, base: Path,
    retrieve: Callable[[RetrievalExpectation], Awaitable[ExpectationResult]] | None = None,
) -> list[ExpectationResult]:
    """Every expectation's verdict, in the order the scenario states them. `retrieve` judges a retrieval
    expectation instead of tvdb's vector index (a `pipeline:` scenario's `search:` hook).

    The vector checks and every retrieval query are answered in one block-wise pass over the run's
    stored vectors (tvdb.pipeline.search): memory holds one block, not the corpus."""
    from tvdb.pipeline.search import VectorStats, feed
    from tvdb.pipeline.store import scan_vectors, space_counts

    out = document_expectations(expectations.documents, documents, base)
    complete = [d for d in documents if d.status == "complete"]
    job_ids = [d.reused_from or d.job_id for d in complete]
    dims = ctx.settings.embedding.resolved_dimensions
    stats = VectorStats(dims) if expectations.vectors is not None else None
    # every query is embedded (in each space present) before the scan, so one pass answers them all
    ours = expectations.retrieval and retrieve is None
    spaces = [sp for sp, _ in space_counts(ctx.db, job_ids)] if ours else []
    searches = [await retrieve(r) if retrieve is not None
                else await _prepare(ctx, r.query, r.document, r.top_k, complete, base, spaces)
                for r in expectations.retrieval]
    consumers = [c for c in (stats, *(t for s in searches if isinstance(s, _Search) for t in s.tops)) if c]
    if consumers:
        feed(scan_vectors(ctx.db, job_ids, dims), *consumers)
    if stats is not None:
        out.extend(_vector_checks(ctx, expectations, stats))
    if expectations.max_cost_usd is not None:
        out.append(_max_cost(expectations.max_cost_usd, usage, bool(expectations.retrieval)))
    out.extend(s.verdict() if isinstance(s, _Search) else s for s in searches)
    out.extend(_requests(ctx, e) for e in expectations.requests)
    if expectations.provenance is not None:
        out.extend(_provenance(ctx, expectations.provenance))
    return out


def _max_cost(limit: float, usage: UsageSummary, retrieval: bool) -> ExpectationResult:
    """`max_cost_usd` bounds what ingesting the run's documents costs, reused ones included at the cost
    measured when they were first ingested: otherwise the same scenario would pass any limit at $0 once
    its documents are stored, and its verdict would depend on the data dir."""
    cost = usage.documents_would_cost_usd
    ok = cost is not None and cost <= limit
    return ExpectationResult(f"ingesting the documents costs at most {format_usd(limit)} at live prices", ok,
                             _max_cost_detail(usage, retrieval))


def _max_cost_detail(usage: UsageSummary, retrieval: bool) -> str:
    cost, reused = usage.documents_would_cost_usd, usage.reused_would_cost_usd
    if cost is None:
        return ("the reused documents' first ingestion has no known price" if reused is None
                else f"{usage.unpriced_calls} calls have no known price")
    notes = ["the retrieval queries' own calls not counted"] if retrieval else []
    if not usage.reused_documents:
        return f"ingestion would cost {format_usd(cost)}" + (f" ({notes[0]})" if notes else "")
    # the Spent line and --json's ingestion_would_cost_usd count this run's calls only: say how we differ
    notes.insert(0, "--fresh measures them again")
    return (f"ingesting the documents would cost {format_usd(cost)}: {format_usd(usage.ingestion_would_cost_usd)} "
            f"in this run (the Spent line's ingestion figure) + {format_usd(reused)} for {usage.reused_documents} "
            f"reused document(s), as measured when they were first ingested ({'; '.join(notes)})")


def count_fallbacks(ctx: PipelineContext) -> int:
    """Parse and embed calls of hybrid services that ran local. Queries follow the space of the
    stored vectors, so a query in the mock space is not a fallback of its own."""
    from tvdb.ledger.provenance import count_local_calls

    modes = ctx.router.modes
    stages = [stage for stage in ("parse", "embed") if modes[STAGE_ROLE[stage]] is Mode.HYBRID]
    return count_local_calls(ctx.db, ctx.run_id, stages)


def _provenance(ctx: PipelineContext, e: ProvenanceExpectation) -> list[ExpectationResult]:
    from tvdb.ledger.provenance import run_provenance

    served = [p for p in run_provenance(ctx.db, ctx.run_id) if p.calls > p.errors]

    def count(stage: str | None, implementation: str | None) -> int:
        return sum(p.calls - p.errors for p in served if (stage is None or p.stage == stage)
                   and (implementation is None or p.implementation == implementation))

    def why_not_real(stage: str) -> str:
        reasons = [f"{p.calls - p.errors} {p.implementation}: {p.reason}" for p in served
                   if p.stage == stage and p.implementation != "real"]
        return "; ".join(reasons[:3])

    out = []
    for stage in e.require_real:
        real, total = count(stage, "real"), count(stage, None)
        ok = total > 0 and real == total
        detail = f"{real} of {total} {stage} calls real" + (f" ({why_not_real(stage)})" if real != total else "")
        out.append(ExpectationResult(f"every {stage} call runs real", ok, detail))
    if e.max_mock_fraction is not None:
        mock, total = count(None, "mock"), count(None, None)
        share = mock / total if total else 0.0
        out.append(ExpectationResult(f"at most {e.max_mock_fraction:.0%} of calls run mock",
                                     share <= e.max_mock_fraction, f"{mock} of {total} calls ran mock ({share:.0%})"))
    if e.max_fallbacks is not None:
        n = count_fallbacks(ctx)
        out.append(ExpectationResult(f"at most {e.max_fallbacks} fallbacks", n <= e.max_fallbacks,
                                     f"{n} call{'' if n == 1 else 's'} fell back to local"))
    return out


def _vector_checks(ctx: PipelineContext, expectations: Expectations, stats: VectorStats) -> list[ExpectationResult]:
    spec = expectations.vectors
    assert spec is not None
    dims = spec.dimension or ctx.settings.embedding.resolved_dimensions
    width = stats.width_or_default
    # with no vectors, no vector check can pass: each fails saying so (an empty set is not "all finite")
    none = "no vectors to check"
    out = [ExpectationResult(f"vectors have dimension {dims}", width == dims and stats.rows > 0,
                             f"{stats.rows} vectors of dimension {width}" if stats.rows else none)]
    if spec.finite:
        out.append(ExpectationResult("vectors are all finite", stats.rows > 0 and stats.nonfinite == 0,
                                     f"{stats.nonfinite} with NaN/inf" if stats.rows else none))
    if spec.unit_norm:
        worst = stats.worst_norm_error
        ok = stats.rows > 0 and math.isfinite(worst) and worst <= 1e-3
        detail = f"largest |norm - 1| = {worst:.2e}" if stats.rows else none
        out.append(ExpectationResult("vectors have unit norm", ok, detail))
    return out


@dataclass
class _Search:
    """A retrieval expectation whose query is embedded in each space: the scan fills `tops`."""

    desc: str
    k: int
    wanted: set[str]
    by_job: dict[str, str]
    tops: list[TopK]
    failures: list[tuple[EmbeddingSpace, str]]  # spaces whose query could not be embedded
    spaces: list[EmbeddingSpace]

    def verdict(self) -> ExpectationResult:
        ok, details = False, []
        failed = dict(self.failures)
        tops = {t.space: t for t in self.tops}
        for space in self.spaces:
            if space in failed:
                found, detail = False, failed[space]
            else:
                top = tops[space]
                if top.error is not None:
                    return ExpectationResult(self.desc, False, "could not be evaluated: "
                                             f"{type(top.error).__name__}: {top.error}", RETRIEVAL)
                got = ", ".join(f"{self.by_job.get(f.job_id, f.job_id)}#{f.chunk_index} ({f.score:.3f})"
                                for f in top.best)
                found = any(f.job_id in self.wanted for f in top.best)
                detail = f"top {self.k} of {top.compared} {space.implementation} vectors: {got}"
            ok = ok or found
            details.append(detail if len(self.spaces) == 1 else f"{space.label}: {detail}")
        return ExpectationResult(self.desc, ok, " · ".join(details), RETRIEVAL)


async def _prepare(
    ctx: PipelineContext, query: str, document: str, k: int, complete: Sequence[DocumentResult], base: Path,
    spaces: list[EmbeddingSpace],
) -> _Search | ExpectationResult:
    """Top-k within each embedding space present: the query is embedded once per space, by that
    space's implementation, and compared only with that space's vectors. Passes when `document`
    is in the top k of a space. A verdict already when there is nothing to search."""
    desc = f"query {query!r} finds {document} in the top {k}"
    try:
        wanted = {d.reused_from or d.job_id for d in complete if matches(document, d.path, base)}
        if not wanted:
            return ExpectationResult(desc, False, f"no complete document matches {document!r}", RETRIEVAL)
        if not spaces:
            return ExpectationResult(desc, False, "no vectors to search", RETRIEVAL)
        by_job = {d.reused_from or d.job_id: as_named(d.path, base) for d in complete}
        search = _Search(desc, k, wanted, by_job, [], [], spaces)
        for space in spaces:
            vector = await _embed_query(ctx, query, space)
            if isinstance(vector, str):
                search.failures.append((space, vector))
            else:
                search.tops.append(TopK(vector, k, space))
        return search
    except Exception as exc:  # noqa: BLE001 — a verdict, never a crash after all the work is done
        return ExpectationResult(desc, False, f"could not be evaluated: {type(exc).__name__}: {exc}", RETRIEVAL)


async def _embed_query(ctx: PipelineContext, query: str, space: EmbeddingSpace) -> npt.NDArray[np.float32] | str:
    """The query's vector in `space`, or why it could not be had."""
    import numpy as np

    from tvdb.services.embedding import embedding_call_spec
    from tvdb.tokens import count_tokens
    from tvdb.vectors import validate_vectors

    tokens = count_tokens([query], embedding_model(space.model).encoding)[0]
    request = EmbeddingRequest((query,), space.model, space.dimensions, tokens, (tokens,))
    try:
        done = await ctx.router.call(
            ctx.router.embedder, CallScope(ctx.run_id, ctx.scenario, "query"),
            lambda embedder, prov: embedding_call_spec(embedder, request, ctx.settings, provenance=prov),
            want=space.implementation, why=f"query in the space it searches: {space.label}",
        )
    except TvdbError as exc:
        return f"embedding the query in {space.implementation} failed: {exc}"
    done.commit(ctx.db, ctx.caller.budget)
    try:
        validate_vectors(done.value.vectors, dimensions=space.dimensions)
    except TvdbError as exc:
        return f"the query's embedding is invalid: {exc}"
    return np.asarray(done.value.vectors[0], dtype=np.float32)
