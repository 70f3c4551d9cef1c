"""Health probes: one cheap, authenticated, free request per service, cached for a TTL.

    openai       GET {OPENAI_BASE_URL}/models            https://platform.openai.com/docs/api-reference/models/list
    llamaparse   GET {LLAMA_CLOUD_BASE_URL}/api/v2/parse?page_size=1   (lists parse jobs; contracts.md §2.3)

Neither spends money or credits. A probe has a short connect timeout (`router.probe_timeout_s`,
2 s) so an unreachable service is known quickly. 2xx is healthy; so is 429 (reachable, and the
retry policy handles rate limits); anything else — a refused key, 5xx, a timeout — is unhealthy
with a human detail ("connect timeout", "HTTP 503"). When no answer came back, `tried` holds the
URL that was tried (scheme, host, port and path: no user-info, no query), so a wrong base URL can
be seen. The API key is sent only as a header and never appears in a detail.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING

from tvdb.clock import Clock
from tvdb.config import Settings

if TYPE_CHECKING:
    from tvdb.http import AsyncBaseTransport

DEFAULT_LLAMA_CLOUD_BASE_URL = "https://api.cloud.llamaindex.ai"
DEFAULT_OPENAI_BASE_URL = "https://api.openai.com/v1"


@dataclass(frozen=True, slots=True)
class Health:
    """A probe's outcome: `detail` is human ("HTTP 200", "connect timeout"); latency in ms;
    `tried` is the endpoint asked when nothing answered (a reachable service needs no such hint)."""

    healthy: bool
    detail: str
    latency_ms: float | None = None
    tried: str | None = None


Probe = Callable[[], Awaitable[Health]]


async def probe_url(
    url: str, key: str, *, connect_timeout_s: float, clock: Clock, transport: AsyncBaseTransport | None = None,
) -> Health:
    """GET `url` with `Authorization: Bearer <key>`; never raises for network trouble."""
    from tvdb.http import ACCEPT_ENCODING, AsyncClient, ConnectError, Timeout, TimeoutException, TransportError
    from tvdb.redaction import endpoint_url

    tried = endpoint_url(url)
    timeout = Timeout(2 * connect_timeout_s, connect=connect_timeout_s)
    started = clock.monotonic()
    try:
        async with AsyncClient(transport=transport, timeout=timeout, headers={"Accept-Encoding": ACCEPT_ENCODING},
                               trust_env=False) as client:
            response = await client.get(url, headers={"Authorization": f"Bearer {key}"})
    except TimeoutException as exc:
        what = "connect timeout" if "connect" in type(exc).__name__.lower() else "read timeout"
        return Health(False, what, tried=tried)
    except ConnectError:
        return Health(False, "connection refused", tried=tried)
    except TransportError as exc:
        return Health(False, f"connection error ({type(exc).__name__})", tried=tried)
    latency = (clock.monotonic() - started) * 1000
    status = response.status_code
    healthy = 200 <= status < 300 or status == 429
    detail = f"HTTP {status}" + ({401: " (key refused)", 403: " (key refused)"}.get(status, ""))
    return Health(healthy, detail, latency)


def join_url(base: str, path: str, **params: str) -> str:
    """`path` appended to `base`'s path; `base`'s query (a gateway's token) is kept, `params` added."""
    from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

    parts = urlsplit(base)
    query = [*parse_qsl(parts.query, keep_blank_values=True), *params.items()]
    return urlunsplit(parts._replace(path=parts.path.rstrip("/") + path, query=urlencode(query), fragment=""))


def openai_probe(settings: Settings, key: str, clock: Clock, transport: AsyncBaseTransport | None = None) -> Probe:
    url = join_url(settings.openai_base_url or DEFAULT_OPENAI_BASE_URL, "/models")
    return lambda: probe_url(url, key, connect_timeout_s=settings.router.probe_timeout_s, clock=clock,
                             transport=transport)


def llamaparse_probe(settings: Settings, key: str, clock: Clock,
                     transport: AsyncBaseTransport | None = None) -> Probe:
    url = join_url(settings.llama_cloud_base_url or DEFAULT_LLAMA_CLOUD_BASE_URL, "/api/v2/parse", page_size="1")
    return lambda: probe_url(url, key, clock=clock, connect_timeout_s=settings.router.probe_timeout_s,
                             transport=transport)


class HealthCheck:
    """A probe whose result is reused for `ttl_s` seconds (on `clock`); one probe at a time."""

    def __init__(self, probe: Probe, clock: Clock, ttl_s: float) -> None:
        self.probe = probe
        self.clock = clock
        self.ttl_s = ttl_s
        self.last: Health | None = None
        self.probes = 0
        self._at = 0.0
        self._lock = asyncio.Lock()

    async def check(self, *, fresh: bool = False) -> Health:
        """The cached result while it is younger than the TTL; a new probe otherwise (or with `fresh`)."""
        async with self._lock:
            if self.last is None or fresh or self.clock.monotonic() - self._at >= self.ttl_s:
                self.last = await self.probe()
                self.probes += 1
                self._at = self.clock.monotonic()
            return self.last
