"""Drives every job of a run through the stages, stage by stage, from wherever each job stands.

The same function starts a run and resumes one: a job is picked up in whatever state it was left
(`parsing` re-parses, `embedding` embeds only the chunks without vectors), finished jobs are left
alone. Documents are processed concurrently within a stage, in windows; embedding is a queue
batched across documents and windows.
"""

from __future__ import annotations

import asyncio
import logging
import threading
from collections import deque
from collections.abc import Awaitable, Callable, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass

from tvdb.domain import Chunk, JobState, Stage
from tvdb.errors import StorageError, TvdbError
from tvdb.logcontext import log_context
from tvdb.pipeline import stages
from tvdb.pipeline.context import PipelineContext
from tvdb.pipeline.embed import EmbedQueue
from tvdb.pipeline.jobs import FINAL, Job
from tvdb.pipeline.store import spaces_by_job
from tvdb.storage import savepoint, transaction

log = logging.getLogger(__name__)

_CUTTING = 3  # documents being cut ahead of the one being stored (two threads plus one queued)


def _contained(ctx: PipelineContext, job: Job, exc: Exception) -> None:
    """A bug or an unexpected library error while handling one document fails that job (`internal`)."""
    log.error("job %s (%s) failed unexpectedly: %s: %s", job.job_id, job.path, type(exc).__name__, exc,
              exc_info=log.isEnabledFor(logging.DEBUG))
    current = ctx.jobs.job(job.job_id)
    if current.state not in FINAL:
        stages.fail(ctx, current, exc)


async def _each(
    ctx: PipelineContext, jobs: list[Job], states: set[JobState], limit: int,
    step: Callable[[Job], Awaitable[Job]],
) -> None:
    semaphore = asyncio.Semaphore(limit)

    async def one(job: Job) -> None:
        async with semaphore:
            try:
                with log_context(run_id=job.run_id, correlation_id=job.correlation_id):
                    await step(job)
            except StorageError:
                raise  # the disk, not the document: the run stops (resumable)
            except Exception as exc:  # noqa: BLE001 — contained to this document, logged above
                _contained(ctx, job, exc)

    await asyncio.gather(*(one(j) for j in jobs if j.state in states))


def _each_sync(ctx: PipelineContext, jobs: Sequence[Job], state: JobState,
               step: Callable[[PipelineContext, Job], Job]) -> None:
    """`step` for every job of `jobs` in `state`, all committed in one transaction (a commit per
    document transition was most of a small document's stage time); each job in its own savepoint,
    so one that fails unexpectedly leaves none of its writes behind and is failed on its own."""
    with transaction(ctx.db):
        for job in jobs:
            if job.state is state:
                try:
                    with savepoint(ctx.db):
                        step(ctx, job)
                except StorageError:
                    raise
                except Exception as exc:  # noqa: BLE001 — contained to this document
                    _contained(ctx, job, exc)


