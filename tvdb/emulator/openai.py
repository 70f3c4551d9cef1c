"""The OpenAI embeddings API, emulated: `POST /v1/embeddings` exactly as the real API answers it
(and `GET /v1/models`, the free request health probes make).

Validation and its errors follow contracts.md §1.3/§1.5 (status, `type`, `code`, message text):
a key that does not start with `sk-` → 401 invalid_api_key; unknown model → 404 model_not_found;
more than 2048 inputs or an empty string → 400 `'$.input' is invalid`; an input over 8192 tokens →
400 "maximum context length"; more than 300,000 tokens → 400 max_tokens_per_request; `dimensions`
on a model without it → 400, and of the wrong JSON type (`true`, 1.5) → 400 invalid_type; a token
id that is negative, a boolean or outside the vocabulary → 400 `'$.input' is invalid`; a body that is
not JSON or nested past the parser's stack → 400 "could not parse the JSON body". Then the RPM/TPM
window (429 rate_limit_exceeded with retry-after),
then vectors from the same `HashEmbedder` mock mode uses, as base64 little-endian float32 or float
lists; a token array gets the vector of the text it decodes to. `usage.prompt_tokens` is the cl100k
count (a token array's length). Every response has an `x-request-id`.
A fault plan (tvdb.faults) is applied server-side. Pure request handling: the server does I/O.
"""

from __future__ import annotations

import binascii
import json
import time
from collections.abc import Callable, Sequence
from typing import Any

from tvdb import catalog
from tvdb.emulator import bodies
from tvdb.emulator.base import EmulatorRequest, Reply
from tvdb.emulator.memo import Memo
from tvdb.emulator.ratelimit import SlidingWindowLimiter
from tvdb.faults.plan import FaultPlan, FaultSchedule
from tvdb.faults.wrappers import as_schedule
from tvdb.tokens import count_tokens

EmbedTexts = Callable[[Sequence[str], int], Any]  # (texts, dimensions) -> float32 (n, d)
JSON_CT = "application/json"
BAD_JSON_MESSAGE = (
    "We could not parse the JSON body of your request. (HINT: This likely means you aren't using your "
    "HTTP library correctly. The OpenAI API expects a JSON payload, but what was sent was not valid JSON. "
    "If you have trouble figuring out how to fix this, please contact us through our help center at "
    "help.openai.com.)"
)
_FIELDS = frozenset({"model", "input", "encoding_format", "dimensions", "user"})  # contracts.md §1.2
# A request must hang longer than any client timeout to be a "timeout"; tests set short client timeouts.
DEFAULT_HANG_S = 30.0


