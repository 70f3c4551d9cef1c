"""The embed stage as a queue: chunks of chunked documents wait (as ids and token counts, never
texts) and are sent in request groups planned from a bounded look-ahead, each request's vectors
stored as it returns and then dropped.

    add(window's jobs): chunked → embedding; their chunks without a vector join the queue
    drain(): while the queue holds more than a group, send the group (then, at the end, the rest)
    a job whose chunks all have vectors (or whose request failed) → embedded (or failed)

A group is the longest run of waiting chunks, in document then chunk order, that
`streaming.lookahead_requests` requests could carry (the lower bound of tvdb.services.batching),
so it is fixed by the chunks alone, never by how many documents came in a window: the requests,
their usage rows and the vectors are the same for any `streaming.window_documents`. Within a group
`plan_batches` reaches the group's lower bound; across groups the total is the sum of theirs
(README "Performance at scale"). Texts are read back from the database per group.
A request that fails for good fails the jobs whose chunks it carried; the others go on.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Sequence
from dataclasses import dataclass, field

from tvdb import catalog
from tvdb.domain import EmbeddingResult, Implementation, JobState, Stage
from tvdb.errors import CostLimitExceeded, TvdbError
from tvdb.ledger.guard import CallScope
from tvdb.pipeline.context import PipelineContext
from tvdb.pipeline.jobs import Job
from tvdb.pipeline.stages import fail
from tvdb.pipeline.store import chunk_texts, delete_vectors, insert_vectors, spaces_by_job, waiting_chunks
from tvdb.services.calls import Completed
from tvdb.services.tokenlimit import AccountTokenLimit
from tvdb.storage import transaction
from tvdb.words import counted


@dataclass(frozen=True, slots=True)
class Waiting:
    """A chunk in the queue: what planning needs, without its text."""

    chunk_id: str
    job_id: str
    token_count: int


@dataclass
class EmbedQueue:
    """The run's embed stage across windows (see the module docstring). Not shared between runs."""

    ctx: PipelineContext
    queue: deque[Waiting] = field(default_factory=deque)
    tokens: int = 0  # summed over `queue`
    jobs: dict[str, Job] = field(default_factory=dict)  # in the stage: added, not yet finished
    left: dict[str, int] = field(default_factory=dict)  # per job: chunks still waiting or in flight
    started: dict[str, float] = field(default_factory=dict)  # per job: when it joined (monotonic)
    failed: dict[str, TvdbError] = field(default_factory=dict)  # per job: its first failed request
    stopped: TvdbError | None = None  # an error that dooms every later request: nothing more is sent
    sent_groups: int = 0
    requests: tuple[int, int] = (0, 0)  # finished, planned: over every group so far (progress)
    # the account's tokens-per-minute limit: what one group's answers taught, the next is planned under
    token_limit: AccountTokenLimit = field(init=False)

    def __post_init__(self) -> None:
        self.token_limit = AccountTokenLimit(self.ctx.settings.limits.openai_tokens_per_minute)

    def add(self, jobs: Sequence[Job]) -> None:
        """Jobs that are chunked (or were embedding when the run stopped) join, in the given order."""
        now = self.ctx.clock.monotonic()
        with transaction(self.ctx.db):  # the window's documents move together: one commit
            for job in jobs:
                if job.state is JobState.CHUNKED:
                    job = self.ctx.changed(self.ctx.jobs.transition(job, JobState.EMBEDDING))
                elif job.state is JobState.EMBEDDING:
                    self.ctx.jobs.note(job, "resumed embed")
                else:
                    continue
                waiting = waiting_chunks(self.ctx.db, job.job_id)
                self.jobs[job.job_id], self.left[job.job_id], self.started[job.job_id] = job, len(waiting), now
                self.queue.extend(Waiting(cid, job.job_id, n) for cid, n in waiting)
                self.tokens += sum(n for _, n in waiting)

    async def drain(self, *, final: bool) -> list[Job]:
        """Send every full group (and with `final` the rest); returns the jobs that left the stage."""
        done: list[Job] = []
        idle = [j for j, n in self.left.items() if n <= 0 and j not in self.failed]
        if idle:  # resumed with every vector stored: the one-space check still applies
            await self.split_spaces(idle)
        done += self._finish()
        while group := self._next_group(final):
            await self._send(group)
            done += self._finish()
        return done

    def abandon(self) -> list[Job]:
        """The jobs still in the stage (after a bug in it: the runner fails them `internal`)."""
        out = list(self.jobs.values())
        # everything per job goes: a later window's drain must not meet a job no longer in the stage
        for table in (self.jobs, self.left, self.started, self.failed):
            table.clear()
        self.queue.clear()
        self.tokens = 0
        return out

    def _next_group(self, final: bool) -> list[Waiting]:
        spec = catalog.embedding_model(self.ctx.settings.embedding.model)
        m = self.ctx.settings.streaming.lookahead_requests
        max_inputs, max_tokens = m * spec.max_inputs_per_request, m * spec.max_tokens_per_request
        if len(self.queue) <= max_inputs and self.tokens <= max_tokens:
            if not final:
                return []  # it may still grow: the group is not decided yet
            group = list(self.queue)
        else:
            group, tokens = [], 0
            for chunk in self.queue:
                if len(group) == max_inputs or tokens + chunk.token_count > max_tokens:
                    break
                group.append(chunk)
                tokens += chunk.token_count
            group = group or [self.queue[0]]  # one chunk over a group's tokens: it is sent alone (and refused)
        for _ in group:
            self.tokens -= self.queue.popleft().token_count
        return group

    async def _send(self, group: list[Waiting], *, want: Implementation | None = None, why: str = "") -> None:
        if self.stopped is not None:  # quota, key or budget: the rest is reported without a request
            for chunk in group:
                self._settled(chunk.job_id, self.stopped)
            return
        probe = self.sent_groups == 0
        self.sent_groups += 1
        await _embed(self, group, chunk_texts(self.ctx.db, [c.chunk_id for c in group]),
                     want=want, why=why, probe=probe)

    def _settled(self, job_id: str, error: TvdbError | None = None) -> None:
        if error is not None:
            self.failed.setdefault(job_id, error)
        self.left[job_id] -= 1

    def _finish(self) -> list[Job]:
        """Jobs with nothing left in flight leave the stage: embedded, or failed with their error."""
        ready = [j for j, n in self.left.items() if n <= 0]
        if not ready:
            return []
        ctx = self.ctx
        out: list[Job] = []
        with transaction(ctx.db):
            for job_id in ready:
                job = self.jobs.pop(job_id)
                del self.left[job_id]
                if job_id in self.failed:
                    out.append(fail(ctx, ctx.jobs.job(job_id), self.failed.pop(job_id)))
                    continue
                ms = (ctx.clock.monotonic() - self.started.pop(job_id)) * 1000
                out.append(ctx.changed(ctx.jobs.transition(job, JobState.EMBEDDED, stage_time=(Stage.EMBED, ms))))
        return out

    async def split_spaces(self, job_ids: Sequence[str]) -> None:
        """One document, one space: a fallback in the middle of a document's chunks (or a resume
        after one) leaves it in two spaces; it is then re-embedded locally as a whole (see README)."""
        for job_id, spaces in spaces_by_job(self.ctx.db, [j for j in job_ids if j not in self.failed]).items():
            if len(spaces) <= 1:
                continue
            split = " + ".join(f"{n} {sp.implementation}" for sp, n in sorted(spaces.items()))
            with transaction(self.ctx.db):
                delete_vectors(self.ctx.db, job_id)
            waiting = [Waiting(cid, job_id, n) for cid, n in waiting_chunks(self.ctx.db, job_id)]
            self.left[job_id] += len(waiting)
            await _embed(self, waiting, chunk_texts(self.ctx.db, [c.chunk_id for c in waiting]),
                         want=Implementation.MOCK,
                         why=f"re-embedded locally as a whole: its chunks were in two spaces ({split})", probe=False)


