"""`OpenAIEmbedder`: the real `Embedder`, on the official SDK (`AsyncOpenAI`, httpx2, `max_retries=0`).

One `embed` call is exactly one `POST {base_url}/embeddings`
(https://platform.openai.com/docs/api-reference/embeddings/create), sent with the SDK's `post`.
The SDK's retries are off so that tvdb's one retry policy (tvdb.services.retry) sees, times and
records every attempt. Vectors are requested as base64 (little-endian float32, contracts.md §1.4)
and decoded with numpy; a base64 *string* is never handed on as a vector (CASES C01).

Errors (tvdb.services.remote.status): 429 rate_limit_exceeded → RateLimitExceeded(retry_after, rate_limits);
429 insufficient_quota / 402 → QuotaExhausted; 5xx and connection errors → ServiceUnavailableError;
timeouts → ServiceTimeoutError; an unreadable body or the wrong number of vectors →
MalformedResponseError; timeouts and lost connections after sending and unreadable 200s are
`maybe_billed` (their estimate counts as spent); other 4xx (bad request, bad key,
model_not_found) → PermanentServiceError.
Every error carries status, provider code and request id, and never the API key.
"""

from __future__ import annotations

import json
import logging
from dataclasses import replace
from typing import TYPE_CHECKING, Any

from tvdb import catalog
from tvdb.domain import EmbeddingRequest, EmbeddingResult, Implementation
from tvdb.errors import (
    ConfigError,
    MalformedResponseError,
    PermanentServiceError,
    ServiceError,
    ServiceTimeoutError,
    ServiceUnavailableError,
)
from tvdb.redaction import redact, redact_url
from tvdb.services.remote.status import error_for_status, parse_rate_limits, parse_retry_after

if TYPE_CHECKING:
    import numpy as np
    import numpy.typing as npt
    from openai import AsyncOpenAI

    from tvdb.config import Settings
    from tvdb.faults.plan import FaultPlan, FaultSchedule
    from tvdb.http import AsyncBaseTransport, AsyncClient

SERVICE = "openai"
DEFAULT_BASE_URL = "https://api.openai.com/v1"
REPLAY_KEY = "sk-fake-replay-needs-no-key"
# set by tvdb.recording on responses it plays from a cassette (never stored, never sent)
REPLAYED_HEADER = "x-tvdb-replayed"
log = logging.getLogger(__name__)


