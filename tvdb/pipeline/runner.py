"""Drives every job of a run through the stages, stage by stage, from wherever each job stands.

The same function starts a run and resumes one: a job is picked up in whatever state it was left
(`parsing` re-parses, `embedding` embeds only the chunks without vectors), finished jobs are left
alone. Documents are processed concurrently within a stage; embedding is one batched stage.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable

from tvdb.domain import JobState, Stage
from tvdb.errors import StorageError
from tvdb.logcontext import log_context
from tvdb.pipeline import stages
from tvdb.pipeline.context import PipelineContext
from tvdb.pipeline.embed import embed_stage
from tvdb.pipeline.jobs import FINAL, Job
from tvdb.storage import savepoint, transaction

log = logging.getLogger(__name__)


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


def _each_sync(ctx: PipelineContext, state: JobState, step: Callable[[PipelineContext, Job], Job]) -> None:
    """`step` for every job in `state`, all committed in one transaction (a commit per document
    transition was most of a small document's stage time); each job in its own savepoint, so one
    that fails unexpectedly leaves none of its writes behind and is failed on its own."""
    with transaction(ctx.db):
        for job in ctx.jobs.jobs(ctx.run_id):
            if job.state is state:
                try:
                    with savepoint(ctx.db):
                        step(ctx, job)
                except StorageError:
                    raise
                except Exception as exc:  # noqa: BLE001 — contained to this document
                    _contained(ctx, job, exc)


async def run_pipeline(ctx: PipelineContext) -> list[Job]:
    """Run (or resume) every job of `ctx.run_id` to a final state; returns the jobs as they end.

    Deferred jobs (budget window full) come back first; if their window is still full they are
    deferred again by the stage that is refused.
    """
    for job in ctx.jobs.jobs(ctx.run_id):
        if job.state is JobState.DEFERRED and job.deferred_from:
            ctx.changed(ctx.jobs.transition(job, JobState(job.deferred_from), detail="resumed after deferral",
                                            deferred_from=None, error_code=None, error_message=None))

    def current() -> list[Job]:
        return ctx.jobs.jobs(ctx.run_id)

    # Upload sequentially: it is I/O on local files and keeps object writes simple to reason about.
    await _each(ctx, current(), {JobState.PENDING}, 1, lambda j: stages.upload(ctx, j))
    ctx.after_stage(Stage.UPLOAD)
    await _each(ctx, current(), {JobState.UPLOADED, JobState.PARSING}, ctx.settings.parse.concurrency,
                lambda j: stages.parse(ctx, j))
    ctx.after_stage(Stage.PARSE)
    _each_sync(ctx, JobState.PARSED, stages.chunk)
    ctx.after_stage(Stage.CHUNK)
    waiting = [j for j in current() if j.state in (JobState.CHUNKED, JobState.EMBEDDING)]
    try:
        await embed_stage(ctx, waiting)
    except StorageError:
        raise
    except Exception as exc:  # noqa: BLE001 — a bug while embedding fails those documents, not the run
        for job in waiting:
            _contained(ctx, job, exc)
    ctx.after_stage(Stage.EMBED)
    _each_sync(ctx, JobState.EMBEDDED, stages.validate_and_store)
    ctx.after_stage(Stage.STORE)
    return current()
