"""Run a scenario's documents through the user's own code (`pipeline:`), inside a tvdb session.

Each document is one job: pending → uploaded (tvdb read its bytes) → the hook runs → complete, or
failed with the exception's type and message. The session (tvdb.sessions) serves every OpenAI and
LlamaParse request the user's code makes — mock, real under the budget, hybrid, recorded or
replayed — and writes its ledger rows under this run's id and the document's correlation id, so the
cost, request and provenance expectations read them as for tvdb's own pipeline.

A failure is the document's, never the run's: an exception whose chain holds a TvdbError (a budget
refusal, a cassette miss, the SDK's wrapping of either) fails the job with that error's code (a
budget refusal makes the run exit 3); any other exception fails it with `pipeline_error`, its
message and where it was raised, and the traceback goes to the job's failure event. Every text is
redacted of secrets first.
"""

from __future__ import annotations

import asyncio
import hashlib
import os
import traceback
from collections.abc import Callable, MutableMapping, Sequence
from contextlib import AbstractAsyncContextManager, AbstractContextManager
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

from tvdb.domain import JobState, PipelineDocument, Stage
from tvdb.errors import DocumentError, ErrorCode, StorageError, TvdbError
from tvdb.logcontext import log_context
from tvdb.pipeline import stages
from tvdb.pipeline.context import PipelineContext
from tvdb.pipeline.jobs import FINAL, Job
from tvdb.redaction import redact
from tvdb.scenarios.hooks import Hook, HookRaised
from tvdb.scenarios.patterns import matches
from tvdb.scenarios.results import DocumentResult, ExpectationResult

if TYPE_CHECKING:
    from tvdb.config import Settings
    from tvdb.recording.session import Tape
    from tvdb.scenarios.schema import RetrievalExpectation, Scenario
    from tvdb.storage import Database

PIPELINE_STAGE = "pipeline"  # the job_stages / stage_ms name of the time the user's code took
MAX_TRACEBACK_CHARS = 20_000
MAX_MESSAGE_CHARS = 500  # an event row, not a log file: the innermost frames are what matter


class HookSession(Protocol):
    """What the scenario runner needs of a tvdb session: tag the rows written inside a block."""

    def scope(self, *, correlation_id: str | None = None, job_id: str | None = None,
              stage: str | None = None) -> AbstractContextManager[Any]: ...


SessionOpener = Callable[[PipelineContext, "Scenario", "Tape | None"], AbstractAsyncContextManager[HookSession]]


def open_session(ctx: PipelineContext, scenario: Scenario, tape: Tape | None) -> AbstractAsyncContextManager[Any]:
    """The tvdb session a `pipeline:` scenario runs in: the run's settings (mode, services, budgets, base
    URLs), its fault plan, its cassette (recording or replaying it), its run id and name on every row."""
    from tvdb.faults.plan import FaultPlan
    from tvdb.recording.session import replay_settings
    from tvdb.sessions.api import Session

    settings = ctx.settings if tape is None or not tape.replay else replay_settings(ctx.settings, tape)
    mode = str(settings.mode) if tape is None else "replay" if tape.replay else "record" if tape.fresh else \
        str(settings.mode)
    opened: AbstractAsyncContextManager[Any] = Session(
        settings, mode=mode, tape=tape, faults=FaultPlan.of(scenario.faults) if scenario.faults else None,
        block_network=False, intercept=True, run_id=ctx.run_id, scenario=scenario.name, clock=ctx.clock)
    return opened


def placeholder_keys(settings: Settings, tape: Tape | None, environ: MutableMapping[str, str]
                     ) -> AbstractContextManager[None]:
    """While the block runs, a placeholder key in `environ` for each offline service without one (mock, or
    a replay), so the user's unchanged `OpenAI()` runs offline: the same rule as `tvdb.session()`."""
    from tvdb.sessions.placeholders import placeholder_keys as keys

    return keys(settings, replay=tape is not None and tape.replay, environ=environ)