class OpenAIEmbedder:
    """The `Embedder` for the OpenAI embeddings API. Build it with `build_openai_embedder(settings)`.

    `http_client` is the injected httpx2 client (its transport may be a `FaultTransport`);
    `timeout_s` bounds each request. Use one instance per event loop, and `await aclose()` at the end.
    """

    service: str = SERVICE
    implementation: Implementation = Implementation.REAL

    def __init__(
        self, *, api_key: str, base_url: str, http_client: AsyncClient, timeout_s: float = 60.0,
        implementation: Implementation = Implementation.REAL,
    ) -> None:
        from urllib.parse import parse_qsl, urlsplit, urlunsplit

        from openai import AsyncOpenAI

        # REPLAY: the same client with HTTP answered from a cassette (ledger rows cost nothing)
        self.implementation = implementation
        self.base_url = base_url
        self.shown_url = redact_url(base_url)  # for messages: a token in the query or path is a secret
        self._key = api_key
        self._http = http_client
        self._timeout_s = timeout_s
        # the SDK appends `/embeddings` to the base URL's text, query and all; a query (a gateway's
        # `?api-key=…`) goes on every request instead
        parts = urlsplit(base_url)
        query = dict(parse_qsl(parts.query, keep_blank_values=True))
        self._client: AsyncOpenAI = AsyncOpenAI(
            api_key=api_key, base_url=urlunsplit(parts._replace(query="", fragment="")), http_client=http_client,
            max_retries=0, timeout=timeout_s, default_headers={"Accept-Encoding": "gzip"},
            default_query=query or None,
        )

    @property
    def identity(self) -> str:
        """The client and its endpoint: vectors from another base URL are another source."""
        return f"OpenAIEmbedder {self.base_url.rstrip('/')}"

    def __repr__(self) -> str:
        return f"OpenAIEmbedder(base_url={self.shown_url!r})"

    async def aclose(self) -> None:
        await self._client.close()

    async def __aenter__(self) -> OpenAIEmbedder:
        return self

    async def __aexit__(self, *_: object) -> None:
        await self.aclose()

    def _check(self, request: EmbeddingRequest) -> catalog.EmbeddingModelSpec:
        """Refuse what the API would refuse, before any money or request is spent.

        A model unknown to tvdb.catalog is checked against the common limits and sent as is: the API
        answers 404 model_not_found, a PermanentServiceError (settings refuse such models earlier).
        """
        spec = _spec(request)

        def refuse(message: str, code: str) -> PermanentServiceError:
            return PermanentServiceError(f"openai: not sent: {message}", service=SERVICE, code=code)

        if not request.texts:
            raise refuse("a request needs at least one input", "empty_request")
        if len(request.texts) > spec.max_inputs_per_request:
            raise refuse(f"{len(request.texts)} inputs, the limit is {spec.max_inputs_per_request} "
                         "per request", "too_many_inputs")
        if request.token_count > spec.max_tokens_per_request:
            raise refuse(f"{request.token_count} tokens, the limit is {spec.max_tokens_per_request} "
                         "per request", "max_tokens_per_request")
        for i, text in enumerate(request.texts):
            if not text.strip():
                raise refuse(f"input {i} is empty or whitespace only", "empty_input")
            # tokens ≤ UTF-8 bytes, so only long texts need counting
            if len(text) * 4 > spec.max_input_tokens and len(text.encode()) > spec.max_input_tokens:
                from tvdb.tokens import count_tokens

                # the chunker's count when the request carries it: nothing is counted twice
                n = request.input_tokens[i] if request.input_tokens else count_tokens([text], spec.encoding)[0]
                if n > spec.max_input_tokens:
                    raise refuse(f"input {i} has {n} tokens, the {request.model} limit is "
                                 f"{spec.max_input_tokens} per input (split it when chunking)",
                                 "input_too_long")
        return spec

    async def embed(self, request: EmbeddingRequest) -> EmbeddingResult:
        """Embed `request.texts` in one request; float32 (n, d) rows in input order."""
        import openai

        from tvdb.http import ConnectError, ConnectTimeout, PoolTimeout, Response

        spec = self._check(request)
        # The wire body `embeddings.create` sends, in its key order (contracts.md §1.2). We post it
        # through the SDK's documented `post` so that the SDK still owns auth, headers, timeouts and
        # the status-error mapping, but skip its per-item request transform and response model
        # construction: for 2,048 inputs those cost more CPU than the request itself.
        body: dict[str, Any] = {"model": request.model, "input": list(request.texts)}
        if spec.supports_dimensions and request.dimensions != spec.default_dimensions:
            body["dimensions"] = request.dimensions
        body["encoding_format"] = "base64"
        try:
            response = await self._client.post(
                "/embeddings", body=body, cast_to=Response,
                options={"security": {"bearer_auth": True}, "timeout": self._timeout_s},
            )
        except openai.APIStatusError as exc:
            raise self._status_error(exc) from None
        except openai.APITimeoutError as exc:
            # a connect or pool timeout never sent the request; any later one may have been billed
            unsent = isinstance(exc.__cause__, ConnectTimeout | PoolTimeout)
            raise ServiceTimeoutError(
                f"openai: no response within {self._timeout_s:g}s from {self.shown_url}"
                + (" (could not connect)" if unsent else ""), service=SERVICE, maybe_billed=not unsent,
            ) from None
        except openai.APIConnectionError as exc:
            cause = type(exc.__cause__).__name__ if exc.__cause__ else "connection error"
            unsent = isinstance(exc.__cause__, ConnectError)  # refused / unreachable: nothing was sent
            raise ServiceUnavailableError(
                f"openai: cannot reach {self.shown_url} ({cause})" if unsent else
                f"openai: connection to {self.shown_url} lost after sending ({cause})",
                service=SERVICE, maybe_billed=not unsent,
            ) from None
        result = replace(self._result(request, response.content, response.headers.get("x-request-id")),
                         rate_limits=parse_rate_limits(response.headers))
        # a cassette's rate limits are kept too: the token limit they name decided how the recording
        # cut its requests, so a replay must cut them alike (the in-flight gate ignores a replay's)
        if REPLAYED_HEADER in response.headers:  # a recording session answered it from its cassette
            return replace(result, replayed=True)
        return result

    def _status_error(self, exc: Any) -> ServiceError:
        body = exc.body if isinstance(exc.body, dict) else {}
        message = body.get("message") if isinstance(body.get("message"), str) else None
        return error_for_status(
            SERVICE, exc.status_code,
            message=redact(message or exc.response.reason_phrase or "error", [self._key]),
            code=exc.code, type=exc.type, request_id=exc.request_id,
            retry_after=parse_retry_after(exc.response.headers),
            # a 429 names the account's limits too, before any request has succeeded
            rate_limits=parse_rate_limits(exc.response.headers),
        )

    def _result(self, request: EmbeddingRequest, content: bytes, request_id: str | None) -> EmbeddingResult:
        def malformed(why: str) -> MalformedResponseError:
            # a 200 is an answer the provider billed, whatever we could make of its body
            return MalformedResponseError(f"openai: malformed embeddings response: {why}", service=SERVICE,
                                          status=200, request_id=request_id, maybe_billed=True)

        try:
            payload = json.loads(content)
        except (ValueError, UnicodeDecodeError):
            raise malformed(f"the body is not valid JSON ({len(content)} bytes)") from None
        data = payload.get("data") if isinstance(payload, dict) else None
        if not isinstance(data, list):
            raise malformed("no `data` list")
        n = len(request.texts)
        if len(data) != n:
            raise malformed(f"{len(data)} embeddings for {n} inputs")
        vectors = _decode(data, n, malformed)
        usage = payload.get("usage")
        prompt_tokens = usage.get("prompt_tokens") if isinstance(usage, dict) else None
        if not isinstance(prompt_tokens, int) or isinstance(prompt_tokens, bool):
            log.warning("openai response %s has no usage.prompt_tokens; billing our tiktoken count %d",
                        request_id, request.token_count)
            prompt_tokens = request.token_count
        elif not 0 <= prompt_tokens <= min(2 * request.token_count + 16, _spec(request).max_tokens_per_request):
            # the API cannot bill a negative count or far more than the inputs hold; a proxy or a bug
            # that says so must not drive the ledger (and with it every budget) off a cliff
            log.warning("openai usage.prompt_tokens %d is implausible for %d input tokens (request %s); "
                        "billing our tiktoken count", prompt_tokens, request.token_count, request_id)
            prompt_tokens = request.token_count
        elif prompt_tokens != request.token_count:
            log.warning("openai usage.prompt_tokens %d != tiktoken count %d (request %s)",
                        prompt_tokens, request.token_count, request_id)
        model = payload.get("model")
        return EmbeddingResult(vectors, prompt_tokens, model if isinstance(model, str) else request.model,
                               request_id=request_id, usage=usage if isinstance(usage, dict) else {})


