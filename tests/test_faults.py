"""The fault plan: validation, when faults fire, and the same typed errors from every wrapper
(FaultTransport for real clients, FaultyEmbedder/FaultyParser for local services)."""

from __future__ import annotations

import base64
import json
from typing import Any

import numpy as np
import pytest
from pydantic import ValidationError

from tvdb.clock import FakeClock
from tvdb.domain import (
    EmbeddingRequest,
    Implementation,
    Page,
    ParsedDocument,
    ParseRequest,
    ParseResult,
)
from tvdb.emulator import bodies
from tvdb.errors import (
    MalformedResponseError,
    PermanentServiceError,
    QuotaExhausted,
    RateLimitExceeded,
    ServiceError,
    ServiceTimeoutError,
    ServiceUnavailableError,
)
from tvdb.faults import Fault, FaultPlan, FaultyEmbedder, FaultyParser
from tvdb.faults.transport import FaultTransport
from tvdb.http import AsyncClient, MockTransport, ReadTimeout, RemoteProtocolError, Request, Response
from tvdb.services.local.embedder import HashEmbedder

MODEL = "text-embedding-3-small"


def plan(*faults: dict[str, Any], seed: int = 0) -> FaultPlan:
    return FaultPlan.of([{"service": "openai", **f} for f in faults], seed=seed)


# --- the plan ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize(("spec", "message"), [
    ({"service": "openai", "kind": "status"}, "needs `status`"),
    ({"service": "openai", "kind": "latency"}, "needs `latency_s`"),
    ({"service": "openai", "kind": "timeout", "nth": 1, "rate": 0.5}, "either `nth` or `rate`"),
    ({"service": "openai", "kind": "timeout", "nth": 0}, "counts calls from 1"),
    ({"service": "llamaparse", "kind": "bad_vector"}, r"openai \(embedding\) service only"),
    ({"service": "openai", "kind": "explode"}, "Input should be"),
    ({"service": "openai", "kind": "timeout", "rate": 1.5}, "less than or equal to 1"),
    ({"service": "openai", "kind": "timeout", "when": 3}, "Extra inputs are not permitted"),
])
def test_invalid_faults_are_refused(spec: dict[str, Any], message: str) -> None:
    with pytest.raises(ValidationError, match=message):
        Fault.model_validate(spec)


def test_nth_list_times_and_every_call() -> None:
    schedule = plan({"kind": "status", "status": 500, "nth": [2, 4]},
                    {"kind": "timeout", "times": 1}).schedule()
    outcomes = [schedule.next("openai").fault for _ in range(5)]
    kinds = [f.kind if f else None for f in outcomes]
    # call 1: the unconditional timeout (times: 1); 2 and 4: the status fault; others clean
    assert kinds == ["timeout", "status", None, "status", None]
    assert schedule.fired == (2, 1)
    assert schedule.calls("openai") == 5 and schedule.calls("llamaparse") == 0


def test_calls_are_counted_per_service() -> None:
    schedule = FaultPlan.of([{"service": "llamaparse", "kind": "disconnect", "nth": 1}]).schedule()
    assert schedule.next("openai").fault is None
    assert schedule.next("llamaparse").fault is not None


def test_rate_is_deterministic_for_a_seed_and_roughly_that_rate() -> None:
    def fired(seed: int) -> list[bool]:
        schedule = plan({"kind": "status", "status": 503, "rate": 0.3}, seed=seed).schedule()
        return [schedule.next("openai").fault is not None for _ in range(1000)]

    assert fired(7) == fired(7)
    assert fired(7) != fired(8)
    assert 250 < sum(fired(7)) < 350


def test_latency_combines_with_one_failure() -> None:
    schedule = plan({"kind": "latency", "latency_s": 0.2}, {"kind": "latency", "latency_s": 0.3, "nth": 1},
                    {"kind": "status", "status": 500, "nth": 1}, {"kind": "timeout", "nth": 1}).schedule()
    first, second = schedule.next("openai"), schedule.next("openai")
    assert first.latency_s == pytest.approx(0.5) and first.fault and first.fault.kind == "status"
    assert second.latency_s == pytest.approx(0.2) and second.fault is None
    assert schedule.fired == (2, 1, 1, 0)  # the timeout lost to the status fault on call 1


# --- FaultTransport ---------------------------------------------------------------------------------------


def embeddings_ok(req: Request) -> Response:
    vec = HashEmbedder().embed_texts(["a", "b"], 8)
    data = [{"object": "embedding", "index": i, "embedding": base64.b64encode(v.tobytes()).decode()}
            for i, v in enumerate(vec)]
    return Response(200, json={"object": "list", "data": data, "model": MODEL,
                               "usage": {"prompt_tokens": 2, "total_tokens": 2}})


async def send(fault_plan: FaultPlan, clock: FakeClock | None = None) -> Response:
    inner = MockTransport(embeddings_ok)
    transport = FaultTransport(inner, fault_plan, "openai", sleep=(clock or FakeClock()).sleep)
    async with AsyncClient(transport=transport) as client:
        return await client.post("http://api.test/v1/embeddings", json={"model": MODEL, "input": ["a", "b"]})


async def test_transport_status_fault_sends_the_real_body_without_reaching_the_server() -> None:
    calls: list[Request] = []

    def never(req: Request) -> Response:
        calls.append(req)
        return Response(200)

    transport = FaultTransport(MockTransport(never), plan({"kind": "status", "status": 429, "retry_after": 2}),
                               "openai")
    async with AsyncClient(transport=transport) as client:
        response = await client.post("http://api.test/v1/embeddings", json={})
    assert calls == []
    assert response.status_code == 429
    assert response.headers["retry-after"] == "2" and response.headers["retry-after-ms"] == "2000"
    assert response.headers["x-request-id"].startswith("req_")
    assert response.json()["error"]["code"] == "rate_limit_exceeded"
    assert response.json()["error"]["type"] == "requests"


