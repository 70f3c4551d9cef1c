"""The provider's view for budget proofs: an emulated OpenAI that keeps a bill.

`BillingEmulator` wraps `OpenAIEmulator` and bills every request it answers 200 (processed), at the
tokens of its inputs and the live price, whether or not the client ever reads the answer: a client
that timed out, a body that arrives malformed, a process killed while waiting. That is the figure
the ledger must never fall below, and the daily budget must never be exceeded by.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import sqlite_utils

from tvdb.emulator.base import EmulatorRequest, Reply
from tvdb.emulator.openai import OpenAIEmulator
from tvdb.emulator.server import EmulatorServer
from tvdb.faults.plan import FaultPlan
from tvdb.tokens import count_tokens

NUSD_PER_TOKEN = 20  # text-embedding-3-small: $0.02 per 1M tokens


class BillingEmulator:
    prefix = "/v1"
    name = "openai"

    def __init__(self, inner: OpenAIEmulator) -> None:
        self.inner = inner
        self._lock = threading.Lock()
        self.billed_tokens = 0
        self.billed_requests = 0

    def handle(self, request: EmulatorRequest) -> Reply:
        reply = self.inner.handle(request)
        if reply.action == "respond" and reply.status == 200:
            texts = json.loads(request.body)["input"]
            tokens = sum(count_tokens(list(texts), "cl100k_base"))
            with self._lock:
                self.billed_tokens += tokens
                self.billed_requests += 1
        return reply

    @property
    def billed_nusd(self) -> int:
        with self._lock:
            return self.billed_tokens * NUSD_PER_TOKEN


@contextmanager
def billing_emulator(*, faults: list[dict[str, Any]] | None = None,
                     **kwargs: Any) -> Iterator[tuple[EmulatorServer, BillingEmulator]]:
    billing = BillingEmulator(OpenAIEmulator(faults=FaultPlan.of(faults), **kwargs))
    with EmulatorServer([billing]) as server:
        yield server, billing


def ledger_spent_nusd(db: sqlite_utils.Database) -> tuple[int, int]:
    """(real spend, of which assumed) over the whole ledger, rows and daily aggregates."""
    from tvdb.ledger.windows import assumed_spend_nusd, real_spend_nusd

    return real_spend_nusd(db), assumed_spend_nusd(db)
