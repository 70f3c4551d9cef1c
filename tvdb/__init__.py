"""tvdb: a test harness for document-ingestion pipelines that pay for external APIs.

The public API (stable names; see README "Test your own pipeline"):

    tvdb.session(...)      tvdb's modes, budgets, ledger, faults and cassettes around your own code
                           (tvdb.sessions.api.session; returns a `Session`)
    tvdb.Ledger            the cost ledger: budgets, reserve/settle, reports (tvdb.ledger_api)
    tvdb.ServiceRouter     picks mock/real per call, with provenance (tvdb.services.router)
    tvdb.FaultPlan         a fault plan, the scenario `faults:` format (tvdb.faults.plan)
    tvdb.LocalParser       the local parser: PDF, DOCX, HTML, text (tvdb.services.local.parser)
    tvdb.HashEmbedder      deterministic, L2-normalised local embeddings (tvdb.services.local.embedder)
    tvdb.emulator          wire-exact OpenAI/LlamaParse fakes; `tvdb.emulator.app()` in-process
    tvdb.PipelineDocument  what a scenario's `pipeline:` hook receives per document (tvdb.domain)

`import tvdb` does no I/O and imports no SDK: every name is imported on first use.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

__version__ = "0.1.0"

if TYPE_CHECKING:
    from tvdb import emulator
    from tvdb.domain import PipelineDocument
    from tvdb.faults.plan import FaultPlan
    from tvdb.ledger_api import Ledger
    from tvdb.services.local.embedder import HashEmbedder
    from tvdb.services.local.parser import LocalParser
    from tvdb.services.router import ServiceRouter
    from tvdb.sessions.api import Session, session
    from tvdb.sessions.summary import CallSummary, ExpectationFailed, SessionSummary

_LAZY = {
    "session": ("tvdb.sessions.api", "session"),
    "Session": ("tvdb.sessions.api", "Session"),
    "SessionSummary": ("tvdb.sessions.summary", "SessionSummary"),
    "CallSummary": ("tvdb.sessions.summary", "CallSummary"),
    "ExpectationFailed": ("tvdb.sessions.summary", "ExpectationFailed"),
    "Ledger": ("tvdb.ledger_api", "Ledger"),
    "ServiceRouter": ("tvdb.services.router", "ServiceRouter"),
    "FaultPlan": ("tvdb.faults.plan", "FaultPlan"),
    "LocalParser": ("tvdb.services.local.parser", "LocalParser"),
    "HashEmbedder": ("tvdb.services.local.embedder", "HashEmbedder"),
    "emulator": ("tvdb.emulator", None),
    "PipelineDocument": ("tvdb.domain", "PipelineDocument"),
}

__all__ = ["CallSummary", "ExpectationFailed", "FaultPlan", "HashEmbedder", "Ledger", "LocalParser",
           "PipelineDocument", "ServiceRouter", "Session", "SessionSummary", "emulator", "session"]


def __getattr__(name: str) -> Any:
    try:
        module, attr = _LAZY[name]
    except KeyError:
        raise AttributeError(f"module 'tvdb' has no attribute {name!r}") from None
    value = importlib.import_module(module)
    return value if attr is None else getattr(value, attr)


def __dir__() -> list[str]:
    return sorted([*globals(), *__all__])