async def _chunk_each(ctx: PipelineContext, jobs: Sequence[Job]) -> None:
    """The chunk stage of a window's parsed jobs, with documents cut on two worker threads
    (tiktoken releases the GIL) while this thread reads pages and stores chunks in document order;
    at most `_CUTTING` documents' pages and chunks are held at once.

    Finished documents are stored together in one transaction, each in its own savepoint (a
    commit per document was most of a small document's stage time). When the next document's cut
    is not finished, that transaction is committed and the cut is awaited: the event loop then
    serves the embed queue (sending its next requests, storing the vectors that came back)
    instead of standing still for the whole stage. No transaction is ever open across an await,
    so another task's writes, a budget reservation above all, are never held in this stage's."""
    todo = [j for j in jobs if j.state is JobState.PARSED]
    if len(todo) < 2:  # nothing to overlap: no threads
        _each_sync(ctx, todo, JobState.PARSED, stages.chunk)
        return
    cutting: deque[tuple[Job, float, Future[list[Chunk]]]] = deque()
    with ThreadPoolExecutor(max_workers=2, thread_name_prefix="tvdb-chunk") as pool:
        pending = iter(todo)

        def refill() -> None:
            while len(cutting) < _CUTTING and (job := next(pending, None)) is not None:
                try:
                    pages = stages.load_document_pages(ctx, job)
                except StorageError:
                    raise
                except Exception as exc:  # noqa: BLE001 — contained to this document
                    _contained(ctx, job, exc)
                    continue
                cutting.append((job, ctx.clock.monotonic(), pool.submit(stages.cut_chunks, ctx, pages)))

        while True:
            refill()
            if not cutting:
                return
            if not cutting[0][2].done():
                await asyncio.wait([asyncio.wrap_future(cutting[0][2])])
            with transaction(ctx.db):
                while cutting and cutting[0][2].done():
                    job, started, future = cutting.popleft()
                    _store_cut(ctx, job, future, started)
                    refill()  # the cutters work on while this thread stores


def _store_cut(ctx: PipelineContext, job: Job, future: Future[list[Chunk]], started: float) -> None:
    try:
        with savepoint(ctx.db):
            stages.store_chunks(ctx, job, future.result(), started)
    except StorageError:
        raise
    except Exception as exc:  # noqa: BLE001 — contained to this document (its cut's error too)
        _contained(ctx, job, exc)


async def run_pipeline(ctx: PipelineContext) -> list[Job]:
    """Run (or resume) every job of `ctx.run_id` to a final state; returns the jobs as they end.

    Documents go through upload, parse and chunk in windows of `streaming.window_documents`, in
    order; each window's chunks join the embed queue (tvdb.pipeline.embed), which sends the request
    groups that are complete, and the documents whose vectors are all stored are validated and
    stored. So memory holds a window and a request group, whatever the corpus size, and the result
    does not depend on the window. A window's groups embed while the next window is uploaded,
    parsed and chunked (the embedder's threads, or the requests in flight, overlap that work); the
    next window's chunks join the queue only once they are done, so the groups are the same.
    `after_stage` is called after each stage of each window.

    Deferred jobs (budget window full) come back first; if their window is still full they are
    deferred again by the stage that is refused.
    """
    for job in ctx.jobs.jobs(ctx.run_id):
        if job.state is JobState.DEFERRED and job.deferred_from:
            ctx.changed(ctx.jobs.transition(job, JobState(job.deferred_from), detail="resumed after deferral",
                                            deferred_from=None, error_code=None, error_message=None))
    todo = [j.job_id for j in ctx.jobs.jobs(ctx.run_id) if j.state not in FINAL]
    size = ctx.settings.streaming.window_documents
    windows = [todo[i:i + size] for i in range(0, len(todo), size)] or [[]]
    queue = EmbedQueue(ctx)
    embedding: _Embedding | None = None
    try:
        for number, window in enumerate(windows):
            await _front(ctx, window)
            if embedding is not None:
                await _back(ctx, queue, embedding)
            embedding = _start_embedding(ctx, queue, window, final=number == len(windows) - 1)
        assert embedding is not None
        await _back(ctx, queue, embedding)
        # a drain that failed part-way had moved some documents to `embedded` before it raised:
        # they are validated and stored now, so no run finishes with a document left in between
        _validate_and_store(ctx, [j for j in ctx.jobs.jobs(ctx.run_id) if j.state is JobState.EMBEDDED])
    finally:
        if embedding is not None and not embedding.task.done():  # the run stops (Ctrl-C, a full disk)
            embedding.task.cancel()
            await asyncio.gather(embedding.task, return_exceptions=True)
    return ctx.jobs.jobs(ctx.run_id)


