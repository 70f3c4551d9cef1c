"""`OpenAIEmbedder` against the emulator over loopback HTTP: vectors, usage, and the typed error of every
failure, with the API key in no message, repr or log record."""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from tests.openai_support import CANARY, KEY, MODEL, emulator, settings_for, text_of_tokens
from tvdb.domain import EmbeddingRequest, Implementation
from tvdb.errors import (
    ConfigError,
    MalformedResponseError,
    PermanentServiceError,
    QuotaExhausted,
    RateLimitExceeded,
    ServiceError,
    ServiceTimeoutError,
    ServiceUnavailableError,
)
from tvdb.http import MockTransport, Request, Response
from tvdb.services.local.embedder import HashEmbedder
from tvdb.services.remote.openai_embedder import OpenAIEmbedder, build_openai_embedder
from tvdb.tokens import count_tokens


def request(texts: list[str], *, dimensions: int = 1536, model: str = MODEL) -> EmbeddingRequest:
    return EmbeddingRequest(tuple(texts), model, dimensions, sum(count_tokens(texts)))


async def embed_once(settings: Any, req: EmbeddingRequest, **kwargs: Any) -> Any:
    embedder = build_openai_embedder(settings, **kwargs)
    try:
        return await embedder.embed(req)
    finally:
        await embedder.aclose()


async def error_of(settings: Any, req: EmbeddingRequest, **kwargs: Any) -> ServiceError:
    with pytest.raises(ServiceError) as info:
        await embed_once(settings, req, **kwargs)
    return info.value


async def test_embeds_in_input_order_with_usage_and_request_id() -> None:
    texts = ["first text", "a second, longer text about embeddings", "third"]
    with emulator() as server:
        result = await embed_once(settings_for(server), request(texts))
        seen = server.requests[-1]
    assert result.vectors.dtype == np.float32 and result.vectors.shape == (3, 1536)
    assert np.array_equal(result.vectors, HashEmbedder().embed_texts(texts, 1536))
    assert result.prompt_tokens == sum(count_tokens(texts))
    assert result.usage == {"prompt_tokens": result.prompt_tokens, "total_tokens": result.prompt_tokens}
    assert result.request_id and result.request_id.startswith("req_")
    assert seen.headers["accept-encoding"] == "gzip"  # contracts.md §3.8
    assert seen.headers["authorization"] == f"Bearer {KEY}"


async def test_body_is_the_sdk_wire_body_and_dimensions_are_sent_when_shortened() -> None:
    bodies: list[dict[str, Any]] = []

    def handler(req: Request) -> Response:
        body = json.loads(req.content)
        bodies.append(body)
        vec = HashEmbedder().embed_texts(body["input"], body.get("dimensions", 1536))
        import base64

        data = [{"object": "embedding", "index": i, "embedding": base64.b64encode(v.tobytes()).decode()}
                for i, v in enumerate(vec)]
        # rows out of order: the embedder must sort by `index`
        return Response(200, json={"object": "list", "data": data[::-1], "model": MODEL,
                                   "usage": {"prompt_tokens": 4, "total_tokens": 4}})

    result = await embed_once(settings_for(None), request(["x y", "z w"], dimensions=512),
                              transport=MockTransport(handler))
    assert list(bodies[0]) == ["model", "input", "dimensions", "encoding_format"]
    assert bodies[0] == {"model": MODEL, "input": ["x y", "z w"], "dimensions": 512, "encoding_format": "base64"}
    assert np.array_equal(result.vectors, HashEmbedder().embed_texts(["x y", "z w"], 512))


