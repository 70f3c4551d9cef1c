"""Fault injection: one plan format (`faults:` in scenarios, `tvdb emulate --config`), applied everywhere.

- `tvdb.faults.plan`: `Fault`, `FaultPlan`, `FaultSchedule` (pydantic only; the scenario schema uses it).
- `tvdb.faults.wrappers`: `FaultyEmbedder`, `FaultyParser` for local services; the same typed errors.
- `tvdb.faults.transport`: `FaultTransport`, an httpx2 transport wrapper for the real clients
  (imported lazily: it loads httpx2).
- the emulator applies the same plan server-side (`tvdb.emulator`).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from tvdb.faults.plan import Decision, Fault, FaultKind, FaultPlan, FaultSchedule, Service
from tvdb.faults.wrappers import FaultyEmbedder, FaultyParser, corrupt_vectors, fault_error

if TYPE_CHECKING:
    from tvdb.faults.transport import FaultTransport

__all__ = [
    "Decision", "Fault", "FaultKind", "FaultPlan", "FaultSchedule", "FaultTransport", "FaultyEmbedder",
    "FaultyParser", "Service", "corrupt_vectors", "fault_error",
]


def __getattr__(name: str) -> Any:
    if name == "FaultTransport":
        from tvdb.faults.transport import FaultTransport

        return FaultTransport
    raise AttributeError(f"module 'tvdb.faults' has no attribute {name!r}")
