"""`tvdb emulate --config FILE`: the emulator's settings as YAML, faults in the scenarios' format.

    rpm: 3000            # requests per minute (sliding 60 s window); omit for no limit
    tpm: 1000000         # tokens per minute
    latency_ms: 150      # added to every response
    gzip: false          # gzip bodies for clients that accept it (the real API does)
    memo_entries: 0      # remember this many texts' counts and vectors (0: off; see tvdb.emulator.memo)
    seed: 0              # RNG seed for `rate` faults
    parse_per_page_ms: 50     # LlamaParse: processing time per page
    parse_queue_ms: 50        # LlamaParse: time a job stays PENDING
    parse_credits: null       # LlamaParse: the account's credits (402 once spent; null: unlimited)
    parse_uploads_per_10s: null  # LlamaParse: uploads per 10 s before a 429 (the real limit is 50)
    parse_retry_after: true   # LlamaParse: send `retry-after` with that 429
    faults:              # same format as a scenario's `faults:` (tvdb.faults.plan)
      - {service: openai, kind: status, status: 429, retry_after: 1, nth: 1}

Command-line flags override the file's values.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

from pydantic import Field, ValidationError

from tvdb.bounds import MAX_COUNT, MAX_LATENCY_MS, MAX_SEED
from tvdb.errors import ConfigError
from tvdb.faults.plan import Fault, FaultPlan
from tvdb.validation import StrictModel

if TYPE_CHECKING:
    from tvdb.emulator.server import EmulatorServer

MAX_MEMO_ENTRIES = 10_000_000  # texts whose counts and vectors are kept in memory


class EmulatorConfig(StrictModel):
    """Every number bounded (the same bounds as the flags): a typo is an error naming file, line and key."""

    rpm: int | None = Field(None, ge=1, le=MAX_COUNT)
    tpm: int | None = Field(None, ge=1, le=MAX_COUNT)
    latency_ms: float = Field(0.0, ge=0, le=MAX_LATENCY_MS)
    gzip: bool = False
    memo_entries: int = Field(0, ge=0, le=MAX_MEMO_ENTRIES)
    seed: int = Field(0, ge=0, le=MAX_SEED)
    parse_per_page_ms: float = Field(50.0, ge=0, le=MAX_LATENCY_MS)
    parse_queue_ms: float = Field(50.0, ge=0, le=MAX_LATENCY_MS)
    parse_credits: float | None = Field(None, ge=0, le=MAX_COUNT)
    parse_uploads_per_10s: int | None = Field(None, ge=1, le=MAX_COUNT)
    parse_retry_after: bool = True
    faults: list[Fault] = []

    @property
    def fault_plan(self) -> FaultPlan:
        return FaultPlan(faults=self.faults, seed=self.seed)


def load_emulator_config(path: Path) -> EmulatorConfig:
    """Read and validate `path`; raises ConfigError naming the file, the line and the key."""
    from tvdb.config import read_config_file
    from tvdb.validation import all_errors, describe, dotted

    doc = read_config_file(path, "emulator config")
    try:
        return EmulatorConfig.model_validate(doc.data)
    except ValidationError:
        # every problem in one pass, in file order, so the file is fixed in one go
        found = sorted(((doc.line_of(tuple(err["loc"])), dotted(err["loc"]), describe(err, EmulatorConfig))
                        for err in all_errors(EmulatorConfig, doc.data)), key=lambda f: f[0] or 0)
        lines = [f"{path}:{line}: {key}: {message}" for line, key, message in found]
        raise ConfigError("\n".join(lines) + (f"\n({len(lines)} problems)" if len(lines) > 1 else "")) from None


def build_server(
    config: EmulatorConfig, *, host: str = "127.0.0.1", port: int = 0,
    clock: Callable[[], float] = time.monotonic,
) -> EmulatorServer:
    """An (unstarted) server: OpenAI at /v1 and LlamaParse at /api, one fault schedule for both."""
    from tvdb.emulator.llamaparse import LlamaParseEmulator
    from tvdb.emulator.openai import OpenAIEmulator
    from tvdb.emulator.server import EmulatorServer

    schedule = config.fault_plan.schedule()
    openai = OpenAIEmulator(rpm=config.rpm, tpm=config.tpm, latency_s=config.latency_ms / 1000,
                            faults=schedule, clock=clock, memo_entries=config.memo_entries)
    llamaparse = LlamaParseEmulator(
        per_page_s=config.parse_per_page_ms / 1000, queue_s=config.parse_queue_ms / 1000,
        latency_s=config.latency_ms / 1000, credits_limit=config.parse_credits,
        uploads_per_window=config.parse_uploads_per_10s, send_retry_after=config.parse_retry_after,
        faults=schedule, clock=clock,
    )
    server = EmulatorServer([openai, llamaparse], host=host, port=port, gzip_responses=config.gzip)
    from tvdb.emulator.webhooks import WebhookDispatcher

    llamaparse.on_job = WebhookDispatcher(llamaparse, server.stopping).start_job
    return server