async def _front(ctx: PipelineContext, job_ids: list[str]) -> None:
    """Upload, parse and chunk a window's documents."""
    def current() -> list[Job]:
        return ctx.jobs.jobs_by_id(job_ids)

    await _upload(ctx, current())
    ctx.after_stage(Stage.UPLOAD)
    await _each(ctx, current(), {JobState.UPLOADED, JobState.PARSING}, ctx.settings.parse.concurrency,
                lambda j: stages.parse(ctx, j))
    ctx.after_stage(Stage.PARSE)
    await _chunk_each(ctx, current())
    ctx.after_stage(Stage.CHUNK)


async def _upload(ctx: PipelineContext, jobs: list[Job]) -> None:
    """The upload stage of a window: its documents read and stored one after another on one worker
    thread (a hop to a thread and back per file, and a commit per document, were most of a small
    document's upload time while the embedder's threads held the GIL), then their transitions
    committed together, each in its own savepoint."""
    pending = [j for j in jobs if j.state is JobState.PENDING]
    if not pending:
        return

    stop = threading.Event()  # the run stopped (Ctrl-C): the thread ends after the file in hand

    def store_all() -> dict[str, stages.Stored | Exception]:
        out: dict[str, stages.Stored | Exception] = {}
        for job in pending:
            if stop.is_set():
                break
            try:
                out[job.job_id] = stages.store_document(ctx, job)
            except Exception as exc:  # noqa: BLE001 — a bug with one file fails that document (below)
                out[job.job_id] = exc
        return out

    try:
        stored = await asyncio.to_thread(store_all)
    except BaseException:
        stop.set()
        raise

    def record(c: PipelineContext, job: Job) -> Job:
        outcome = stored[job.job_id]
        if isinstance(outcome, Exception) and not isinstance(outcome, TvdbError):
            raise outcome
        return stages.record_upload(c, job, outcome)

    _each_sync(ctx, pending, JobState.PENDING, record)


@dataclass(frozen=True)
class _Embedding:
    """A window's embed stage in progress: its documents and the queue's drain (jobs that left it)."""

    job_ids: list[str]
    task: asyncio.Task[list[Job]]


def _start_embedding(ctx: PipelineContext, queue: EmbedQueue, job_ids: list[str], *, final: bool) -> _Embedding:
    """The window's chunked documents join the queue, and its complete groups start to embed."""
    try:
        queue.add(ctx.jobs.jobs_by_id(job_ids))
    except StorageError:
        raise
    except Exception as exc:  # noqa: BLE001 — a bug while embedding fails those documents, not the run
        for job in queue.abandon():
            _contained(ctx, job, exc)
    return _Embedding(job_ids, asyncio.ensure_future(queue.drain(final=final)))


async def _back(ctx: PipelineContext, queue: EmbedQueue, embedding: _Embedding) -> None:
    """Wait for a window's drain, then validate and store the documents it finished."""
    try:
        embedded = await embedding.task
    except StorageError:
        raise
    except Exception as exc:  # noqa: BLE001 — a bug while embedding fails those documents, not the run
        for job in queue.abandon():
            _contained(ctx, job, exc)
        embedded = []
    ctx.after_stage(Stage.EMBED)
    # this drain's documents (some of earlier windows) and this window's that were embedded already (resumed)
    _validate_and_store(ctx, ctx.jobs.jobs_by_id(list(dict.fromkeys([*(j.job_id for j in embedded),
                                                                      *embedding.job_ids]))))
    ctx.after_stage(Stage.STORE)


def _validate_and_store(ctx: PipelineContext, jobs: list[Job]) -> None:
    """The validate and store stages of `jobs` that are embedded, their spaces read in one
    index-only query."""
    embedded = [j for j in jobs if j.state is JobState.EMBEDDED]
    if not embedded:
        return
    spaces = spaces_by_job(ctx.db, [j.job_id for j in embedded])
    _each_sync(ctx, embedded, JobState.EMBEDDED,
               lambda c, job: stages.validate_and_store(c, job, spaces.get(job.job_id, {})))
