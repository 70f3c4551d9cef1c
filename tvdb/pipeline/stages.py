"""The per-document stages: upload, parse, chunk, and validate+store. Embedding is batched across
documents and lives in `tvdb.pipeline.embed`.

Each stage moves one job forward and commits its output, its usage row and its state transition in
one transaction, so a crash between stages loses nothing and a resumed job never redoes a stage.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from tvdb.catalog import selected_page_count
from tvdb.clock import iso
from tvdb.domain import Chunk, EmbeddingSpace, Implementation, JobState, Page, ParseRequest, ParseResult, Stage
from tvdb.errors import (
    CostLimitExceeded,
    DocumentError,
    ErrorCode,
    LocalRequestLimitExceeded,
    QuotaExhausted,
    StorageError,
    TvdbError,
    VectorValidationError,
)
from tvdb.ledger.guard import CallScope
from tvdb.ledger.prices import LLAMAPARSE
from tvdb.pipeline.context import PipelineContext
from tvdb.pipeline.jobs import Job, warnings_json
from tvdb.services.calls import CallSpec
from tvdb.services.protocols import Parser
from tvdb.services.router import Provenance
from tvdb.settings import ParseSettings
from tvdb.storage import transaction
from tvdb.words import counted

_PDF_PAGE = re.compile(rb"/Type\s*/Page(?![a-zA-Z])")


def fail(ctx: PipelineContext, job: Job, exc: BaseException) -> Job:
    """Fail `job` with the error's code; the run goes on. Budget refusals may defer instead.

    A StorageError (full or read-only disk) is not the document's fault: it is raised again, the
    run stops, and the job stays where it was so that `tvdb resume` finishes it."""
    if isinstance(exc, StorageError):
        raise exc
    code = exc.error_code if isinstance(exc, TvdbError) else ErrorCode.INTERNAL
    if isinstance(exc, CostLimitExceeded | LocalRequestLimitExceeded):
        until = ctx.caller.budget.deferred_until(exc)
        if ctx.settings.on_budget_exceeded == "defer" and until is not None and job.state in (
            JobState.UPLOADED, JobState.PARSING, JobState.PARSED, JobState.CHUNKED, JobState.EMBEDDING
        ):
            back = {JobState.PARSING: JobState.UPLOADED, JobState.EMBEDDING: JobState.CHUNKED}.get(
                job.state, job.state
            )
            return ctx.changed(ctx.jobs.transition(
                job, JobState.DEFERRED, detail=f"{exc}; deferred until {iso(until)}", deferred_from=back.value,
                deferred_until=iso(until), error_code=code.value, error_message=str(exc),
            ))
    # the job names its document already; keep the message free of a repeated path
    message = exc.message if isinstance(exc, DocumentError) else str(exc)
    return ctx.changed(ctx.jobs.transition(
        job, JobState.FAILED, detail=f"{code}: {message}", error_code=code.value, error_message=message
    ))


def read_document(path: Path, limit: int, limit_mb: float) -> bytes:
    """The bytes of a regular file of 1 to `limit` bytes; DocumentError for anything else (EMPTY for a
    0-byte file)."""
    from tvdb.files import FileTooLarge, NotARegularFile, read_regular_file

    try:
        data = read_regular_file(path, limit)
    except FileNotFoundError:
        raise DocumentError(ErrorCode.NOT_FOUND, "the document no longer exists", path=str(path)) from None
    except NotARegularFile as exc:
        raise DocumentError(ErrorCode.UNSUPPORTED_TYPE, str(exc), path=str(path)) from None
    except FileTooLarge as exc:
        raise DocumentError(ErrorCode.TOO_LARGE, f"{exc} (max_document_mb = {limit_mb:g})", path=str(path)) from None
    except OSError as exc:
        raise DocumentError(ErrorCode.NOT_FOUND, f"cannot be read: {exc.strerror or exc}", path=str(path)) from None
    if not data:  # not a scan that would need OCR: there is nothing at all to parse
        raise DocumentError(ErrorCode.EMPTY, "the file is empty (0 bytes)", path=str(path))
    return data


@dataclass(frozen=True, slots=True)
class Stored:
    """A document's bytes as the upload stage stored them: content key (sha256 hex), size, type,
    and the stage's time in ms (reading, sniffing, storing; not the commit)."""

    key: str
    size_bytes: int
    media_type: str
    ms: float


def store_document(ctx: PipelineContext, job: Job) -> Stored | TvdbError:
    """Read `job`'s file (size limit), detect its type from the bytes and store them
    content-addressed; the document's error instead of raising it. Touches no database: it runs on
    a worker thread, one document's bytes in memory at a time."""
    from tvdb.pipeline.detect import detect_media_type

    start = ctx.clock.monotonic()
    path = Path(job.path)
    try:
        data = read_document(path, ctx.settings.max_document_bytes, ctx.settings.max_document_mb)
        media_type = detect_media_type(data, path.name)
        key = ctx.objects.put(data)
    except TvdbError as exc:
        return exc
    return Stored(key, len(data), media_type, (ctx.clock.monotonic() - start) * 1000)