def secrets_of(ctx: PipelineContext) -> list[str]:
    from tvdb.recording.session import configured_secrets

    return configured_secrets(ctx.settings)


async def run_hook_jobs(ctx: PipelineContext, hook: Hook, session: HookSession) -> list[Job]:
    """Every job of `ctx.run_id` that is not final through `hook`, one document at a time (the user's
    code need not be thread- or task-safe); returns the jobs as they end. A resumed run starts each
    unfinished document again, from its bytes."""
    secrets = secrets_of(ctx)
    for job in ctx.jobs.jobs(ctx.run_id):
        if job.state is JobState.DEFERRED:
            job = ctx.changed(ctx.jobs.transition(job, JobState.UPLOADED, detail="resumed after deferral",
                                                  deferred_from=None, error_code=None, error_message=None))
        if job.state in FINAL:
            continue
        with log_context(run_id=job.run_id, correlation_id=job.correlation_id):
            await _one(ctx, hook, job, session, secrets)
    return ctx.jobs.jobs(ctx.run_id)


async def _one(ctx: PipelineContext, hook: Hook, job: Job, session: HookSession, secrets: Sequence[str]) -> None:
    start = ctx.clock.monotonic()
    try:
        doc, job = await _read(ctx, job)
    except DocumentError as exc:
        stages.fail(ctx, job, exc)
        return
    ctx.jobs.add_stage_time(job, Stage.UPLOAD, (ctx.clock.monotonic() - start) * 1000)
    start = ctx.clock.monotonic()
    timeout = ctx.settings.hooks.timeout_s
    try:
        with session.scope(correlation_id=job.correlation_id, job_id=job.job_id):
            await asyncio.wait_for(hook.call(doc), timeout)
    except TimeoutError:  # ours: what the user's code raises arrives as HookRaised
        ctx.jobs.add_stage_time(job, PIPELINE_STAGE, (ctx.clock.monotonic() - start) * 1000)
        ctx.changed(ctx.jobs.transition(
            ctx.jobs.job(job.job_id), JobState.FAILED, detail=f"{hook.spec} abandoned after {timeout:g} s",
            error_code=ErrorCode.TIMEOUT.value, error_message=timeout_message(hook, timeout)))
        return
    except HookRaised as carried:  # the user's code failed this document, not the run (SystemExit too)
        raised = carried.raised
        if stops_the_run(raised):
            raise raised from None
        ctx.jobs.add_stage_time(job, PIPELINE_STAGE, (ctx.clock.monotonic() - start) * 1000)
        _failed(ctx, job, raised, secrets)
        return
    ctx.jobs.add_stage_time(job, PIPELINE_STAGE, (ctx.clock.monotonic() - start) * 1000)
    ctx.changed(ctx.jobs.transition(job, JobState.COMPLETE, detail=f"{hook.spec} returned", **_used(ctx, job)))


def _used(ctx: PipelineContext, job: Job) -> dict[str, Any]:
    """The pages parsed and tokens embedded by the document's requests, for the job's columns."""
    from tvdb.ledger.usage import usage_by_correlation

    mine = usage_by_correlation(ctx.db, ctx.run_id, job.correlation_id).get(job.correlation_id)
    return {} if mine is None else {"pages": mine.pages, "tokens": mine.tokens}


async def _read(ctx: PipelineContext, job: Job) -> tuple[PipelineDocument, Job]:
    """pending → uploaded: the bytes (size limit, type), the sha256. Nothing is stored: the user's code
    has them. Raises DocumentError (the job fails with its code)."""
    from tvdb.pipeline.detect import detect_media_type

    path = Path(job.path)
    data = await asyncio.to_thread(stages.read_document, path, ctx.settings.max_document_bytes,
                                   ctx.settings.max_document_mb)
    if job.state is JobState.PENDING:
        job = ctx.changed(ctx.jobs.transition(
            job, JobState.UPLOADED, sha256=hashlib.sha256(data).hexdigest(), size_bytes=len(data),
            media_type=detect_media_type(data, path.name)))
    return PipelineDocument(path=path, content=data, correlation_id=job.correlation_id, job_id=job.job_id), job


