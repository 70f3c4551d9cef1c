"""The two service ports. Mock, real and replay implementations satisfy them structurally."""

from __future__ import annotations

from typing import Protocol

from tvdb.domain import EmbeddingRequest, EmbeddingResult, Implementation, ParseRequest, ParseResult


class Parser(Protocol):
    """Turns a document's bytes into pages of text (LlamaParse or `LocalParser`).

    Raises DocumentError for a document that cannot be parsed (its job fails with the code),
    ServiceError subclasses for service failures.
    """

    service: str  # ledger name of the service it stands for: "llamaparse"
    implementation: Implementation
    @property
    def identity(self) -> str:
        """Everything about the implementation that changes its results (class, endpoint, library
        versions): part of the reuse key, so stored results are only reused from the same source."""
        ...

    async def parse(self, request: ParseRequest) -> ParseResult: ...


class Embedder(Protocol):
    """Embeds one request's texts (one API request, one ledger row).

    Returns float32 vectors of shape (len(request.texts), request.dimensions).
    Raises ServiceError subclasses on failure. Batching happens before this call
    (see tvdb.services.batching), so one call is always one request.
    """

    service: str  # "openai"
    implementation: Implementation
    @property
    def identity(self) -> str:
        """As for `Parser.identity`."""
        ...

    async def embed(self, request: EmbeddingRequest) -> EmbeddingResult: ...
