"""The session's ServiceRouter: the same router tvdb's own runs use, over two stand-ins per service.

A session does not call Parser/Embedder objects: it sends the user's HTTP request itself. So each lane's
`local` and `real` implementations are `Marker`s that only say which implementation the router
picked (`mock`, `real`, or `replay` under a replayed cassette); the breaker, `real_until_pct`, the
budget fallbacks and provenance reasons are the router's own (tvdb.services.router).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from tvdb.clock import Clock
from tvdb.config import Settings
from tvdb.domain import EmbeddingRequest, EmbeddingResult, Implementation, Mode, ParseRequest, ParseResult
from tvdb.redaction import redact_url
from tvdb.services.breaker import CircuitBreaker
from tvdb.services.calls import ServiceCaller
from tvdb.services.factory import _daily_share
from tvdb.services.modes import ROLE_INFO, Role, service_mode
from tvdb.services.router import Lane, ServiceRouter
from tvdb.sessions.routes import LLAMA_CLOUD_DEFAULT, OPENAI_DEFAULT


@dataclass(frozen=True, slots=True)
class Marker:
    """Which implementation answers a request; never called (the session sends HTTP itself)."""

    service: str
    implementation: Implementation

    @property
    def identity(self) -> str:
        return f"session:{self.service}:{self.implementation}"

    async def parse(self, request: ParseRequest) -> ParseResult:
        raise NotImplementedError("a session forwards HTTP requests; it never parses through a marker")

    async def embed(self, request: EmbeddingRequest) -> EmbeddingResult:
        raise NotImplementedError("a session forwards HTTP requests; it never embeds through a marker")


def build_router(settings: Settings, caller: ServiceCaller, clock: Clock, *, replay: bool) -> ServiceRouter:
    """Lanes in each service's mode (settings layering, `services:` overrides), no health probes (a
    failed request is its own probe: it falls back and counts toward the breaker)."""

    def lane(role: Role) -> Lane[Any]:
        info = ROLE_INFO[role]
        mode, why = service_mode(settings, role)
        local = Marker(info.service, Implementation.MOCK)
        real = None if mode is Mode.MOCK else Marker(
            info.service, Implementation.REPLAY if replay else Implementation.REAL)
        breaker = CircuitBreaker(info.service, failure_threshold=settings.router.failure_threshold,
                                 cooldown_s=settings.router.cooldown_s, clock=clock)
        base = (settings.openai_base_url or OPENAI_DEFAULT) if role == "embedder" else (
            settings.llama_cloud_base_url or LLAMA_CLOUD_DEFAULT)
        name = "OpenAI API" if role == "embedder" else "LlamaParse"
        where = " (answered from the cassette)" if replay else f" ({name} at {redact_url(base)})"
        return Lane(role, mode, why, local, real, breaker, None, None, where)

    return ServiceRouter(caller, lane("parser"), lane("embedder"), real_until_pct=settings.hybrid.real_until_pct,
                         daily_share=_daily_share(caller))
