"""The terminal summary line, added up from the test reports (so it also counts pytest-xdist workers'
items: their reports reach the controller with `user_properties`).

Each scenario item records `tvdb_mode`, `tvdb_spent_usd`, `tvdb_avoided_usd`; each fixture session
`tvdb_session_spent_usd`, `tvdb_session_avoided_usd`. Dollars avoided = what the mock and replayed
calls would have cost at live prices (would-cost − real spend); "unknown" when a price was unknown.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from typing import Any

SCENARIO_KEYS = ("tvdb_mode", "tvdb_spent_usd", "tvdb_avoided_usd")
UNKNOWN = "unknown"


def avoided(would_cost: float | None, spent: float | None) -> float | None:
    if would_cost is None or spent is None:
        return None
    return round(max(would_cost - spent, 0.0), 9)


def money_properties(prefix: str, spent: float | None, would_cost: float | None) -> list[tuple[str, object]]:
    return [(f"{prefix}_spent_usd", UNKNOWN if spent is None else spent),
            (f"{prefix}_avoided_usd", UNKNOWN if (a := avoided(would_cost, spent)) is None else a)]


@dataclass
class Tally:
    modes: Counter[str] = field(default_factory=Counter)
    sessions: int = 0
    spent: float = 0.0
    avoided: float = 0.0
    spent_unknown: bool = False
    avoided_unknown: bool = False

    def add_report(self, properties: list[tuple[str, Any]]) -> None:
        """One teardown report's `user_properties` (they hold everything the test recorded)."""
        for key, value in properties:
            if key == "tvdb_mode":
                self.modes[str(value)] += 1
            elif key == "tvdb_session_spent_usd":
                self.sessions += 1
            if key in ("tvdb_spent_usd", "tvdb_session_spent_usd"):
                if value == UNKNOWN:
                    self.spent_unknown = True
                else:
                    self.spent += float(value)
            elif key in ("tvdb_avoided_usd", "tvdb_session_avoided_usd"):
                if value == UNKNOWN:
                    self.avoided_unknown = True
                else:
                    self.avoided += float(value)

    def line(self) -> str | None:
        """`tvdb: 12 scenarios (9 replayed, 3 mock), 2 sessions; real spend $0, dollars avoided $0.0123`,
        or None when no tvdb item or session ran."""
        from tvdb.money import format_usd

        scenarios = sum(self.modes.values())
        if not scenarios and not self.sessions:
            return None
        words = {"replay": "replayed", "mock": "mock", "real": "real", "hybrid": "hybrid", "record": "recorded",
                 "skipped": "skipped"}
        parts = [f"{self.modes[m]} {words[m]}" for m in words if self.modes[m]]
        head = [f"{scenarios} scenario{'s' * (scenarios != 1)}" + (f" ({', '.join(parts)})" if parts else "")]
        if self.sessions:
            head.append(f"{self.sessions} session{'s' * (self.sessions != 1)}")
        spent = UNKNOWN if self.spent_unknown else format_usd(round(self.spent, 9))
        saved = UNKNOWN if self.avoided_unknown else format_usd(round(self.avoided, 9))
        return f"tvdb: {', '.join(head)}; real spend {spent}, dollars avoided {saved}"