async def test_transport_latency_uses_the_injected_sleep() -> None:
    clock = FakeClock()
    response = await send(plan({"kind": "latency", "latency_s": 1.25}), clock)
    assert response.status_code == 200 and clock.sleeps == [1.25]


async def test_transport_network_faults_raise_httpx2_errors() -> None:
    with pytest.raises(ReadTimeout):
        await send(plan({"kind": "timeout"}))
    with pytest.raises(RemoteProtocolError):
        await send(plan({"kind": "disconnect"}))
    malformed = await send(plan({"kind": "malformed_body"}))
    assert malformed.status_code == 200
    with pytest.raises(ValueError):
        json.loads(malformed.content)


async def test_transport_bad_vector_corrupts_the_real_answer() -> None:
    nan = (await send(plan({"kind": "bad_vector", "vector": "nan"}))).json()
    short = (await send(plan({"kind": "bad_vector", "vector": "wrong_dimension"}))).json()

    def rows(body: dict[str, Any]) -> list[Any]:
        return [np.frombuffer(base64.b64decode(d["embedding"]), "<f4") for d in body["data"]]

    assert np.isnan(rows(nan)[0][0]) and not np.isnan(rows(nan)[1]).any()
    assert [len(r) for r in rows(short)] == [7, 7]
    assert nan["usage"] == {"prompt_tokens": 2, "total_tokens": 2}


def test_llamaparse_status_bodies_are_fastapi_detail() -> None:
    wire = bodies.status_fault(Fault(service="llamaparse", kind="status", status=402))
    assert wire.status == 402
    assert json.loads(wire.body) == {"detail": "You've exceeded the maximum number of credits for your plan"}


# --- FaultyEmbedder / FaultyParser ------------------------------------------------------------------------


def req(texts: tuple[str, ...] = ("alpha beta", "gamma")) -> EmbeddingRequest:
    return EmbeddingRequest(texts, MODEL, 16, 4)


@pytest.mark.parametrize(("fault", "cls", "status", "code"), [
    ({"kind": "status", "status": 429, "retry_after": 3}, RateLimitExceeded, 429, "rate_limit_exceeded"),
    ({"kind": "status", "status": 429, "type": "insufficient_quota"}, QuotaExhausted, 429, "insufficient_quota"),
    ({"kind": "status", "status": 500}, ServiceUnavailableError, 500, "server_error"),
    ({"kind": "status", "status": 404}, PermanentServiceError, 404, "model_not_found"),
    ({"kind": "timeout"}, ServiceTimeoutError, None, None),
    ({"kind": "disconnect"}, ServiceUnavailableError, None, None),
    ({"kind": "malformed_body"}, MalformedResponseError, 200, None),
])
async def test_faulty_embedder_raises_what_the_real_client_raises(
    fault: dict[str, Any], cls: type[ServiceError], status: int | None, code: str | None,
) -> None:
    embedder = FaultyEmbedder(HashEmbedder(), plan({**fault, "nth": 1}), sleep=FakeClock().sleep)
    assert (embedder.service, embedder.implementation) == ("openai", Implementation.MOCK)
    with pytest.raises(ServiceError) as info:
        await embedder.embed(req())
    err = info.value
    assert type(err) is cls and (err.status, err.code) == (status, code)
    if cls is RateLimitExceeded:
        assert err.retry_after == 3  # type: ignore[attr-defined]
    result = await embedder.embed(req())  # nth: 1 only
    assert result.vectors.shape == (2, 16)


async def test_faulty_embedder_bad_vectors_and_latency() -> None:
    clock = FakeClock()
    embedder = FaultyEmbedder(HashEmbedder(), plan({"kind": "bad_vector", "nth": 1},
                                                   {"kind": "bad_vector", "vector": "wrong_dimension", "nth": 2},
                                                   {"kind": "latency", "latency_s": 0.4, "nth": 3}),
                              sleep=clock.sleep)
    nan, short, slow = [await embedder.embed(req()) for _ in range(3)]
    assert np.isnan(nan.vectors[0, 0]) and np.isfinite(nan.vectors[1]).all()
    assert short.vectors.shape == (2, 15)
    assert np.isfinite(slow.vectors).all() and clock.sleeps == [0.4]


class _Parser:
    service = "llamaparse"
    implementation = Implementation.MOCK
    identity = "test fake"

    def __init__(self) -> None:
        self.calls = 0

    async def parse(self, request: ParseRequest) -> ParseResult:
        self.calls += 1
        return ParseResult(ParsedDocument((Page(1, "text"),), "text/plain"), pages_billed=1)


async def test_faulty_parser_applies_only_llamaparse_faults() -> None:
    inner = _Parser()
    parser = FaultyParser(inner, FaultPlan.of([
        {"service": "llamaparse", "kind": "status", "status": 402, "nth": 1},
        {"service": "openai", "kind": "timeout"},
        {"service": "llamaparse", "kind": "timeout", "nth": 2},
    ]))
    request = ParseRequest(b"x", "a.txt", "text/plain", "fast")
    with pytest.raises(QuotaExhausted) as quota:
        await parser.parse(request)
    with pytest.raises(ServiceTimeoutError):
        await parser.parse(request)
    result = await parser.parse(request)
    assert quota.value.status == 402 and quota.value.service == "llamaparse"
    assert "exceeded the maximum number of credits" in str(quota.value)
    assert result.pages_billed == 1 and inner.calls == 1
