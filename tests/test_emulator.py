"""The OpenAI emulator, driven by the official SDK over loopback HTTP: every answer is one the SDK accepts,
and every error is the real status, exception class, `code`, `type` and message (contracts.md §1)."""

from __future__ import annotations

import base64
import json
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import openai
import pytest

from tests.openai_support import KEY, MODEL, emulator, text_of_tokens
from tvdb.clock import FakeClock
from tvdb.emulator import bodies
from tvdb.emulator.config import EmulatorConfig, build_server, load_emulator_config
from tvdb.emulator.openai import OpenAIEmulator
from tvdb.emulator.ratelimit import SlidingWindowLimiter
from tvdb.emulator.server import EmulatorServer
from tvdb.errors import ConfigError
from tvdb.http import Client
from tvdb.services.local.embedder import HashEmbedder
from tvdb.tokens import count_tokens

REQUEST_ID = re.compile(r"^req_[0-9a-f]{32}$")


def sdk(server: EmulatorServer, key: str = KEY, **kwargs: object) -> openai.OpenAI:
    return openai.OpenAI(api_key=key, base_url=server.openai_base_url, max_retries=0, **kwargs)  # type: ignore[arg-type]


def raised(fn: object) -> openai.APIStatusError:
    with pytest.raises(openai.APIStatusError) as info:
        fn()  # type: ignore[operator]
    return info.value


# --- success ---------------------------------------------------------------------------------------------


def test_base64_default_decodes_to_hash_embedder_vectors_with_tiktoken_usage() -> None:
    texts = ["hello world", "The quick brown fox jumps over the lazy dog."]
    with emulator() as server:
        raw = sdk(server).embeddings.with_raw_response.create(input=texts, model=MODEL)
        response = raw.parse()
        sent = json.loads(raw.http_request.content)
    assert sent["encoding_format"] == "base64"  # the SDK asks for base64 when the caller does not
    expected = HashEmbedder().embed_texts(texts, 1536)
    got = np.array([d.embedding for d in response.data], dtype=np.float32)
    assert got.shape == (2, 1536)
    assert np.array_equal(got, expected)
    assert [d.index for d in response.data] == [0, 1]
    assert response.usage.prompt_tokens == sum(count_tokens(texts)) == response.usage.total_tokens
    assert response.model == MODEL
    assert REQUEST_ID.match(response._request_id or "")
    assert raw.headers["x-ratelimit-remaining-requests"] == "9999"


def test_float_format_and_dimensions() -> None:
    with emulator() as server:
        response = sdk(server).embeddings.create(input="hello world", model=MODEL, encoding_format="float",
                                                 dimensions=256)
    vector = np.array(response.data[0].embedding)
    assert vector.shape == (256,)
    assert np.allclose(vector, HashEmbedder().embed_texts(["hello world"], 256)[0], atol=1e-7)
    assert abs(np.linalg.norm(vector) - 1) < 1e-5
    assert response.usage.prompt_tokens == 2


def test_explicit_base64_is_little_endian_float32() -> None:
    with emulator() as server:
        response = sdk(server).embeddings.create(input=["a b c"], model=MODEL, encoding_format="base64")
    raw = response.data[0].embedding
    assert isinstance(raw, str) and len(raw) == 8192  # 1536 floats = 6144 bytes = 8192 base64 chars
    assert np.array_equal(np.frombuffer(base64.b64decode(raw), "<f4"), HashEmbedder().embed_texts(["a b c"], 1536)[0])


def test_token_array_inputs_are_counted_by_length() -> None:
    with emulator() as server:
        response = sdk(server).embeddings.create(input=[[15339, 1917]], model=MODEL)  # "hello world"
    assert response.usage.prompt_tokens == 2
    assert np.allclose(response.data[0].embedding, HashEmbedder().embed_texts(["hello world"], 1536)[0])


def test_gzip_bodies_for_clients_that_accept_them() -> None:
    with emulator(gzip_responses=True) as server:
        raw = sdk(server).embeddings.with_raw_response.create(input=["gzip me"], model=MODEL)
    assert raw.headers["content-encoding"] == "gzip"
    assert len(raw.parse().data[0].embedding) == 1536


def test_latency_is_added() -> None:
    with emulator(latency_s=0.2) as server:
        start = time.perf_counter()
        sdk(server).embeddings.create(input="slow", model=MODEL)
        assert time.perf_counter() - start >= 0.2