def _request_of(documents: int) -> str:
    return f"the estimated cost of one embedding request covering {counted(documents, 'document')}"


async def _embed(
    queue: EmbedQueue, chunks: Sequence[Waiting], texts: Sequence[str], *, want: Implementation | None, why: str,
    probe: bool,
) -> None:
    """Embed one group, routed per request, storing each request's vectors in the space of the
    implementation that made them; a failed request's jobs get its error. The jobs whose chunks
    all ended then get the one-space check."""
    from tvdb.services.embedding import embed_batches, stops_everything

    ctx = queue.ctx
    if not chunks:
        return
    s = ctx.settings
    before_finished, before_planned = queue.requests

    def scope_for(indices: Sequence[int]) -> CallScope:
        job_ids = tuple(dict.fromkeys(chunks[i].job_id for i in indices))
        correlation = queue.jobs[job_ids[0]].correlation_id if len(job_ids) == 1 else None
        return CallScope(ctx.run_id, ctx.scenario, Stage.EMBED, job_ids, correlation)

    def on_batch(indices: Sequence[int], done: Completed[EmbeddingResult]) -> None:
        done.commit_with(ctx.db, ctx.caller.budget, lambda: insert_vectors(
            ctx.db, [(chunks[i].chunk_id, chunks[i].job_id) for i in indices], done.value.vectors,
            s.embedding.model, done.row.implementation.space))
        for i in indices:
            queue._settled(chunks[i].job_id)

    def on_error(indices: Sequence[int], exc: TvdbError) -> None:
        if isinstance(exc, CostLimitExceeded):  # each document's error quotes the request's cost, not its own
            exc = exc.requested_for(_request_of(len(scope_for(indices).job_ids)))
        if stops_everything(exc) and queue.stopped is None:
            queue.stopped = exc
        for i in indices:
            queue._settled(chunks[i].job_id, exc)

    def on_progress(finished: int, planned: int) -> None:
        queue.requests = (before_finished + finished, before_planned + planned)
        ctx.progress.requests_changed("embed", *queue.requests)

    await embed_batches(
        texts, token_counts=[c.token_count for c in chunks], router=ctx.router,
        settings=s, clock=ctx.clock, scope_for=scope_for, on_batch=on_batch, on_error=on_error, want=want, why=why,
        keep_vectors=False,  # each batch is stored by on_batch: nothing to hold
        on_progress=on_progress, probe=probe, token_limit=queue.token_limit,
    )
    if want is None:
        ended = list(dict.fromkeys(c.job_id for c in chunks if queue.left.get(c.job_id, 1) <= 0))
        await queue.split_spaces(ended)