def timeout_message(hook: Hook, timeout: float) -> str:
    return (f"{hook.spec} did not return within {timeout:g} s (hooks.timeout_s); tvdb moved on without it"
            + ("" if hook.is_async else " (its thread cannot be stopped and runs on until the process exits)"))


def stops_the_run(exc: BaseException) -> bool:
    """Whether an exception out of the user's code ends the run rather than its document: Ctrl-C (exit 130,
    `tvdb resume`), and a storage failure of tvdb's own ledger (a full disk) met inside the user's
    requests. SystemExit, GeneratorExit and the user's own BaseException subclasses are the document's
    failure: `sys.exit()` in a hook must not end the run as a success, nor skip the other documents."""
    return isinstance(exc, KeyboardInterrupt | StorageError)


def tvdb_error_in(exc: BaseException) -> TvdbError | None:
    """The first TvdbError in `exc`'s chain (`__cause__`, else `__context__`): the SDKs wrap what a transport
    raises (openai: APIConnectionError from a budget refusal, after its own retries)."""
    seen: set[int] = set()
    current: BaseException | None = exc
    while current is not None and id(current) not in seen:
        if isinstance(current, TvdbError):
            return current
        seen.add(id(current))
        current = current.__cause__ or current.__context__
    return None


def describe_exception(exc: BaseException, secrets: Sequence[str]) -> str:
    """`ValueError: no text to index (docpipe/ingest.py:47 in ingest)`: type, message and where it was raised."""
    kind = type(exc)
    builtin = kind.__module__ in ("builtins", "__main__")
    name = kind.__qualname__ if builtin else f"{kind.__module__}.{kind.__qualname__}"
    message = str(exc).strip().splitlines()[0] if str(exc).strip() else ""
    if len(message) > MAX_MESSAGE_CHARS:  # a line for a table and a CI log; the traceback has the rest
        message = message[:MAX_MESSAGE_CHARS] + "…"
    frames = traceback.extract_tb(exc.__traceback__)
    where = f" ({_short_file(frames[-1].filename)}:{frames[-1].lineno} in {frames[-1].name})" if frames else ""
    return redact(f"{name}: {message}{where}" if message else f"{name}{where}", secrets)


def _short_file(filename: str) -> str:
    parts = Path(filename).parts
    return str(Path(*parts[-2:])) if len(parts) > 2 else filename


def scrubbed_traceback(exc: BaseException, secrets: Sequence[str]) -> str:
    text = redact("".join(traceback.format_exception(exc)), secrets)
    return text if len(text) <= MAX_TRACEBACK_CHARS else "…" + text[-MAX_TRACEBACK_CHARS:]


def _failed(ctx: PipelineContext, job: Job, exc: BaseException, secrets: Sequence[str]) -> None:
    known = tvdb_error_in(exc)
    if known is not None:  # tvdb's own error: a budget refusal defers or fails the job as in tvdb's pipeline
        stages.fail(ctx, ctx.jobs.job(job.job_id), _redacted(known, secrets))
        return
    ctx.changed(ctx.jobs.transition(
        ctx.jobs.job(job.job_id), JobState.FAILED, detail=scrubbed_traceback(exc, secrets),
        error_code=ErrorCode.PIPELINE_ERROR.value, error_message=describe_exception(exc, secrets)))


def _redacted(exc: TvdbError, secrets: Sequence[str]) -> TvdbError:
    """`exc` itself when its text holds no secret (the common case); else a copy of its kind whose text is
    redacted (a message may quote what a service answered)."""
    text = str(exc)
    clean = redact(text, secrets)
    if clean == text:
        return exc
    copy = TvdbError(clean)
    copy.error_code = exc.error_code
    return copy