async def test_float_lists_and_gzip_bodies_are_read_too() -> None:
    def handler(req: Request) -> Response:
        return Response(200, json={"object": "list", "model": MODEL, "usage": {"prompt_tokens": 1, "total_tokens": 1},
                                   "data": [{"object": "embedding", "index": 0, "embedding": [0.6, 0.8]}]})

    result = await embed_once(settings_for(None), request(["x"], dimensions=2), transport=MockTransport(handler))
    assert result.vectors.dtype == np.float32 and np.allclose(result.vectors, [[0.6, 0.8]])
    with emulator(gzip_responses=True) as server:
        gz = await embed_once(settings_for(server), request(["gzip"]))
    assert gz.vectors.shape == (1, 1536)


async def test_usage_mismatch_is_logged_not_raised(caplog: pytest.LogCaptureFixture) -> None:
    with emulator() as server, caplog.at_level(logging.WARNING):
        wrong = EmbeddingRequest(("hello world",), MODEL, 1536, 99)
        result = await embed_once(settings_for(server), wrong)
    assert result.prompt_tokens == 2
    assert "usage.prompt_tokens 2 != tiktoken count 99" in caplog.text


@pytest.mark.parametrize(("texts", "code"), [
    ([""], "empty_input"), (["  \n"], "empty_input"), ([text_of_tokens(8193)], "input_too_long"),
    (["a"] * 2049, "too_many_inputs"),
])
async def test_refuses_what_the_api_would_refuse_before_sending(texts: list[str], code: str) -> None:
    with emulator() as server:
        err = await error_of(settings_for(server), request(texts))
        assert server.count() == 0
    assert isinstance(err, PermanentServiceError) and err.code == code


FAULT_CASES = [
    ({"kind": "status", "status": 429, "retry_after": 1.5}, RateLimitExceeded, 429, "rate_limit_exceeded"),
    ({"kind": "status", "status": 429, "type": "insufficient_quota"}, QuotaExhausted, 429, "insufficient_quota"),
    ({"kind": "status", "status": 429, "type": "insufficient_quota", "code": "credit_balance_exhausted"},
     QuotaExhausted, 429, "credit_balance_exhausted"),
    ({"kind": "status", "status": 500}, ServiceUnavailableError, 500, "server_error"),
    ({"kind": "status", "status": 503}, ServiceUnavailableError, 503, "server_error"),
    ({"kind": "status", "status": 400}, PermanentServiceError, 400, "invalid_request_error"),
    ({"kind": "status", "status": 403, "code": "unsupported_country_region_territory"},
     PermanentServiceError, 403, "unsupported_country_region_territory"),
    ({"kind": "status", "status": 408}, ServiceTimeoutError, 408, "invalid_request_error"),
    ({"kind": "status", "status": 409}, ServiceUnavailableError, 409, "invalid_request_error"),
    ({"kind": "timeout", "latency_s": 3}, ServiceTimeoutError, None, None),
    ({"kind": "disconnect"}, ServiceUnavailableError, None, None),
    ({"kind": "malformed_body"}, MalformedResponseError, 200, None),
]


@pytest.mark.parametrize(("fault", "cls", "status", "code"), FAULT_CASES)
@pytest.mark.parametrize("side", ["server", "transport"])
async def test_each_failure_maps_to_its_typed_error(
    fault: dict[str, Any], cls: type[ServiceError], status: int | None, code: str | None, side: str,
    caplog: pytest.LogCaptureFixture,
) -> None:
    """The emulator's server-side faults and the client-side FaultTransport give the same errors."""
    from tvdb.faults import FaultPlan

    spec = {"service": "openai", **fault}
    # client-side, a timeout fault raises at once (its latency would be a real sleep here)
    plan = FaultPlan.of([{k: v for k, v in spec.items() if k != "latency_s"}])
    caplog.set_level(logging.DEBUG)
    with emulator(faults=[spec] if side == "server" else None) as server:
        settings = settings_for(server, key=CANARY, embedding={"timeout_s": 0.5})
        err = await error_of(settings, request(["x"]), faults=plan if side == "transport" else None)
    assert type(err) is cls
    assert (err.status, err.code, err.service) == (status, code, "openai")
    if status is not None and status != 200:
        assert err.request_id and err.request_id.startswith("req_")
    if cls is RateLimitExceeded:
        assert err.retry_after == 1.5  # type: ignore[attr-defined]
    for text in (str(err), repr(err), caplog.text, *(r.getMessage() for r in caplog.records)):
        assert CANARY not in text