def _decode(data: list[Any], n: int, malformed: Any) -> npt.NDArray[np.float32]:
    """Rows in `index` order; base64 little-endian float32 or float lists."""
    import numpy as np

    fast = _decode_contiguous(data, n)
    if fast is not None:
        return fast
    rows: list[Any] = [None] * n
    for item in data:
        index = item.get("index") if isinstance(item, dict) else None
        if not isinstance(index, int) or not 0 <= index < n or rows[index] is not None:
            raise malformed(f"bad or repeated index {index!r}")
        emb = item.get("embedding")
        if isinstance(emb, str):
            try:
                raw = _b64decode(emb)
            except ValueError:  # binascii.Error is a ValueError
                raise malformed(f"embedding {index} is not valid base64") from None
            if len(raw) % 4:
                raise malformed(f"embedding {index} is {len(raw)} bytes, not whole float32 values")
            rows[index] = np.frombuffer(raw, dtype="<f4")
        elif isinstance(emb, list):
            try:
                rows[index] = np.asarray(emb, dtype="<f4")
            except (TypeError, ValueError):
                raise malformed(f"embedding {index} is not a list of numbers") from None
        else:
            raise malformed(f"embedding {index} is {type(emb).__name__}, not base64 or floats")
    dims = {len(r) for r in rows}
    if len(dims) != 1:
        raise malformed(f"embeddings of different lengths {sorted(dims)}")
    return np.vstack(rows).astype(np.float32, copy=False) if n else np.zeros((0, 0), np.float32)


