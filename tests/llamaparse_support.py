"""Helpers for the LlamaParse tests: an in-process emulator (both APIs, one fault schedule), the SDK on it."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from tvdb.emulator.config import EmulatorConfig, build_server
from tvdb.emulator.llamaparse import LlamaParseEmulator
from tvdb.emulator.server import EmulatorServer

LLX_KEY = "llx-fake-test-0123456789abcdef"
LLX_CANARY = "llx-canary-5e1d9b3f7a2c4680bb22"


@contextmanager
def parse_emulator(*, faults: list[dict[str, Any]] | None = None, **config: Any) -> Iterator[EmulatorServer]:
    """A started emulator as `tvdb emulate` builds it; fast jobs unless `config` says otherwise."""
    cfg = EmulatorConfig.model_validate({"parse_per_page_ms": 5, "parse_queue_ms": 5, **config,
                                         "faults": faults or []})
    with build_server(cfg) as server:
        yield server


def llamaparse_of(server: EmulatorServer) -> LlamaParseEmulator:
    service = next(s for s in server.services if s.name == "llamaparse")
    assert isinstance(service, LlamaParseEmulator)
    return service


def upload_tuple(path: Path) -> tuple[str, bytes, str]:
    media = {".pdf": "application/pdf", ".html": "text/html", ".md": "text/markdown",
             ".docx": "application/vnd.openxmlformats-officedocument.wordprocessingml.document"}
    return path.name, path.read_bytes(), media.get(path.suffix, "text/plain")
