"""Transport-free request/reply types shared by the emulated services and the HTTP server.

An emulated service (OpenAI now, LlamaParse later) is a pure function of a request to a `Reply`;
the server owns sockets, latency and disconnects. Services are mounted by path prefix.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Literal, Protocol

Action = Literal["respond", "disconnect", "hang"]


@dataclass(frozen=True, slots=True)
class EmulatorRequest:
    """One HTTP request; header names are lower-case."""

    method: str
    path: str
    headers: Mapping[str, str]
    body: bytes
    query: str = ""


@dataclass(frozen=True, slots=True)
class Reply:
    """What to do with a request: wait `delay_s`, then respond, drop the connection, or hang until the
    client gives up (`hang`: no response for `delay_s` seconds, then the connection is closed)."""

    status: int = 200
    headers: Mapping[str, str] = field(default_factory=dict)
    body: bytes = b""
    delay_s: float = 0.0
    action: Action = "respond"


class EmulatedService(Protocol):
    """A wire-exact fake mounted at `prefix` (e.g. "/v1" for OpenAI). Must be thread-safe."""

    prefix: str
    name: str

    def handle(self, request: EmulatorRequest) -> Reply: ...
