"""Provenance of a run, read from its usage rows: which implementation served each stage's calls, and why.

Every service call (parse, embed, query) writes its `implementation` and `provenance` (the human
reason the router gave) on its usage row, so the summary is one grouped query and survives resumes.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

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
        ProvenanceRow(str(r[0]), str(r[1]), str(r[2] or ""), int(r[3]), int(r[4]))
        for r in db.execute(
            "SELECT stage, implementation, provenance, COUNT(*), SUM(CASE WHEN status = 'error' THEN 1 ELSE 0 END) "
            "FROM usage WHERE run_id = ? GROUP BY 1, 2, 3", [run_id])
    ]
    return sorted(rows, key=lambda r: (STAGE_ORDER.get(r.stage, 9), r.stage, -r.calls, r.implementation, r.reason))


def count_local_calls(db: Database, run_id: str, stages: Sequence[str]) -> int:
    """Calls of `stages` that ran a local (mock) implementation: in hybrid mode, the fallbacks."""
    if not stages:
        return 0
    marks = ", ".join("?" for _ in stages)
    return int(db.execute(
        f"SELECT COUNT(*) FROM usage WHERE run_id = ? AND implementation = 'mock' AND stage IN ({marks})",
        [run_id, *stages]).fetchone()[0])