def record_upload(ctx: PipelineContext, job: Job, stored: Stored | TvdbError) -> Job:
    """pending → uploaded with what `store_document` stored (or failed with its error); then
    complete at once when an earlier run holds identical bytes and settings (reuse)."""
    if isinstance(stored, TvdbError):
        return fail(ctx, job, stored)
    skey = ctx.reuse_key()
    job = ctx.changed(ctx.jobs.transition(
        job, JobState.UPLOADED, sha256=stored.key, size_bytes=stored.size_bytes, media_type=stored.media_type,
        object_key=stored.key, settings_key=skey, stage_time=(Stage.UPLOAD, stored.ms),
    ))
    earlier = ctx.jobs.find_reusable(stored.key, skey, exclude_run=ctx.run_id) if ctx.reuse else None
    if earlier is not None:
        job = ctx.changed(ctx.jobs.transition(
            job, JobState.COMPLETE, detail=f"reused: identical document and settings in job {earlier.job_id}",
            reused_from=earlier.job_id, pages=earlier.pages, chunks=earlier.chunks, tokens=earlier.tokens,
            warnings_json=warnings_json(earlier.warnings),
        ))
    return job


def estimate_pages(data: bytes, media_type: str, parse: ParseSettings | None = None) -> int:
    """Pages to reserve for parsing `data`: a PDF's page count as pypdf reads its page tree (a raw
    count of `/Type /Page` misses pages in compressed object streams: pdflatex output counts 0 for
    4). Only for a PDF pypdf cannot open, the larger of 1 and that raw count, so a damaged file is
    still never reserved for less than it might be billed. Any other type: 1 page, or with `parse`
    (a real call) the local parser's pages (1 when it cannot read them), limited by
    `parse.max_pages` / `parse.target_pages`."""
    if media_type == "application/pdf":
        from tvdb.services.local.formats.pdf import count_pdf_pages

        found = count_pdf_pages(data)
        total = max(1, found if found is not None else len(_PDF_PAGE.findall(data)))
    elif parse is None:
        return 1
    else:
        from tvdb.services.local.parser import parse_document

        try:
            total = max(1, len(parse_document(data, "document", media_type).pages))
        except DocumentError:
            total = 1
    if parse is None:
        return total
    return max(1, int(selected_page_count(total, max_pages=parse.max_pages, target=parse.target_pages)))


async def parse(ctx: PipelineContext, job: Job) -> Job:
    """uploaded → parsing → parsed: read through a verified signed URL, parse, store pages."""
    start = ctx.clock.monotonic()
    if job.state is JobState.UPLOADED:
        job = ctx.changed(ctx.jobs.transition(job, JobState.PARSING))
    else:
        ctx.jobs.note(job, "resumed parse")
    assert job.object_key is not None and job.media_type is not None
    try:
        url = ctx.objects.signed_url(job.object_key, ctx.settings.signed_url_ttl_s)
        # read without yielding to the event loop: parse calls then start in document order, which
        # keeps `nth` faults and request numbering deterministic under concurrency
        data = ctx.objects.read(url)
        media_type = job.media_type
        scope = CallScope(ctx.run_id, ctx.scenario, Stage.PARSE, (job.job_id,), job.correlation_id)

        def spec_for(parser: Parser, provenance: Provenance) -> CallSpec[ParseResult]:
            real = provenance.implementation is Implementation.REAL
            estimate = estimate_pages(data, media_type, ctx.settings.parse if real else None)
            # a status poll the client retried gets its own usage row, as a retried upload does
            request = ParseRequest(data, Path(job.path).name, media_type, ctx.settings.parse.tier,
                                   on_retried=lambda retried: ctx.caller.record_retried(scope, spec, retried))
            spec: CallSpec[ParseResult] = CallSpec(
                service=LLAMAPARSE, implementation=provenance.implementation, model=ctx.settings.parse.tier,
                unit="pages", estimate_units=estimate, send=lambda: parser.parse(request),
                # credits not recorded yet (`estimated`): the reserved estimate is the bill
                actual_units=lambda r: estimate if r.usage.get("estimated") else r.pages_billed,
                usage_of=lambda r: r.usage, request_id_of=lambda r: r.request_id,
                provenance=provenance.reason, run_budget_usd=ctx.settings.budget.max_usd,
                before_send=ctx.pace_parse if real else None,
                replayed=lambda r: bool(r.usage.get("replayed")),  # answered from a cassette while recording
            )
            return spec

        if ctx.parse_quota is not None:  # out of credits: the other documents are not sent at all
            raise QuotaExhausted(f"not sent: {ctx.parse_quota.message}", service=LLAMAPARSE,
                                 status=ctx.parse_quota.status, code=ctx.parse_quota.code)
        # routed per job: a run that starts real continues local if the service goes down (hybrid)
        done = await ctx.router.call(ctx.router.parser, scope, spec_for)
    except TvdbError as exc:
        if isinstance(exc, QuotaExhausted) and exc.service == LLAMAPARSE and ctx.parse_quota is None:
            ctx.parse_quota = exc
        return fail(ctx, job, exc)
    pages = done.value.document.pages
    found = done.value.document.warnings
    warnings = [w[:500] for w in found[:50]]  # a 10,000-page scan must not flood the row
    if len(found) > 50:
        warnings[-1] = f"… and {len(found) - 49} more warnings"
    detail = "; ".join(warnings)[:2000] or None

    def store() -> Job:
        from tvdb.pipeline.store import insert_pages

        insert_pages(ctx.db, job.job_id, [(p.number, p.text) for p in pages])
        # the stage time in the same commit as the pages (a commit per document less; the commit
        # itself is not timed)
        return ctx.jobs.transition(job, JobState.PARSED, pages=len(pages), detail=detail,
                                   warnings_json=warnings_json(warnings),
                                   stage_time=(Stage.PARSE, (ctx.clock.monotonic() - start) * 1000))

    return ctx.changed(done.commit_with(ctx.db, ctx.caller.budget, store))