def _spec(request: EmbeddingRequest) -> catalog.EmbeddingModelSpec:
    """The model's limits from the catalog; a model unknown there gets the common limits."""
    return catalog.EMBEDDING_MODELS.get(request.model) or catalog.EmbeddingModelSpec(
        request.model, request.dimensions, True)


def build_openai_embedder(
    settings: Settings,
    *,
    transport: AsyncBaseTransport | None = None,
    faults: FaultPlan | FaultSchedule | None = None,
    implementation: Implementation = Implementation.REAL,
) -> OpenAIEmbedder:
    """The real embedder for `settings`: key from `openai_api_key` / OPENAI_API_KEY, base URL from
    `openai_base_url` / OPENAI_BASE_URL (default https://api.openai.com/v1).

    `transport` replaces the network transport (tests); `faults` wraps it in a `FaultTransport`;
    `implementation=REPLAY` builds the client a replay answers from a cassette (no key needed).
    Raises ConfigError when no key is configured for a real client.
    """
    from tvdb.http import ACCEPT_ENCODING, AsyncClient, AsyncHTTPTransport, Limits, Timeout
    from tvdb.services.inflight import AUTO_MAX

    secret = settings.openai_api_key
    key = secret.get_secret_value() if secret is not None else None  # settings read OPENAI_API_KEY
    if not key and implementation is Implementation.REPLAY:
        key = REPLAY_KEY  # a replay sends nothing anywhere; CI needs no secret for it
    if not key:
        raise ConfigError(
            "real embeddings need an OpenAI API key: set OPENAI_API_KEY (or openai_api_key in tvdb.yaml); "
            "to try real mode offline, start `tvdb emulate` and set OPENAI_BASE_URL to its address"
        )
    base_url = (settings.openai_base_url or DEFAULT_BASE_URL).rstrip("/")
    concurrency = settings.embedding.concurrency
    pool = max(10, 2 * (AUTO_MAX if concurrency == "auto" else concurrency))
    inner: AsyncBaseTransport = transport or AsyncHTTPTransport(
        limits=Limits(max_connections=pool, max_keepalive_connections=pool),
    )
    if faults is not None:
        from tvdb.faults.transport import FaultTransport

        inner = FaultTransport(inner, faults, "openai")
    timeout = Timeout(settings.embedding.timeout_s, connect=min(5.0, settings.embedding.timeout_s))
    client = AsyncClient(transport=inner, timeout=timeout, headers={"Accept-Encoding": ACCEPT_ENCODING})
    return OpenAIEmbedder(api_key=key, base_url=base_url, http_client=client,
                          timeout_s=settings.embedding.timeout_s, implementation=implementation)


def _decode_contiguous(data: list[Any], n: int) -> npt.NDArray[np.float32] | None:
    """The common case in one decode: items in index order, base64 strings of one length without
    padding (4·d divisible by 3, e.g. d = 1536), so their concatenation is one valid base64 text.
    None when the case does not apply (the general path then checks everything item by item)."""
    import numpy as np

    if not n or not all(isinstance(item, dict) for item in data):
        return None
    strings = [item.get("embedding") for item in data]
    first = strings[0]
    if not isinstance(first, str) or not first or len(first) % 4 or first.endswith("="):
        return None
    width = len(first)
    for i, (item, emb) in enumerate(zip(data, strings, strict=True)):
        if item.get("index") != i or not isinstance(emb, str) or len(emb) != width:
            return None
    try:
        raw = _b64decode("".join(strings))
    except ValueError:
        return None
    return np.frombuffer(raw, dtype="<f4").reshape(n, -1).astype(np.float32, copy=False)



def _b64decode(text: str) -> bytes:
    """Strict base64 (the alphabet and padding only, else binascii.Error): pybase64's SIMD decoder,
    about 6x faster than binascii on a 12 MB response (60 ms → 9 ms), the client's largest CPU cost
    after the request itself."""
    import pybase64

    return pybase64.b64decode(text, validate=True)
