"""Real OpenAI cassettes recorded by other projects, replayed with vcrpy ≥ 9 through the SDK path
`OpenAIEmbedder` uses, with the network blocked (CASES C01, C02, C03)."""

from __future__ import annotations

import binascii
import socket
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import openai
import pytest
import vcr

from tests.openai_support import metered_caller, settings_for, usage_rows
from tvdb.clock import FakeClock
from tvdb.domain import EmbeddingRequest, Implementation
from tvdb.errors import PermanentServiceError
from tvdb.http import Client, Response
from tvdb.ledger.guard import CallScope
from tvdb.services.calls import CallSpec
from tvdb.services.remote.openai_embedder import build_openai_embedder

C01 = "dd-trace-py__embedding_b64.yaml"
C02 = "dd-trace-py__llama_index_openai_embedding.yaml"
C03 = "otel-python-contrib__test_embeddings_model_not_found.yaml"
REPLAY = vcr.VCR(record_mode="none", match_on=("method", "scheme", "host", "port", "path"))


@pytest.fixture(autouse=True)
def no_network(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """Any connection attempt fails the test: replay must never reach api.openai.com."""

    def refuse(self: socket.socket, address: Any) -> None:
        raise AssertionError(f"network access attempted during replay: {address!r}")

    monkeypatch.setattr(socket.socket, "connect", refuse)
    monkeypatch.setattr(socket.socket, "connect_ex", refuse)
    yield


async def embed(cassette: Path, req: EmbeddingRequest) -> Any:
    embedder = build_openai_embedder(settings_for(None))  # base URL: https://api.openai.com/v1
    try:
        with REPLAY.use_cassette(str(cassette)) as tape:
            result = await embedder.embed(req)
            assert tape.play_count == 1
        return result
    finally:
        await embedder.aclose()


async def test_c01_legacy_layout_with_a_lying_gzip_header(cassettes_dir: Path) -> None:
    req = EmbeddingRequest(("hello world",), "text-embedding-3-small", 512, 2)
    result = await embed(cassettes_dir / C01, req)
    assert isinstance(result.vectors, np.ndarray)  # never the base64 string itself
    assert result.vectors.dtype == np.float32 and result.vectors.shape == (1, 512)
    assert result.vectors[0, 0] == pytest.approx(-0.00967, abs=5e-5)
    assert abs(float(np.linalg.norm(result.vectors[0])) - 1) < 1e-3
    assert result.prompt_tokens == 2
    assert result.request_id == "req_64e18f52e79dee8f26f4111cf7a8e750"


async def test_c01_ledger_takes_the_tokens_from_usage(cassettes_dir: Path, tmp_path: Path) -> None:
    clock = FakeClock()
    caller = metered_caller(tmp_path, clock)
    embedder = build_openai_embedder(settings_for(None))
    req = EmbeddingRequest(("hello world",), "text-embedding-3-small", 512, 2)
    spec: CallSpec[Any] = CallSpec(
        service="openai", implementation=Implementation.REAL, model=req.model, unit="tokens",
        estimate_units=2, send=lambda: embedder.embed(req), actual_units=lambda r: r.prompt_tokens,
        usage_of=lambda r: r.usage, request_id_of=lambda r: r.request_id)
    try:
        with REPLAY.use_cassette(str(cassettes_dir / C01)):
            done = await caller.call(CallScope("run-c01", "c01", "embed"), spec)
    finally:
        await embedder.aclose()
    done.commit(caller.db, caller.budget)
    [row] = usage_rows(caller.db)
    assert (row["units"], row["status"], row["cost_nusd"]) == (2, "ok", 40)  # 2 × $0.02/1M = $0.00000004
    assert row["usage_json"] == '{"prompt_tokens": 2, "total_tokens": 2}'


async def test_c02_gzip_binary_body_async(cassettes_dir: Path) -> None:
    req = EmbeddingRequest(("test query",), "text-embedding-ada-002", 1536, 2)
    result = await embed(cassettes_dir / C02, req)
    assert result.vectors.shape == (1, 1536) and np.isfinite(result.vectors).all()
    assert result.prompt_tokens == 2
    assert result.model == "text-embedding-ada-002-v2"  # the response may name another model (contracts §1.4)


def test_c02_gzip_binary_body_sync_client(cassettes_dir: Path) -> None:
    client = openai.OpenAI(api_key="sk-replay", max_retries=0, http_client=Client())
    with REPLAY.use_cassette(str(cassettes_dir / C02)):
        response = client.post("/embeddings", cast_to=Response, body={
            "model": "text-embedding-ada-002", "input": ["test query"], "encoding_format": "base64"})
    with REPLAY.use_cassette(str(cassettes_dir / C02)):
        default = client.embeddings.create(model="text-embedding-ada-002", input=["test query"])
    raw = response.json()["data"][0]["embedding"]
    vector = np.frombuffer(binascii.a2b_base64(raw), "<f4")
    assert vector.shape == (1536,)
    assert np.allclose(vector, default.data[0].embedding)  # the SDK's own decoding agrees


async def test_c03_model_not_found_is_permanent_with_no_retry_and_no_cost(
    cassettes_dir: Path, tmp_path: Path,
) -> None:
    clock = FakeClock()
    caller = metered_caller(tmp_path, clock)
    embedder = build_openai_embedder(settings_for(None))
    req = EmbeddingRequest(("This is a test for embeddings with bad model",), "non-existent-embedding-model",
                           1536, 10)
    spec: CallSpec[Any] = CallSpec(
        service="openai", implementation=Implementation.REAL, model=req.model, unit="tokens",
        estimate_units=10, send=lambda: embedder.embed(req), actual_units=lambda r: r.prompt_tokens)
    try:
        with REPLAY.use_cassette(str(cassettes_dir / C03)) as tape:
            with pytest.raises(PermanentServiceError) as info:
                await caller.call(CallScope("run-c03", "c03", "embed"), spec)
            assert tape.play_count == 1
    finally:
        await embedder.aclose()
    err = info.value
    assert (err.status, err.code, err.request_id) == (404, "model_not_found", "req_e843ad138683a94b77b77e73be3b1fd5")
    assert "The model `non-existent-embedding-model` does not exist" in str(err)
    assert clock.sleeps == []
    rows = usage_rows(caller.db)
    assert [(r["status"], r["http_status"], r["error_code"], r["cost_nusd"]) for r in rows] == [
        ("error", 404, "model_not_found", 0)]