# --- validation errors: the real status, class, code, type and message -------------------------------------


def test_401_for_a_key_that_is_not_sk_and_the_key_is_never_echoed() -> None:
    key = "canary-not-an-sk-key-5f1e2d3c"
    with emulator() as server:
        e = raised(lambda: sdk(server, key).embeddings.create(input="x", model=MODEL))
    assert isinstance(e, openai.AuthenticationError)
    assert (e.status_code, e.code, e.type) == (401, "invalid_api_key", "invalid_request_error")
    assert e.message.startswith("Error code: 401 - Incorrect API key provided: can")
    assert "You can find your API key at https://platform.openai.com/account/api-keys." in e.message
    assert key not in e.message and key not in str(e.body)
    assert REQUEST_ID.match(e.request_id or "")
    assert e.response.headers["content-type"] == "application/json; charset=utf-8"


def test_401_for_a_missing_key() -> None:
    with emulator() as server:
        e = raised(lambda: sdk(server).embeddings.create(
            input="x", model=MODEL, extra_headers={"Authorization": openai.omit}))  # type: ignore[dict-item]
    assert isinstance(e, openai.AuthenticationError)
    assert (e.status_code, e.code) == (401, "invalid_api_key")
    assert e.body == {"message": bodies.NO_KEY_MESSAGE, "type": "invalid_request_error", "param": None,
                      "code": "invalid_api_key"}


def test_404_unknown_model() -> None:
    with emulator() as server:
        e = raised(lambda: sdk(server).embeddings.create(input="x", model="does-not-exist"))
    assert isinstance(e, openai.NotFoundError)
    assert (e.status_code, e.code, e.type) == (404, "model_not_found", "invalid_request_error")
    assert e.body == {"message": "The model `does-not-exist` does not exist or you do not have access to it.",
                      "type": "invalid_request_error", "param": None, "code": "model_not_found"}


@pytest.mark.parametrize("inputs", [["a"] * 2049, [""], ["ok", ""], []], ids=["2049", "empty", "one-empty", "none"])
def test_400_input_is_invalid(inputs: list[str]) -> None:
    with emulator() as server:
        e = raised(lambda: sdk(server).embeddings.create(input=inputs, model=MODEL))
    assert isinstance(e, openai.BadRequestError)
    assert (e.status_code, e.code, e.type) == (400, None, "invalid_request_error")
    assert e.body["message"] == (  # type: ignore[index]
        "'$.input' is invalid. Please check the API reference: https://platform.openai.com/docs/api-reference.")


def test_2048_inputs_are_accepted() -> None:
    with emulator() as server:
        response = sdk(server).embeddings.create(input=["a"] * 2048, model=MODEL, dimensions=8)
    assert len(response.data) == 2048


def test_c06_8191_and_8192_tokens_pass_9000_gets_the_real_400() -> None:
    with emulator() as server:
        client = sdk(server)
        ok = client.embeddings.create(input=[text_of_tokens(8191), text_of_tokens(8192)], model=MODEL, dimensions=8)
        e = raised(lambda: client.embeddings.create(input=["short", text_of_tokens(9000)], model=MODEL))
    assert ok.usage.prompt_tokens == 8191 + 8192
    assert isinstance(e, openai.BadRequestError)
    assert (e.status_code, e.code, e.type) == (400, None, "invalid_request_error")
    assert e.body["message"] == (  # type: ignore[index]
        "This model's maximum context length is 8192 tokens, however you requested 9000 tokens "
        "(9000 in your prompt; 0 for the completion). Please reduce your prompt; or completion length.")


def test_400_over_300k_tokens_per_request() -> None:
    texts = [text_of_tokens(8190)] * 37  # 303,030 tokens
    with emulator() as server:
        e = raised(lambda: sdk(server).embeddings.create(input=texts, model=MODEL))
    assert isinstance(e, openai.BadRequestError)
    assert (e.status_code, e.code, e.type) == (400, "max_tokens_per_request", "max_tokens_per_request")
    assert e.body["message"] == "Requested 303030 tokens, max 300000 tokens per request"  # type: ignore[index]


def test_400_dimensions_on_ada() -> None:
    with emulator() as server:
        e = raised(lambda: sdk(server).embeddings.create(input="x", model="text-embedding-ada-002", dimensions=256))
    assert isinstance(e, openai.BadRequestError)
    assert (e.status_code, e.code, e.type) == (400, None, "invalid_request_error")
    assert e.body["message"] == "This model does not support specifying dimensions."  # type: ignore[index]


