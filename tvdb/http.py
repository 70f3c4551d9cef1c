"""THE one module that imports the HTTP library (`httpx2`, the pydantic fork that openai ≥ 3 runs on).

Everything else imports the names it needs from here, so a switch of HTTP library touches one
file. Never import `httpx` in tvdb: openai 3.x does not use it and mocks built on it see nothing
(contracts.md §0.1).

Importing this module imports httpx2 (~50 ms); the CLI imports it only inside commands.
"""

from __future__ import annotations

import httpx2
from httpx2 import (
    URL,
    AsyncBaseTransport,
    AsyncByteStream,
    AsyncClient,
    AsyncHTTPTransport,
    BaseTransport,
    ByteStream,
    Client,
    ConnectError,
    ConnectTimeout,
    Headers,
    HTTPError,
    HTTPTransport,
    Limits,
    MockTransport,
    NetworkError,
    PoolTimeout,
    ReadError,
    ReadTimeout,
    RemoteProtocolError,
    Request,
    RequestError,
    Response,
    Timeout,
    TimeoutException,
    TransportError,
)

# Our clients ask for gzip only: httpx2 also advertises zstd on Python ≥ 3.14 (or with
# backports.zstd), which vcrpy cannot decode when it records (contracts.md §3.8).
ACCEPT_ENCODING = "gzip"

__version__ = httpx2.__version__

__all__ = [
    "ACCEPT_ENCODING",
    "URL",
    "AsyncBaseTransport",
    "AsyncByteStream",
    "AsyncClient",
    "AsyncHTTPTransport",
    "BaseTransport",
    "ByteStream",
    "Client",
    "ConnectError",
    "ConnectTimeout",
    "HTTPError",
    "HTTPTransport",
    "Headers",
    "Limits",
    "MockTransport",
    "NetworkError",
    "PoolTimeout",
    "ReadError",
    "ReadTimeout",
    "RemoteProtocolError",
    "Request",
    "RequestError",
    "Response",
    "Timeout",
    "TimeoutException",
    "TransportError",
]