class OpenAIEmulator:
    """Thread-safe handler for the `/v1` routes. `clock` drives the rate-limit window."""

    prefix = "/v1"
    name = "openai"

    def __init__(
        self,
        *,
        rpm: int | None = None,
        tpm: int | None = None,
        latency_s: float = 0.0,
        faults: FaultPlan | FaultSchedule | None = None,
        clock: Callable[[], float] = time.monotonic,
        embed_texts: EmbedTexts | None = None,
        memo_entries: int = 0,
    ) -> None:
        self.limiter = SlidingWindowLimiter(rpm, tpm, clock)
        self.latency_s = latency_s
        self.schedule = as_schedule(faults or FaultPlan())
        if embed_texts is None:
            from tvdb.services.local.embedder import HashEmbedder

            # one instance: it caches word features, and is thread-safe
            embed_texts = HashEmbedder().embed_texts
        self._embed_texts = _blank_safe(embed_texts)
        # one memo per kind, so that `memo_entries` texts keep both their count and their vector
        self._counts, self._rows = Memo(memo_entries), Memo(memo_entries)

    def handle(self, request: EmulatorRequest) -> Reply:
        rid = bodies.request_id()
        if request.method == "GET" and request.path.rstrip("/") == "/v1/models":
            return self._models(request, rid)
        if request.method != "POST" or request.path.rstrip("/") != "/v1/embeddings":
            err = bodies.openai_error(404, f"Invalid URL ({request.method} {request.path})",
                                      type="invalid_request_error")
            return self._reply(err.status, err.body, rid, err.headers)
        decision = self.schedule.next("openai")
        delay = self.latency_s + decision.latency_s
        fault = decision.fault
        if fault is not None and fault.kind != "bad_vector":
            if fault.kind == "status":
                err = bodies.status_fault(fault)
                return self._reply(err.status, err.body, rid, err.headers, delay)
            if fault.kind == "disconnect":
                return Reply(delay_s=delay, action="disconnect")
            if fault.kind == "timeout":
                return Reply(delay_s=delay + (fault.latency_s or DEFAULT_HANG_S), action="hang")
            return self._reply(200, bodies.MALFORMED_BODY["openai"], rid, {}, delay)
        started = time.perf_counter()
        status, body, headers = self._embeddings(request, bad_vector=fault.vector if fault else None)
        headers["openai-processing-ms"] = str(round((time.perf_counter() - started) * 1000))
        return self._reply(status, body, rid, headers, delay)

    def _models(self, request: EmulatorRequest, rid: str) -> Reply:
        """`GET /v1/models` (https://platform.openai.com/docs/api-reference/models/list), what health
        probes ask: free, authenticated like embeddings (401 for a bad key). The fault plan stays with
        the embeddings calls, so `nth` counts only those; an outage is the server being stopped."""
        auth = request.headers.get("authorization", "")
        key = auth[7:].strip() if auth.lower().startswith("bearer ") else ""
        if not key.startswith("sk-"):
            status, body, headers = _err(bodies.invalid_api_key(key))
            return self._reply(status, body, rid, headers)
        models = [{"id": name, "object": "model", "created": 1705953180, "owned_by": "system"}
                  for name in catalog.EMBEDDING_MODELS]
        return self._reply(200, json.dumps({"object": "list", "data": models}).encode(), rid, {}, self.latency_s)

    @staticmethod
    def _reply(status: int, body: bytes, rid: str, headers: Any, delay: float = 0.0) -> Reply:
        ct = JSON_CT if status == 200 else JSON_CT + "; charset=utf-8"
        return Reply(status, {"content-type": ct, "x-request-id": rid, "openai-version": "2020-10-01",
                              "openai-organization": bodies.EMULATOR_ORG, **headers}, body, delay)

    def _embeddings(
        self, request: EmulatorRequest, *, bad_vector: str | None
    ) -> tuple[int, bytes, dict[str, str]]:
        auth = request.headers.get("authorization", "")
        key = auth[7:].strip() if auth.lower().startswith("bearer ") else ""
        if not key.startswith("sk-"):
            return _err(bodies.invalid_api_key(key))
        try:
            payload = json.loads(request.body)
        except (ValueError, UnicodeDecodeError, RecursionError):  # RecursionError: nested past the stack
            return _err(bodies.openai_error(400, BAD_JSON_MESSAGE, type="invalid_request_error"))
        if not isinstance(payload, dict):
            return _err(bodies.openai_error(400, BAD_JSON_MESSAGE, type="invalid_request_error"))
        unknown = sorted(set(payload) - _FIELDS)
        if unknown:
            return _err(bodies.openai_error(400, f"Unrecognized request argument supplied: {unknown[0]}",
                                            type="invalid_request_error"))
        model = payload.get("model")
        if not isinstance(model, str) or not model:
            return _err(bodies.openai_error(400, "you must provide a model parameter",
                                            type="invalid_request_error"))
        spec = catalog.EMBEDDING_MODELS.get(model)
        if spec is None:
            return _err(bodies.model_not_found(model))
        parsed = _inputs(payload.get("input"), spec)
        if parsed is None or len(parsed[0]) > spec.max_inputs_per_request:
            return _err(bodies.invalid_input())
        texts, known = parsed
        dimensions = payload.get("dimensions")
        if dimensions is not None:
            if not spec.supports_dimensions:
                return _err(bodies.dimensions_unsupported())
            if isinstance(dimensions, bool) or not isinstance(dimensions, int):  # JSON `true` is no integer
                return _err(bodies.invalid_type("dimensions", "an integer", dimensions))
            if not 1 <= dimensions <= spec.default_dimensions:
                return _err(bodies.openai_error(
                    400, f"Invalid value for 'dimensions' = {dimensions}. Must be between 1 and "
                    f"{spec.default_dimensions}.", type="invalid_request_error", param="dimensions"))
        fmt = payload.get("encoding_format", "float")
        if fmt not in ("float", "base64"):
            return _err(bodies.openai_error(
                400, f"Invalid value for 'encoding_format' = {fmt}. "
                "Supported values are: 'float' and 'base64'.",
                type="invalid_request_error", param="encoding_format"))
        counts = self._token_counts(texts, known, spec.encoding)
        for n in counts:
            if n > spec.max_input_tokens:
                return _err(bodies.context_length(spec.max_input_tokens, n))
        total = sum(counts)
        if total > spec.max_tokens_per_request:
            return _err(bodies.too_many_tokens(total, spec.max_tokens_per_request))
        admission = self.limiter.admit(total)
        if not admission.admitted:
            err = bodies.rate_limited(
                model, window=admission.window or "requests", limit=admission.limit, used=admission.used,
                requested=1 if admission.window == "requests" else total, retry_after=admission.retry_after)
            return err.status, err.body, {**admission.headers, **err.headers}
        dims = dimensions or spec.default_dimensions
        if fmt == "base64" and bad_vector is None and self._rows.entries > 0:
            embeddings: Sequence[bytes | memoryview] = self._encoded_rows(model, texts, dims)
        else:
            vectors = self._vectors(model, texts, dims)
            if bad_vector is not None:
                from tvdb.faults.wrappers import corrupt_vectors

                vectors = corrupt_vectors(vectors, "nan" if bad_vector == "nan" else "wrong_dimension")
            embeddings = _base64_rows(vectors) if fmt == "base64" else _float_rows(vectors)
        body = _embeddings_body(embeddings, model, total, quoted=fmt == "base64")
        return 200, body, {**admission.headers, "openai-model": model}


    def prime(self, texts: Sequence[str], model: str = catalog.DEFAULT_EMBEDDING_MODEL,
              dimensions: int | None = None) -> None:
        """Fill the memo (when on) with `texts`' counts and vectors, e.g. before a benchmark, so that every
        client then meets the same warm emulator."""
        spec = catalog.embedding_model(model)
        for start in range(0, len(texts), spec.max_inputs_per_request):
            block = list(texts[start:start + spec.max_inputs_per_request])
            self._token_counts(block, [None] * len(block), spec.encoding)
            self._encoded_rows(model, block, dimensions or spec.default_dimensions)

    def _token_counts(self, texts: list[str], known: list[int | None], encoding: str) -> list[int]:
        """cl100k counts as the API bills them; token-array inputs are counted by their length."""
        todo = [i for i, k in enumerate(known) if k is None]
        counted = self._counts.many([(encoding, texts[i]) for i in todo],
                                  lambda miss: count_tokens([texts[todo[j]] for j in miss], encoding))
        counts = list(known)
        for i, n in zip(todo, counted, strict=True):
            counts[i] = n
        return [int(n or 0) for n in counts]

    def _encoded_rows(self, model: str, texts: list[str], dimensions: int) -> list[bytes]:
        """Each text's vector as base64 little-endian float32, through the memo (what it stores)."""
        import numpy as np

        def compute(miss: list[int]) -> list[bytes]:
            rows = np.asarray(self._embed_texts([texts[i] for i in miss], dimensions), dtype="<f4")
            return [binascii.b2a_base64(row.tobytes(), newline=False) for row in rows]

        return self._rows.many([(model, dimensions, t) for t in texts], compute)

    def _vectors(self, model: str, texts: list[str], dimensions: int) -> Any:
        """float32 (n, dimensions) rows from the embedder (through the memo when it is on)."""
        import numpy as np

        if self._rows.entries <= 0:
            return np.asarray(self._embed_texts(texts, dimensions), dtype="<f4")
        encoded = self._encoded_rows(model, texts, dimensions)
        rows = [np.frombuffer(binascii.a2b_base64(b), dtype="<f4") for b in encoded]
        return np.vstack(rows) if rows else np.zeros((0, dimensions), dtype="<f4")


