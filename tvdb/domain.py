"""Frozen value types shared by every layer: documents, pages, chunks, embeddings, usage."""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from enum import StrEnum
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import numpy as np
    import numpy.typing as npt


class Mode(StrEnum):
    MOCK = "mock"
    REAL = "real"
    HYBRID = "hybrid"


class Implementation(StrEnum):
    """Which implementation answered a call (its provenance)."""

    REAL = "real"
    MOCK = "mock"
    REPLAY = "replay"

    @property
    def space(self) -> Implementation:
        """The embedding space of the vectors it returns: a replay answers with the real model's vectors."""
        return Implementation.REAL if self is Implementation.REPLAY else self


@dataclass(frozen=True, slots=True, order=True)
class EmbeddingSpace:
    """Where a vector lives: vectors of different spaces are not comparable (a mock vector and a
    real vector of the same text have nothing in common), so search never mixes them."""

    implementation: Implementation
    model: str
    dimensions: int

    @property
    def label(self) -> str:
        """"real/text-embedding-3-small/1536"."""
        return f"{self.implementation}/{self.model}/{self.dimensions}"


class Stage(StrEnum):
    UPLOAD = "upload"
    PARSE = "parse"
    CHUNK = "chunk"
    EMBED = "embed"
    VALIDATE = "validate"
    STORE = "store"


class JobState(StrEnum):
    """States of one document's job. `pending` exists before the upload has stored the bytes."""

    PENDING = "pending"
    UPLOADED = "uploaded"
    PARSING = "parsing"
    PARSED = "parsed"
    CHUNKED = "chunked"
    EMBEDDING = "embedding"
    EMBEDDED = "embedded"
    STORED = "stored"
    COMPLETE = "complete"
    FAILED = "failed"
    DEFERRED = "deferred"


@dataclass(frozen=True, slots=True)
class Page:
    """One page of extracted text; `number` is 1-based."""

    number: int
    text: str


@dataclass(frozen=True, slots=True)
class ParsedDocument:
    """What a parser returns: pages in order, plus non-fatal warnings."""

    pages: tuple[Page, ...]
    media_type: str
    warnings: tuple[str, ...] = ()

    @property
    def text(self) -> str:
        return "\n\n".join(p.text for p in self.pages)


@dataclass(frozen=True, slots=True)
class RetriedRequest:
    """A request inside one call that failed and was then retried: a LlamaParse job's status poll
    (`request` "status") or result fetch ("result"). It gets a usage row of its own (cost 0), as a
    retried call attempt does, though it is not the call (the upload) that is metered."""

    request: str
    job_id: str
    attempt: int  # of this request, 1 = its first try
    error_code: str
    http_status: int | None
    latency_ms: float
    at: dt.datetime
    implementation: Implementation


@dataclass(frozen=True, slots=True)
class ParseRequest:
    """Input of one parse call. `tier` is a LlamaParse v2 tier name. `on_retried`, when set, is told
    of every status or result request the real client retried (the stage writes it to the ledger)."""

    data: bytes
    filename: str
    media_type: str
    tier: str
    on_retried: Callable[[RetriedRequest], None] | None = field(default=None, compare=False, repr=False)


@dataclass(frozen=True, slots=True)
class ParseResult:
    """Output of one parse call; `pages_billed` is what the service charges for."""

    document: ParsedDocument
    pages_billed: int
    request_id: str | None = None
    usage: Mapping[str, Any] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class Chunk:
    """A token window of a document. `pages` are the 1-based pages its text came from."""

    index: int
    text: str
    token_count: int
    pages: tuple[int, ...]


@dataclass(frozen=True, slots=True)
class EmbeddingRequest:
    """Input of one embeddings API request (one ledger row).

    `token_count` is the request's total (the budget reservation's estimate). `input_tokens`, when
    not empty, is each text's cl100k count as the chunker computed it (same length as `texts`),
    so that a local embedder never counts again what is known; empty means "count them yourself"."""

    texts: tuple[str, ...]
    model: str
    dimensions: int
    token_count: int
    input_tokens: tuple[int, ...] = ()


@dataclass(frozen=True, slots=True)
class RateLimits:
    """A provider's rate-limit state as one response's `x-ratelimit-*` headers give it (OpenAI:
    https://platform.openai.com/docs/guides/rate-limits#rate-limits-in-headers). Counts are per minute
    (requests, tokens); `reset_*_s` is seconds until that window is full again. None: not sent."""

    limit_requests: int | None = None
    limit_tokens: int | None = None
    remaining_requests: int | None = None
    remaining_tokens: int | None = None
    reset_requests_s: float | None = None
    reset_tokens_s: float | None = None


@dataclass(frozen=True, slots=True)
class EmbeddingResult:
    """Output of one embeddings request: float32 vectors of shape (n, dimensions).

    `prompt_tokens` is the service's reported usage (tiktoken count for local embedders).
    """

    vectors: npt.NDArray[np.float32]
    prompt_tokens: int
    model: str
    request_id: str | None = None
    usage: Mapping[str, Any] = field(default_factory=dict)
    # answered from a cassette while recording (`--record-mode once | new_episodes`): no money moved
    replayed: bool = False
    # the response's `x-ratelimit-*` headers (real API only): what the in-flight limit follows
    rate_limits: RateLimits | None = None


@dataclass(frozen=True, slots=True)
class PipelineDocument:
    """One document as a scenario's `pipeline:` hook receives it (`def run(doc: tvdb.PipelineDocument)`).

    `path`: the absolute path (a pathlib.Path, not a str) the scenario's `documents:` resolved to ·
    `content`: the file's bytes (read once by tvdb; at most `max_document_mb`) · `correlation_id`: 32
    hex characters, the id every ledger row and log line of this document carries (pass it on to
    your own logs) · `job_id`: the tvdb job (`<run id>-<ordinal>`), which `search:` results may name
    instead of a path."""

    path: Path
    content: bytes
    correlation_id: str
    job_id: str

    @property
    def name(self) -> str:
        """The file name, e.g. `field-guide.pdf`."""
        return self.path.name

    def __repr__(self) -> str:  # the bytes would flood a traceback or a log line
        return (f"PipelineDocument(path={str(self.path)!r}, content=<{len(self.content)} bytes>, "
                f"correlation_id={self.correlation_id!r}, job_id={self.job_id!r})")