def cut_chunks(ctx: PipelineContext, pages: list[Page]) -> list[Chunk]:
    """A document's token windows (tvdb.pipeline.chunk); pure CPU, safe on a worker thread."""
    from tvdb.pipeline.chunk import chunk_pages

    s = ctx.settings
    return chunk_pages(pages, max_tokens=s.chunking.max_tokens, overlap_tokens=s.chunking.overlap_tokens,
                       model=s.embedding.model)


def load_document_pages(ctx: PipelineContext, job: Job) -> list[Page]:
    from tvdb.pipeline.store import load_pages

    return [Page(number, text) for number, text in load_pages(ctx.db, job.job_id)]


def store_chunks(ctx: PipelineContext, job: Job, chunks: list[Chunk], started: float) -> Job:
    """parsed → chunked: the chunks cut (at monotonic `started`) from the stored pages; a document
    with none fails NO_TEXT."""
    from tvdb.pipeline.store import insert_chunks

    if not chunks:
        return fail(ctx, job, DocumentError(ErrorCode.NO_TEXT, "no text to chunk", path=job.path))
    with transaction(ctx.db):
        insert_chunks(ctx.db, job.job_id, chunks)
        job = ctx.jobs.transition(job, JobState.CHUNKED, chunks=len(chunks),
                                  tokens=sum(c.token_count for c in chunks),
                                  stage_time=(Stage.CHUNK, (ctx.clock.monotonic() - started) * 1000))
    return ctx.changed(job)


def chunk(ctx: PipelineContext, job: Job) -> Job:
    """parsed → chunked: token windows over the stored pages (no service call)."""
    start = ctx.clock.monotonic()
    return store_chunks(ctx, job, cut_chunks(ctx, load_document_pages(ctx, job)), start)


def validate_and_store(ctx: PipelineContext, job: Job, spaces: Mapping[EmbeddingSpace, int]) -> Job:
    """embedded → stored → complete: the document must have one vector per chunk, all of the run's
    dimensions; then it becomes searchable. `spaces` is how many of its vectors each space holds
    (tvdb.pipeline.store.spaces_by_job, answered from the space index).

    Each vector's values were checked as its request returned (shape, finite, unit norm:
    tvdb.services.embedding validates every batch before it is stored), so the stored rows are not
    read back here (that re-read was 6 KiB per chunk of a run's I/O for a check already made)."""
    start = ctx.clock.monotonic()
    dims = ctx.settings.embedding.resolved_dimensions
    stored = sum(spaces.values())
    try:
        if stored != (job.chunks or 0):
            raise VectorValidationError(f"{stored} vectors for {job.chunks} chunks")
        wrong = sorted(space.dimensions for space in spaces if space.dimensions != dims)
        if wrong:
            raise VectorValidationError(f"vectors have dimension {wrong[0]}, expected {dims}")
    except VectorValidationError as exc:
        return fail(ctx, job, exc)
    checked = ctx.clock.monotonic()
    with transaction(ctx.db):
        job = ctx.jobs.transition(job, JobState.STORED, detail=f"{counted(stored, 'vector')} stored",
                                  stage_time=(Stage.VALIDATE, (checked - start) * 1000))
        job = ctx.jobs.transition(job, JobState.COMPLETE,
                                  stage_time=(Stage.STORE, (ctx.clock.monotonic() - checked) * 1000))
    return ctx.changed(job)