def _err(err: bodies.WireError) -> tuple[int, bytes, dict[str, str]]:
    return err.status, err.body, dict(err.headers)


def _inputs(raw: Any, spec: catalog.EmbeddingModelSpec) -> tuple[list[str], list[int | None]] | None:
    """The inputs as texts (token-id arrays decoded) with the token counts already known (for token
    arrays), or None when the API would refuse them."""
    if isinstance(raw, str):
        raw = [raw]
    if not isinstance(raw, list) or not raw:
        return None
    if all(_is_token(x) for x in raw):  # one array of token ids
        raw = [raw]
    texts: list[str] = []
    known: list[int | None] = []
    for item in raw:
        if isinstance(item, str):
            if item == "":
                return None
            texts.append(item)
            known.append(None)
        elif isinstance(item, list) and item and all(_is_token(t) for t in item):
            from tvdb.tokens import get_encoding

            # the tokens' text, so a token array gets the vector of the string it encodes
            try:
                texts.append(get_encoding(spec.encoding).decode(item))
            except (KeyError, ValueError, OverflowError):  # an id outside the vocabulary
                return None
            known.append(len(item))
        else:
            return None
    return texts, known


def _is_token(value: object) -> bool:
    """A token id as JSON has it: a non-negative integer (`true` is a boolean, not the token 1)."""
    return isinstance(value, int) and not isinstance(value, bool) and value >= 0


