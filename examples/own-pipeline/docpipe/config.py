"""Settings from the environment, read when they are used (never at import)."""

from __future__ import annotations

import os
from dataclasses import dataclass


@dataclass(frozen=True)
class Config:
    tier: str = "fast"  # LlamaParse v2 tier
    embedding_model: str = "text-embedding-3-small"
    dimensions: int = 1536
    chunk_words: int = 80  # words per chunk
    overlap_words: int = 10
    db: str = ":memory:"  # DOCPIPE_DB: a SQLite file, or ":memory:"
    poll_interval_s: float = 1.0  # DOCPIPE_POLL_S: how often the parse job's status is polled

    @classmethod
    def from_env(cls) -> Config:
        return cls(db=os.environ.get("DOCPIPE_DB", ":memory:"),
                   poll_interval_s=float(os.environ.get("DOCPIPE_POLL_S", "1.0")))