def test_400_for_a_body_that_is_not_json_and_404_for_an_unknown_route() -> None:
    with emulator() as server, Client() as http:
        bad = http.post(server.openai_base_url + "/embeddings", content=b"{not json",
                        headers={"Authorization": f"Bearer {KEY}", "Content-Type": "application/json"})
        unknown = http.get(server.openai_base_url + "/files")
    assert bad.status_code == 400 and bad.json()["error"]["message"].startswith("We could not parse the JSON body")
    assert unknown.status_code == 404
    assert unknown.json()["error"]["message"] == "Invalid URL (GET /v1/files)"
    assert REQUEST_ID.match(bad.headers["x-request-id"]) and REQUEST_ID.match(unknown.headers["x-request-id"])


def test_models_list_is_the_free_authenticated_health_endpoint() -> None:
    with emulator(faults=[{"service": "openai", "kind": "status", "status": 503}]) as server, Client() as http:
        ok = http.get(server.openai_base_url + "/models", headers={"Authorization": f"Bearer {KEY}"})
        refused = http.get(server.openai_base_url + "/models", headers={"Authorization": "Bearer nope"})
        assert server.count() == 0  # not an embeddings call: the fault plan's counters are untouched
    assert ok.status_code == 200 and ok.json()["object"] == "list"
    assert {m["id"] for m in ok.json()["data"]} >= {"text-embedding-3-small", "text-embedding-3-large"}
    assert refused.status_code == 401 and refused.json()["error"]["code"] == "invalid_api_key"
    assert REQUEST_ID.match(ok.headers["x-request-id"])


# --- rate limits -------------------------------------------------------------------------------------------


def test_rpm_window_429_with_headers_then_recovers_after_the_window() -> None:
    clock = FakeClock()
    with emulator(rpm=2, clock=clock.monotonic) as server:
        client = sdk(server)
        first = client.embeddings.with_raw_response.create(input="one", model=MODEL)
        clock.advance(10)
        second = client.embeddings.with_raw_response.create(input="two", model=MODEL)
        e = raised(lambda: client.embeddings.create(input="three", model=MODEL))
        clock.advance(50.001)  # the first request leaves the window
        client.embeddings.create(input="four", model=MODEL)
    assert [r.headers["x-ratelimit-remaining-requests"] for r in (first, second)] == ["1", "0"]
    assert first.headers["x-ratelimit-limit-requests"] == "2"
    assert first.headers["x-ratelimit-reset-requests"] == "1m0s"
    assert isinstance(e, openai.RateLimitError)
    assert (e.status_code, e.code, e.type) == (429, "rate_limit_exceeded", "requests")
    assert (e.response.headers["retry-after"], e.response.headers["retry-after-ms"]) == ("50", "50000")
    assert e.message == (
        "Error code: 429 - Rate limit reached for text-embedding-3-small in organization org-tvdbemulator on "
        "requests per min (RPM): Limit 2, Used 2, Requested 1. Please try again in 50s. "
        "Visit https://platform.openai.com/account/rate-limits to learn more.")


def test_tpm_window_429_type_tokens() -> None:
    clock = FakeClock()
    with emulator(tpm=10, clock=clock.monotonic) as server:
        client = sdk(server)
        ok = client.embeddings.with_raw_response.create(input=text_of_tokens(6), model=MODEL)
        e = raised(lambda: client.embeddings.create(input=text_of_tokens(6), model=MODEL))
    assert ok.headers["x-ratelimit-remaining-tokens"] == "4"
    assert isinstance(e, openai.RateLimitError)
    assert (e.status_code, e.code, e.type) == (429, "rate_limit_exceeded", "tokens")
    assert "on tokens per min (TPM): Limit 10, Used 6, Requested 6." in e.message


def test_limiter_remaining_decreases_and_refusals_do_not_count() -> None:
    clock = FakeClock()
    limiter = SlidingWindowLimiter(rpm=3, tpm=None, clock=clock.monotonic)
    seen = [limiter.admit(5).headers["x-ratelimit-remaining-requests"] for _ in range(3)]
    refused = limiter.admit(5)
    assert seen == ["2", "1", "0"]
    assert not refused.admitted and refused.retry_after == 60.0
    clock.advance(60)
    assert limiter.admit(5).admitted


# --- faults served by the emulator -------------------------------------------------------------------------