async def test_401_and_404_are_permanent_and_never_carry_the_key(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    bad_key = "canary-not-sk-9e8d7c6b5a4f3e2d"
    with emulator() as server:
        auth = await error_of(settings_for(server, key=bad_key), request(["x"]))
        model = await error_of(settings_for(server), request(["x"], model="text-embedding-4-imaginary"))
    assert type(auth) is PermanentServiceError and (auth.status, auth.code) == (401, "invalid_api_key")
    assert type(model) is PermanentServiceError and (model.status, model.code) == (404, "model_not_found")
    assert "The model `text-embedding-4-imaginary` does not exist" in str(model)
    for text in (str(auth), repr(auth), caplog.text):
        assert bad_key not in text


async def test_wrong_count_and_bad_rows_are_malformed() -> None:
    def two_vectors_for_one(req: Request) -> Response:
        row = {"object": "embedding", "embedding": [1.0, 0.0]}
        return Response(200, json={"data": [{**row, "index": 0}, {**row, "index": 1}],
                                   "usage": {"prompt_tokens": 1}}, headers={"x-request-id": "req_abc"})

    def not_base64(req: Request) -> Response:
        return Response(200, json={"data": [{"index": 0, "embedding": "***"}], "usage": {"prompt_tokens": 1}})

    def ragged(req: Request) -> Response:
        return Response(200, json={"data": [{"index": 0, "embedding": [1.0]}, {"index": 1, "embedding": [1.0, 0.0]}],
                                   "usage": {"prompt_tokens": 2}})

    err = await error_of(settings_for(None), request(["x"]), transport=MockTransport(two_vectors_for_one))
    assert isinstance(err, MalformedResponseError) and "2 embeddings for 1 inputs" in str(err)
    assert err.request_id == "req_abc"
    err = await error_of(settings_for(None), request(["x"]), transport=MockTransport(not_base64))
    assert isinstance(err, MalformedResponseError) and "not valid base64" in str(err)
    err = await error_of(settings_for(None), request(["x", "y"]), transport=MockTransport(ragged))
    assert isinstance(err, MalformedResponseError) and "different lengths" in str(err)


async def test_connection_refused_is_unavailable() -> None:
    with emulator() as server:
        url = server.openai_base_url
    err = await error_of(settings_for(None, openai_base_url=url), request(["x"]))
    assert isinstance(err, ServiceUnavailableError) and "cannot reach" in str(err)


def test_factory_reads_key_and_base_url_from_the_environment(tmp_path: Path) -> None:
    from tvdb.config import Settings, resolve_settings

    with pytest.raises(ConfigError, match="OPENAI_API_KEY"):
        build_openai_embedder(Settings())
    env = {"OPENAI_API_KEY": CANARY, "OPENAI_BASE_URL": "http://127.0.0.1:9/v1/"}
    embedder = build_openai_embedder(resolve_settings(cwd=tmp_path, environ=env))
    assert isinstance(embedder, OpenAIEmbedder)
    assert (embedder.service, embedder.implementation) == ("openai", Implementation.REAL)
    assert embedder.base_url == "http://127.0.0.1:9/v1"
    assert CANARY not in repr(embedder) and CANARY not in str(vars(embedder).get("base_url"))


async def test_key_and_base_url_from_settings_reach_the_emulator() -> None:
    with emulator() as server:
        result = await embed_once(settings_for(server, key=CANARY), request(["ok"]))
        assert server.requests[-1].headers["authorization"] == f"Bearer {CANARY}"
    assert result.vectors.shape == (1, 1536)
