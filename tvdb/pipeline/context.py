"""Everything a pipeline run needs, built once and passed explicitly (no globals)."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Protocol

from tvdb.clock import Clock
from tvdb.config import Settings
from tvdb.domain import Stage
from tvdb.errors import QuotaExhausted
from tvdb.pipeline.jobs import Job, JobStore
from tvdb.pipeline.objects import ObjectStore
from tvdb.services.calls import ServiceCaller
from tvdb.services.embedding import RatePacer
from tvdb.services.router import ServiceRouter
from tvdb.storage import Database


class ProgressSink(Protocol):
    """Receives job state changes as they happen (the CLI draws them; tests may record them)."""

    def job_changed(self, job: Job) -> None: ...

    def requests_changed(self, stage: str, finished: int, planned: int) -> None:
        """`finished` of the `planned` requests of a stage's batch of work have ended (embed: 3 of 5)."""
        ...


class NullProgress:
    def job_changed(self, job: Job) -> None:
        return None

    def requests_changed(self, stage: str, finished: int, planned: int) -> None:
        return None


@dataclass
class PipelineContext:
    settings: Settings
    db: Database
    clock: Clock
    jobs: JobStore
    objects: ObjectStore
    router: ServiceRouter  # decides per call which implementation serves it (and why)
    run_id: str
    scenario: str
    progress: ProgressSink = field(default_factory=NullProgress)
    # called after each stage finished for every job; the CLI's crash knob hooks in here
    after_stage: Callable[[Stage], None] = lambda stage: None
    _parse_pacer: RatePacer | None = None
    # the LlamaParse quota error that stopped this run's uploads (402: no document is sent after it)
    parse_quota: QuotaExhausted | None = None

    async def pace_parse(self) -> None:
        """Wait until one more upload keeps `limits.llamaparse_requests_per_minute` (one pacer per run)."""
        if self._parse_pacer is None:
            self._parse_pacer = RatePacer(self.settings.limits.llamaparse_requests_per_minute, None, self.clock)
        await self._parse_pacer.acquire(0)

    # False for recording and replay runs (every call is made: recorded, or served from the cassette)
    # and for `tvdb run --fresh` (parse and embed every document even if identical work is stored)
    reuse: bool = True

    _reuse_key: str | None = None

    def reuse_key(self) -> str:
        """`settings_key` of this run, computed once: it reads library versions from the installed
        package metadata, which cost more than a small document's upload when done per document."""
        if self._reuse_key is None:
            self._reuse_key = settings_key(self.settings, self.router)
        return self._reuse_key

    @property
    def caller(self) -> ServiceCaller:
        """The metered call path (budget guard, the one retry policy, usage rows) the router uses."""
        return self.router.caller

    def changed(self, job: Job) -> Job:
        self.progress.job_changed(job)
        return job


def settings_key(settings: Settings, router: ServiceRouter) -> str:
    """The reuse key: same bytes + same key ⇒ identical pages, chunks and vectors.

    It covers everything that changes a stored result: each service's mode and identity (class,
    base URL, library versions; in hybrid mode both implementations'), the parse tier, the chunking,
    the tokenizer, the embedding model and dimensions, and the scenario's faults when it has any (a
    job completed under a `partial` fault lacks the pages it failed: a run without that fault must
    not reuse it; without faults the key is what it was before faults were part of it). It holds
    the mode, not the implementation a call ended up with: a hybrid run reuses only what an earlier
    hybrid run stored, whose vectors say their space. A cache that tvdb adds must key on the same
    material (peers reused results across endpoints: litellm#9844, llama_index#16394).
    """
    from tvdb import catalog

    modes = router.modes
    material = {
        "tier": settings.parse.tier,
        "parser": str(modes["parser"]),
        "parser_identity": router.parser.identity,
        "chunking": settings.chunking.model_dump(),
        "tokenizer": catalog.embedding_model(settings.embedding.model).encoding,
        "model": settings.embedding.model,
        "dimensions": settings.embedding.resolved_dimensions,
        "embedder": str(modes["embedder"]),
        "embedder_identity": router.embedder.identity,
    }
    if router.faults:
        material["faults"] = router.faults
    return hashlib.sha256(json.dumps(material, sort_keys=True).encode()).hexdigest()[:16]