def test_quota_fault_is_the_real_insufficient_quota_429() -> None:
    with emulator(faults=[{"service": "openai", "kind": "status", "status": 429,
                           "type": "insufficient_quota"}]) as server:
        e = raised(lambda: sdk(server).embeddings.create(input="x", model=MODEL))
    assert isinstance(e, openai.RateLimitError)
    assert (e.status_code, e.code, e.type) == (429, "insufficient_quota", "insufficient_quota")
    assert e.body["message"] == bodies.QUOTA_MESSAGE  # type: ignore[index]
    assert "You exceeded your current quota" in e.message


@pytest.mark.parametrize(("status", "message"), [(500, bodies.SERVER_ERROR_MESSAGE), (503, bodies.OVERLOADED_MESSAGE)])
def test_5xx_faults(status: int, message: str) -> None:
    with emulator(faults=[{"service": "openai", "kind": "status", "status": status, "nth": 1}]) as server:
        client = sdk(server)
        e = raised(lambda: client.embeddings.create(input="x", model=MODEL))
        after = client.embeddings.create(input="x", model=MODEL)  # nth: 1 only
    assert isinstance(e, openai.InternalServerError)
    assert (e.status_code, e.code, e.type) == (status, None, "server_error")
    assert e.body["message"] == message  # type: ignore[index]
    assert len(after.data) == 1


def test_rate_limit_fault_carries_retry_after_that_the_sdk_honours() -> None:
    with emulator(faults=[{"service": "openai", "kind": "status", "status": 429, "retry_after": 0.05,
                           "nth": 1}]) as server:
        response = openai.OpenAI(api_key=KEY, base_url=server.openai_base_url, max_retries=1).embeddings.create(
            input="x", model=MODEL)
        assert server.count() == 2
    assert len(response.data) == 1


def test_timeout_disconnect_and_malformed_faults() -> None:
    faults = [{"service": "openai", "kind": "timeout", "latency_s": 2.0, "nth": 1},
              {"service": "openai", "kind": "disconnect", "nth": 2},
              {"service": "openai", "kind": "malformed_body", "nth": 3}]
    with emulator(faults=faults) as server:
        client = sdk(server, timeout=0.3)
        with pytest.raises(openai.APITimeoutError):
            client.embeddings.create(input="x", model=MODEL)
        with pytest.raises(openai.APIConnectionError):
            client.embeddings.create(input="x", model=MODEL)
        with Client() as http:
            bad = http.post(server.openai_base_url + "/embeddings", json={"model": MODEL, "input": ["x"]},
                            headers={"Authorization": f"Bearer {KEY}"})
        assert bad.status_code == 200
        with pytest.raises(ValueError):
            json.loads(bad.content)
        assert len(client.embeddings.create(input="x", model=MODEL).data) == 1


def test_bad_vector_faults_nan_and_wrong_dimension() -> None:
    faults = [{"service": "openai", "kind": "bad_vector", "vector": "nan", "nth": 1},
              {"service": "openai", "kind": "bad_vector", "vector": "wrong_dimension", "nth": 2}]
    with emulator(faults=faults) as server:
        client = sdk(server)
        nan = client.embeddings.create(input=["a", "b"], model=MODEL)
        short = client.embeddings.create(input=["a", "b"], model=MODEL)
    assert np.isnan(nan.data[0].embedding[0]) and not np.isnan(nan.data[1].embedding).any()
    assert [len(d.embedding) for d in short.data] == [1535, 1535]


# --- config file and CLI ------------------------------------------------------------------------------------


def test_config_file_applies_faults_server_side(tmp_path: Path) -> None:
    path = tmp_path / "emulator.yaml"
    path.write_text("rpm: 100\nlatency_ms: 1\nfaults:\n"
                    "  - {service: openai, kind: status, status: 429, type: insufficient_quota, nth: 2}\n")
    config = load_emulator_config(path)
    assert config == EmulatorConfig(rpm=100, latency_ms=1, faults=config.faults)
    with build_server(config) as server:
        client = sdk(server)
        client.embeddings.create(input="x", model=MODEL)
        e = raised(lambda: client.embeddings.create(input="x", model=MODEL))
    assert e.code == "insufficient_quota"