def hook_document_results(db: Database, jobs: Sequence[Job],
                          tracebacks: Callable[[str], str | None]) -> list[DocumentResult]:
    """Per-document outcome of a `pipeline:` run: its cost is every request its correlation id made;
    tokens and pages are what those requests embedded and parsed (chunks and vectors are the user's own)."""
    from tvdb.ledger.prices import nusd_to_usd
    from tvdb.ledger.usage import usage_by_correlation

    if not jobs:
        return []
    used = usage_by_correlation(db, jobs[0].run_id)
    out = []
    for job in jobs:
        mine = used.get(job.correlation_id)
        would = 0 if mine is None else mine.would_cost_nusd
        out.append(DocumentResult(
            path=job.path, job_id=job.job_id, correlation_id=job.correlation_id, status=job.state.value,
            error_code=job.error_code, error_message=job.error_message, media_type=job.media_type,
            pages=mine.pages if mine else 0, chunks=0, tokens=mine.tokens if mine else 0, vectors=0,
            would_cost_usd=None if would is None else nusd_to_usd(would), reused_from=None,
            stage_ms=dict(job.stage_ms or {}),
            traceback=tracebacks(job.job_id) if job.error_code == ErrorCode.PIPELINE_ERROR else None,
        ))
    return out


async def hook_retrieval(search: Hook, session: HookSession, r: RetrievalExpectation,
                         documents: Sequence[DocumentResult], base: Path, secrets: Sequence[str],
                         timeout: float) -> ExpectationResult:
    """`r.query` through the user's `search:` hook: passes when a document `r.document` names is among the
    first `r.top_k` results. A result names a document by path (absolute or relative to the scenario),
    file name, job id or correlation id."""
    from tvdb.scenarios.expectations import RETRIEVAL

    desc = f"query {r.query!r} finds {r.document} in the top {r.top_k}"
    complete = [d for d in documents if d.status == "complete"]
    wanted = {d.job_id for d in complete if matches(r.document, d.path, base)}
    if not wanted:
        return ExpectationResult(desc, False, f"no complete document matches {r.document!r}", RETRIEVAL)
    try:
        with session.scope(stage="query"):
            got = await asyncio.wait_for(search.call(r.query, r.top_k), timeout)
    except TimeoutError:
        return ExpectationResult(desc, False, timeout_message(search, timeout), RETRIEVAL)
    except HookRaised as carried:  # a verdict, never a crash after all the work is done
        exc = carried.raised
        if stops_the_run(exc):
            raise exc from None
        return ExpectationResult(desc, False, f"{search.spec} raised {describe_exception(exc, secrets)}", RETRIEVAL)
    if isinstance(got, str | bytes) or not isinstance(got, Sequence):
        return ExpectationResult(desc, False, f"{search.spec} returned a {type(got).__name__}; return a list of "
                                 "document paths or ids, best first", RETRIEVAL)
    top = list(got)[: r.top_k]
    found = [_document_named(item, documents, base) for item in top]
    names = [_display(d.path, base) if d is not None else f"{redact(str(item), secrets)!s} (not a document of "
             "this run)" for item, d in zip(top, found, strict=True)]
    ok = any(d is not None and d.job_id in wanted for d in found)
    detail = f"top {r.top_k} from {search.spec}: {', '.join(names) if names else 'nothing'}"
    if len(got) > r.top_k:
        detail += f" (it returned {len(got)}; the first {r.top_k} count)"
    return ExpectationResult(desc, ok, detail, RETRIEVAL)


def _document_named(item: object, documents: Sequence[DocumentResult], base: Path) -> DocumentResult | None:
    if not isinstance(item, str | Path):
        return None
    text = str(item)
    for d in documents:
        if text in (d.job_id, d.correlation_id, d.path):
            return d
    candidate = Path(text).expanduser()
    full = candidate if candidate.is_absolute() else base / candidate
    for d in documents:  # as the scenario wrote it, or the file a symlink in either leads to
        if os.path.abspath(full) == d.path or str(full.resolve()) == str(Path(d.path).resolve()):
            return d
    named = [d for d in documents if Path(d.path).name == text]
    return named[0] if len(named) == 1 else None


def _display(path: str, base: Path) -> str:
    try:
        return str(Path(path).relative_to(base))
    except ValueError:
        return path
