"""An account whose tokens-per-minute limit is below one request: a 429 names that limit in its own
`x-ratelimit-*` headers, so the first answer can teach it."""

from __future__ import annotations

import pytest

from tests.openai_support import KEY, emulator, settings_for, text_of_tokens
from tvdb.domain import EmbeddingRequest, RateLimits
from tvdb.errors import PermanentServiceError, RateLimitExceeded
from tvdb.services.remote.openai_embedder import build_openai_embedder
from tvdb.services.remote.status import error_for_status


def test_a_429_carries_its_rate_limit_headers() -> None:
    limits = RateLimits(limit_tokens=150_000, remaining_tokens=0)
    exc = error_for_status("openai", 429, message="Request too large", code="rate_limit_exceeded", type="tokens",
                           rate_limits=limits)
    assert isinstance(exc, RateLimitExceeded) and exc.rate_limits == limits
    refused = error_for_status("openai", 400, message="bad", rate_limits=limits)
    assert isinstance(refused, PermanentServiceError)


async def test_the_real_client_reads_the_headers_of_a_429() -> None:
    with emulator(tpm=5) as server:
        embedder = build_openai_embedder(settings_for(server, key=KEY))
        try:
            with pytest.raises(RateLimitExceeded) as caught:
                await embedder.embed(EmbeddingRequest((text_of_tokens(6),), "text-embedding-3-small", 1536, 6, (6,)))
        finally:
            await embedder.aclose()
    assert caught.value.rate_limits is not None and caught.value.rate_limits.limit_tokens == 5