def test_config_file_errors_name_file_line_and_key(tmp_path: Path) -> None:
    path = tmp_path / "emulator.yaml"
    path.write_text("rpm: 10\nfaults:\n  - service: openai\n    kind: status\n")
    with pytest.raises(ConfigError, match=r"emulator.yaml:3: faults\[0\]: .*needs `status`"):
        load_emulator_config(path)
    path.write_text("rpm: 10\nburst: 3\n")
    with pytest.raises(ConfigError, match=r"emulator.yaml:2: burst: unknown key 'burst' \(allowed: rpm"):
        load_emulator_config(path)


def test_emulator_handles_concurrent_clients_on_keep_alive_connections() -> None:
    with emulator() as server:
        client = sdk(server)
        for _ in range(3):
            client.embeddings.create(input="x", model=MODEL)
        assert server.count() == 3
        assert all(r.headers["connection"] == "keep-alive" for r in server.requests)


def test_cli_prints_the_base_url_and_stops_on_ctrl_c() -> None:
    proc = subprocess.Popen([sys.executable, "-m", "tvdb", "emulate", "--port", "0", "--rpm", "7"],
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        assert proc.stdout is not None
        lines = [proc.stdout.readline() for _ in range(3)]
        match = re.search(r"^export OPENAI_BASE_URL=(http://127\.0\.0\.1:\d+/v1)$", lines[1].strip())
        assert match, lines
        client = openai.OpenAI(api_key=KEY, base_url=match.group(1), max_retries=0)
        raw = client.embeddings.with_raw_response.create(input="cli", model=MODEL)
        assert raw.headers["x-ratelimit-limit-requests"] == "7"
        parse_url = re.search(r"^export LLAMA_CLOUD_BASE_URL=(http://127\.0\.0\.1:\d+)$", lines[2].strip())
        assert parse_url and parse_url.group(1) + "/v1" == match.group(1), lines
        from llama_cloud import LlamaCloud

        jobs = LlamaCloud(api_key="llx-fake-test", base_url=parse_url.group(1), max_retries=0).parsing.list()
        assert list(jobs) == []
    finally:
        proc.send_signal(signal.SIGINT)
        out, _ = proc.communicate(timeout=10)
    assert proc.returncode == 0 and "stopped" in out


def test_emulator_service_can_be_driven_without_http() -> None:
    from tvdb.emulator.base import EmulatorRequest

    service = OpenAIEmulator()
    reply = service.handle(EmulatorRequest("POST", "/v1/embeddings", {"authorization": f"Bearer {KEY}"},
                                           json.dumps({"model": MODEL, "input": "x"}).encode()))
    assert reply.status == 200 and json.loads(reply.body)["usage"] == {"prompt_tokens": 1, "total_tokens": 1}


def test_memo_gives_the_same_answers_and_stays_bounded() -> None:
    from tvdb.emulator.base import EmulatorRequest
    from tvdb.emulator.memo import Memo

    def ask(service: OpenAIEmulator, texts: list[str], fmt: str) -> dict[str, object]:
        body = json.dumps({"model": MODEL, "input": texts, "encoding_format": fmt, "dimensions": 64}).encode()
        reply = service.handle(EmulatorRequest("POST", "/v1/embeddings", {"authorization": f"Bearer {KEY}"}, body))
        return json.loads(reply.body)  # type: ignore[no-any-return]

    plain, memo = OpenAIEmulator(), OpenAIEmulator(memo_entries=2)
    texts = ["one text", "two texts", "three texts here"]
    for fmt in ("base64", "float", "base64"):
        assert ask(memo, texts, fmt) == ask(plain, texts, fmt)
    memo.prime(["primed text"], MODEL, 64)
    assert ask(memo, ["primed text"], "float") == ask(plain, ["primed text"], "float")

    calls: list[list[int]] = []
    lru = Memo(2)
    for keys in (["a", "b"], ["a", "c"], ["b"]):
        lru.many(keys, lambda miss, keys=keys: calls.append(miss) or [k.upper() for k in (keys[i] for i in miss)])
    assert calls == [[0, 1], [1], [0]]  # "b" was evicted by "c" (least recently used)


def test_400_for_an_unknown_request_argument() -> None:
    with emulator() as server:
        e = raised(lambda: sdk(server).embeddings.create(input="x", model=MODEL, extra_body={"temperature": 0}))
    assert isinstance(e, openai.BadRequestError)
    assert (e.status_code, e.code, e.type) == (400, None, "invalid_request_error")
    assert e.body["message"] == "Unrecognized request argument supplied: temperature"  # type: ignore[index]
