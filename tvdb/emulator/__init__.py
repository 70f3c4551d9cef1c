"""Wire-exact fakes of the paid APIs, served over loopback HTTP (`tvdb emulate`, and in-process in tests).

- `tvdb.emulator.openai`: `OpenAIEmulator`, `POST /v1/embeddings` (contracts.md §1).
- `tvdb.emulator.llamaparse`: `LlamaParseEmulator`, the Parse API v2 routes (contracts.md §2.3);
  its jobs in `tvdb.emulator.parsejobs`, its signed webhook deliveries in `tvdb.emulator.webhooks`.
- `tvdb.emulator.server`: `EmulatorServer`, the threaded HTTP/1.1 server that mounts services by prefix.
- `tvdb.emulator.config`: `EmulatorConfig` for `tvdb emulate --config FILE` (fault plan, rpm, tpm, latency).
- `tvdb.emulator.bodies`: the real error bodies, shared with the fault transport.
- `tvdb.emulator.inprocess` (and `app()` here): the same services without a socket: ASGI app, transports.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from tvdb.emulator.inprocess import Emulator


def app(**kwargs: Any) -> Emulator:
    """Both emulated services in-process (no socket): an ASGI app with `.transport()` (httpx2) and
    `.httpx_transport()` (httpx) for clients. Keywords: see `tvdb.emulator.inprocess.app`."""
    from tvdb.emulator.inprocess import app as build

    return build(**kwargs)
