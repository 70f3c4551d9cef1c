"""Chooses the implementation of each service for a run, and says why (provenance).

mode (or the per-service override in `services:`) decides: `mock` → the local parser and the
hash embedder; `real` → the real client; `hybrid` → not available yet (the router issue adds
per-call fallback). Scenario faults wrap whichever implementation was chosen.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from tvdb.clock import Clock, SystemClock
from tvdb.config import Settings
from tvdb.domain import Mode
from tvdb.errors import ConfigError
from tvdb.pipeline.context import Services

if TYPE_CHECKING:
    from tvdb.faults.plan import FaultSchedule


def service_mode(settings: Settings, service: str) -> tuple[Mode, str]:
    """The mode `service` (parser | embedder) runs in, and why (its provenance)."""
    override = getattr(settings.services, service)
    if override is not None:
        return Mode(override), f"services.{service}: {override}"
    return settings.mode, f"mode {settings.mode}"


def build_services(settings: Settings, *, faults: FaultSchedule | None = None, clock: Clock | None = None) -> Services:
    """The parser and embedder for `settings`. Raises ConfigError for a combination not available."""
    parser_mode, parser_why = service_mode(settings, "parser")
    embedder_mode, embedder_why = service_mode(settings, "embedder")
    for mode in (parser_mode, embedder_mode):
        if mode is Mode.HYBRID:
            raise ConfigError(
                "hybrid mode is not available yet; use mode: mock, or mode: real with services.parser: mock"
            )
    if parser_mode is Mode.REAL:
        raise ConfigError(
            "real parsing with LlamaParse is not available yet; keep the parser local with "
            "`services: {parser: mock}` in the scenario (or TVDB_SERVICES_PARSER=mock)"
        )
    from tvdb.services.local.embedder import HashEmbedder
    from tvdb.services.local.parser import LocalParser

    parser: Any = LocalParser()
    closers = []
    if embedder_mode is Mode.REAL:
        from tvdb.services.remote.openai_embedder import build_openai_embedder

        embedder: Any = build_openai_embedder(settings, faults=faults)
        closers.append(embedder.aclose)
        embedder_why += f" (OpenAI API at {embedder.shown_url})"
    else:
        embedder = HashEmbedder()
    if faults is not None:
        from tvdb.faults.wrappers import FaultyEmbedder, FaultyParser

        sleep = (clock or SystemClock()).sleep
        parser = FaultyParser(parser, faults, sleep=sleep,
                              max_page_failure_ratio=settings.parse.max_page_failure_ratio)
        if embedder_mode is not Mode.REAL:  # the real client gets them as an HTTP transport wrapper
            embedder = FaultyEmbedder(embedder, faults, sleep=sleep)
    return Services(parser, embedder, f"{parser.implementation}: {parser_why}",
                    f"{embedder.implementation}: {embedder_why}", tuple(closers))
