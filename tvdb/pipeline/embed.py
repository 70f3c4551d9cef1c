"""The embed stage: every chunk of every document still waiting, packed across documents into the
fewest API requests the limits allow, each request's vectors stored as it returns.

chunked → embedding (all waiting jobs) → requests → embedded (jobs whose chunks all have vectors).
A request that fails for good fails the jobs whose chunks it carried; the others go on.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from tvdb.domain import EmbeddingResult, Implementation, JobState, Stage
from tvdb.errors import TvdbError
from tvdb.ledger.guard import CallScope
from tvdb.pipeline.context import PipelineContext
from tvdb.pipeline.jobs import Job
from tvdb.pipeline.stages import fail
from tvdb.pipeline.store import chunks_without_vectors, delete_vectors, insert_vectors, spaces_by_job
from tvdb.services.calls import Completed
from tvdb.storage import transaction


@dataclass(frozen=True, slots=True)
class PendingChunk:
    chunk_id: str
    job_id: str
    text: str
    token_count: int


def pending_chunks(ctx: PipelineContext, job_ids: Sequence[str]) -> list[PendingChunk]:
    """Chunks of `job_ids` that have no vector yet, in job then chunk order."""
    return [PendingChunk(*row) for row in chunks_without_vectors(ctx.db, job_ids)]


async def embed_stage(ctx: PipelineContext, jobs: Sequence[Job]) -> list[Job]:
    """Embed all chunked/embedding jobs; returns the jobs in their new states."""
    start = ctx.clock.monotonic()
    waiting: dict[str, Job] = {}
    with transaction(ctx.db):  # the stage's documents move together: one commit, not one per job
        for job in jobs:
            if job.state is JobState.CHUNKED:
                job = ctx.changed(ctx.jobs.transition(job, JobState.EMBEDDING))
            elif job.state is JobState.EMBEDDING:
                ctx.jobs.note(job, "resumed embed")
            else:
                continue
            waiting[job.job_id] = job
    failed: dict[str, TvdbError] = {}
    await _embed(ctx, pending_chunks(ctx, list(waiting)), waiting, failed)
    # One document, one space: a fallback in the middle of a document's chunks (or a resume after
    # one) leaves it in two spaces; it is then re-embedded locally as a whole (see README).
    for job_id, spaces in spaces_by_job(ctx.db, [j for j in waiting if j not in failed]).items():
        if len(spaces) > 1:
            split = " + ".join(f"{n} {sp.implementation}" for sp, n in sorted(spaces.items()))
            with transaction(ctx.db):
                delete_vectors(ctx.db, job_id)
            await _embed(ctx, pending_chunks(ctx, [job_id]), waiting, failed, want=Implementation.MOCK,
                         why=f"re-embedded locally as a whole: its chunks were in two spaces ({split})")
    elapsed = (ctx.clock.monotonic() - start) * 1000
    out: list[Job] = []
    with transaction(ctx.db):
        for job_id, job in waiting.items():
            if job_id in failed:
                out.append(fail(ctx, ctx.jobs.job(job_id), failed[job_id]))
                continue
            ctx.jobs.add_stage_time(job, Stage.EMBED, elapsed)
            out.append(ctx.changed(ctx.jobs.transition(job, JobState.EMBEDDED)))
    return out


async def _embed(
    ctx: PipelineContext, chunks: Sequence[PendingChunk], waiting: dict[str, Job], failed: dict[str, TvdbError],
    *, want: Implementation | None = None, why: str = "",
) -> None:
    """Embed `chunks`, routed per request, storing each request's vectors in the space of the
    implementation that made them; the first error of each job a failed request carried goes to `failed`."""
    from tvdb.services.embedding import embed_batches

    if not chunks:
        return
    s = ctx.settings

    def scope_for(indices: Sequence[int]) -> CallScope:
        job_ids = tuple(dict.fromkeys(chunks[i].job_id for i in indices))
        correlation = waiting[job_ids[0]].correlation_id if len(job_ids) == 1 else None
        return CallScope(ctx.run_id, ctx.scenario, Stage.EMBED, job_ids, correlation)

    def on_batch(indices: Sequence[int], done: Completed[EmbeddingResult]) -> None:
        done.commit_with(ctx.db, ctx.caller.budget, lambda: insert_vectors(
            ctx.db, [(chunks[i].chunk_id, chunks[i].job_id) for i in indices], done.value.vectors,
            s.embedding.model, done.row.implementation.space))

    def on_error(indices: Sequence[int], exc: TvdbError) -> None:
        for i in indices:
            failed.setdefault(chunks[i].job_id, exc)

    await embed_batches(
        [c.text for c in chunks], token_counts=[c.token_count for c in chunks], router=ctx.router,
        settings=s, clock=ctx.clock, scope_for=scope_for, on_batch=on_batch, on_error=on_error, want=want, why=why,
        keep_vectors=False,  # each batch is stored by on_batch: nothing to hold for the whole corpus
        on_progress=lambda finished, planned: ctx.progress.requests_changed("embed", finished, planned),
    )
