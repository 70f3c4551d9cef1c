"""Helpers for the OpenAI tests: an in-process emulator, settings pointing at it, a metered caller."""

from __future__ import annotations

import random
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import sqlite_utils

from tvdb.clock import FakeClock
from tvdb.config import RetrySettings, Settings
from tvdb.db import open_db
from tvdb.emulator.openai import OpenAIEmulator
from tvdb.emulator.server import EmulatorServer
from tvdb.faults.plan import FaultPlan
from tvdb.ledger.prices import PriceTable
from tvdb.services.calls import ServiceCaller
from tvdb.services.retry import ServiceRetryPolicy

KEY = "sk-fake-test-0123456789abcdef"
CANARY = "sk-canary-7f3a9c1e5b2d8046aa11"
MODEL = "text-embedding-3-small"


@contextmanager
def emulator(*, faults: list[dict[str, Any]] | None = None, **kwargs: Any) -> Iterator[EmulatorServer]:
    """A started in-process emulator (OpenAI at /v1) with `faults` applied server-side."""
    gzip = kwargs.pop("gzip_responses", False)
    service = OpenAIEmulator(faults=FaultPlan.of(faults), **kwargs)
    with EmulatorServer([service], gzip_responses=gzip) as server:
        yield server


def settings_for(server: EmulatorServer | None, *, key: str = KEY, **overrides: Any) -> Settings:
    data: dict[str, Any] = {"openai_api_key": key, "mode": "real", **overrides}
    if server is not None:
        data["openai_base_url"] = server.openai_base_url
    return Settings.model_validate(data)


def metered_caller(tmp_path: Path, clock: FakeClock, *, max_attempts: int = 5,
                   max_retry_after_s: float = 120.0) -> ServiceCaller:
    retry = ServiceRetryPolicy(
        RetrySettings(max_attempts=max_attempts, max_retry_after_s=max_retry_after_s),
        sleep=clock.sleep, rng=random.Random(0),
    )
    return ServiceCaller(db=open_db(tmp_path / "ledger.db"), prices=PriceTable.load(), clock=clock, retry=retry)


def usage_rows(db: sqlite_utils.Database) -> list[dict[str, Any]]:
    return list(db.query("SELECT * FROM usage ORDER BY id"))


def text_of_tokens(n: int) -> str:
    """A text of exactly `n` cl100k tokens ("hello" then " hello" repeated: one token each)."""
    return "hello" + " hello" * (n - 1)