def _blank_safe(embed_texts: EmbedTexts) -> EmbedTexts:
    """`embed_texts` that also embeds whitespace-only inputs, which the API accepts (only "" is refused)
    but HashEmbedder refuses: such a text is embedded by its escaped form (" " → "whitespace \\x20"),
    the same whether it came as a string or as the tokens that decode to it."""

    def embed(texts: Sequence[str], dimensions: int) -> Any:
        stand_ins = [t if t.strip() else "whitespace " + t.encode("unicode_escape").decode("ascii")
                     .replace(" ", "\\x20") for t in texts]
        return embed_texts(stand_ins, dimensions)

    return embed


def _base64_rows(vectors: Any) -> Sequence[bytes | memoryview]:
    """Each row as base64 little-endian float32; when a row is a whole number of base64 quanta
    (4·d divisible by 3, e.g. d = 1536) all rows are encoded in one call and sliced."""
    import numpy as np

    rows = np.ascontiguousarray(vectors, dtype="<f4")
    n = len(rows)
    if n and (4 * rows.shape[1]) % 3 == 0:
        encoded = memoryview(binascii.b2a_base64(rows.tobytes(), newline=False))
        width = len(encoded) // n
        return [encoded[i * width:(i + 1) * width] for i in range(n)]
    return [binascii.b2a_base64(row.tobytes(), newline=False) for row in rows]


def _float_rows(vectors: Any) -> list[bytes]:
    return [json.dumps([float(x) for x in row]).encode() for row in vectors]


def _embeddings_body(embeddings: Sequence[bytes | memoryview], model: str, tokens: int, *, quoted: bool) -> bytes:
    """The 200 body, joined by hand: this is the hot path, and base64 strings need no escaping."""
    quote = b'"' if quoted else b""
    pieces: list[bytes | memoryview] = [b'{"object":"list","data":[']
    for i, emb in enumerate(embeddings):
        pieces += (b',{"object":"embedding","index":' if i else b'{"object":"embedding","index":',
                   str(i).encode(), b',"embedding":', quote, emb, quote, b"}")
    pieces.append(b'],"model":' + json.dumps(model).encode()
                  + b',"usage":{"prompt_tokens":%d,"total_tokens":%d}}' % (tokens, tokens))
    return b"".join(pieces)
