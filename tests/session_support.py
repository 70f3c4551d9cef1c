"""Helpers for the tvdb.session tests: an emulator on loopback with both services, and settings that
point the SDKs at it."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from tvdb.emulator.config import EmulatorConfig, build_server
from tvdb.emulator.server import EmulatorServer

OPENAI_KEY = "sk-canary-session-0123456789abcdefghijklmnop"
LLX_KEY = "llx-canary-session-0123456789abcdefghijklmnop"
FAST_POLL: dict[str, Any] = {"polling_interval": 0.02, "max_interval": 0.05, "timeout": 10}


@contextmanager
def emulator(**config: Any) -> Iterator[EmulatorServer]:
    cfg = EmulatorConfig.model_validate({"parse_per_page_ms": 1, "parse_queue_ms": 1, **config})
    with build_server(cfg) as server:
        yield server


def environ(server: EmulatorServer | None = None, *, keys: bool = True, **extra: str) -> dict[str, str]:
    """The environment a session reads: the emulator as both services' base URL, canary keys."""
    env: dict[str, str] = {}
    if server is not None:
        env.update(OPENAI_BASE_URL=server.openai_base_url, LLAMA_CLOUD_BASE_URL=server.llama_cloud_base_url)
    if keys:
        env.update(OPENAI_API_KEY=OPENAI_KEY, LLAMA_CLOUD_API_KEY=LLX_KEY)
    return {**env, **extra}


def upload(path: Path) -> tuple[str, bytes, str]:
    return path.name, path.read_bytes(), "application/pdf" if path.suffix == ".pdf" else "text/plain"
