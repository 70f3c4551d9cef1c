"""Upper bounds shared by every numeric setting, scenario key, fault, emulator key and CLI option.

Every number tvdb reads has one: past it a value is a typo (1e30 seconds), and unbounded values end
in OverflowError in SQLite (int64), `timedelta` ("date value out of range") or `Event.wait`.
No imports, so the CLI can read these without loading pydantic.
"""

from __future__ import annotations

MAX_COUNT = 1_000_000_000  # requests, tokens per minute, chunks, calls, listed rows: far past any real use
MAX_USD = 1_000_000.0  # budgets and cost expectations: nano-dollars stay far inside int64
MAX_WAIT_S = 3_600.0  # a timeout, a backoff, a retry-after, an injected latency
MAX_LATENCY_MS = MAX_WAIT_S * 1000
MAX_SEED = 2**63 - 1
MAX_PORT = 65_535
