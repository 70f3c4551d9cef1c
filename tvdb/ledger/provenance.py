"""Provenance of a run, read from its usage rows: which implementation served each stage's calls, and why.

Every service call (parse, embed, query) writes its `implementation` and `provenance` (the human
reason the router gave) on its usage row, so the summary is one grouped query and survives resumes.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from tvdb.ledger.usage_store import UsageStore
from tvdb.storage import Database

STAGE_ORDER = {"parse": 0, "embed": 1, "query": 2}


@dataclass(frozen=True, slots=True)
class ProvenanceRow:
    """Calls (usage rows: request attempts) of one stage served by one implementation for one reason."""

    stage: str
    implementation: str
    reason: str
    calls: int
    errors: int

    def as_json(self) -> dict[str, Any]:
        return {"stage": self.stage, "implementation": self.implementation, "reason": self.reason,
                "calls": self.calls, "errors": self.errors}


def run_provenance(db: Database, run_id: str) -> list[ProvenanceRow]:
    """One row per (stage, implementation, reason), in pipeline stage order, then most calls first."""
    rows = [
        ProvenanceRow(stage, impl, reason or "", calls, errors)
        for stage, impl, reason, calls, errors in UsageStore(db).provenance(run_id)
    ]
    return sorted(rows, key=lambda r: (STAGE_ORDER.get(r.stage, 9), r.stage, -r.calls, r.implementation, r.reason))


def count_local_calls(db: Database, run_id: str, stages: Sequence[str]) -> int:
    """Calls of `stages` that ran a local (mock) implementation: in hybrid mode, the fallbacks."""
    if not stages:
        return 0
    return UsageStore(db).local_calls(run_id, stages)
