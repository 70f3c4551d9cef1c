"""tvdb.session(): the official SDKs through a session, in mock and real mode (issue 14)."""

from __future__ import annotations

import asyncio
import socket
import sqlite3
from pathlib import Path
from typing import Any

import httpx
import httpx2
import llama_cloud
import openai
import pytest

import tvdb
from tests.session_support import FAST_POLL, OPENAI_KEY, emulator, environ, upload
from tvdb.errors import ConfigError, CostLimitExceeded, PriceUnknownError
from tvdb.tokens import count_tokens

TEXTS = ["The quick brown fox jumps over the lazy dog.", "Invoices are due within thirty days."]


def usage_rows(tmp_path: Path, run_id: str) -> list[dict[str, Any]]:
    db = sqlite3.connect(tmp_path / ".tvdb" / "tvdb.db")
    db.row_factory = sqlite3.Row
    try:
        return [dict(r) for r in db.execute("SELECT * FROM usage WHERE run_id = ? ORDER BY id", [run_id])]
    finally:
        db.close()


@pytest.fixture
def no_sockets(monkeypatch: pytest.MonkeyPatch) -> list[Any]:
    """Records (and refuses) every outgoing IP connection."""
    seen: list[Any] = []
    real = socket.socket.connect

    def connect(self: socket.socket, address: Any) -> Any:
        if self.family == socket.AF_UNIX:
            return real(self, address)
        seen.append(address)
        raise OSError("test: no sockets in mock mode")

    monkeypatch.setattr(socket.socket, "connect", connect)
    return seen


def test_mock_mode_answers_the_openai_sdk_in_process(tmp_path: Path, no_sockets: list[Any]) -> None:
    with tvdb.session(mode="mock", cwd=tmp_path, environ={}) as s:
        client = openai.OpenAI(api_key="not-a-real-key")
        got = client.embeddings.create(model="text-embedding-3-small", input=TEXTS)
        local = tvdb.HashEmbedder().embed_texts(TEXTS, 1536)
    assert no_sockets == []
    assert [len(d.embedding) for d in got.data] == [1536, 1536]
    assert got.data[1].embedding == pytest.approx(list(local[1]), abs=1e-6)
    tokens = sum(count_tokens(TEXTS))
    assert got.usage.prompt_tokens == tokens
    summary = s.summary()
    call = summary.call("openai", "mock")
    assert call is not None and (call.requests, call.errors, call.tokens, call.spent_usd) == (1, 0, tokens, 0.0)
    assert summary.spent_usd == 0.0
    assert summary.would_cost_usd == pytest.approx(tokens * 0.02 / 1e6)
    [row] = usage_rows(tmp_path, s.run_id)
    assert (row["service"], row["implementation"], row["stage"], row["units"]) == ("openai", "mock", "embed", tokens)
    assert row["provenance"] == "set by tvdb.session(mode='mock')"


async def test_async_sdk_and_async_with(tmp_path: Path, no_sockets: list[Any]) -> None:
    async with tvdb.session(mode="mock", cwd=tmp_path, environ={}) as s:
        client = openai.AsyncOpenAI(api_key="sk-anything")
        got = await asyncio.gather(*(client.embeddings.create(model="text-embedding-3-small", input=t)
                                     for t in TEXTS))
    assert no_sockets == []
    assert [len(g.data[0].embedding) for g in got] == [1536, 1536]
    assert s.summary().requests == 2


def test_mock_llama_cloud_parse_and_embed(tmp_path: Path, documents_dir: Path, no_sockets: list[Any]) -> None:
    pdf = documents_dir / "pdflatex-4-pages.pdf"
    with tvdb.session(mode="mock", cwd=tmp_path, environ={}) as s:
        parsed = llama_cloud.LlamaCloud(api_key="llx-x", max_retries=0).parsing.parse(
            tier="cost_effective", version="latest", upload_file=upload(pdf), expand=["text"], **FAST_POLL)
    assert no_sockets == []
    assert parsed.job.status == "COMPLETED" and parsed.text is not None and len(parsed.text.pages) == 4
    call = s.summary().call("llamaparse", "mock")
    assert call is not None and (call.requests, call.pages, call.credits) == (1, 4.0, 12.0)
    assert call.would_cost_usd == pytest.approx(12 * 1.25 / 1000)
    [row] = usage_rows(tmp_path, s.run_id)
    assert (row["model"], row["stage"], row["status"]) == ("cost_effective", "parse", "ok")


def test_real_mode_meters_the_emulator_usage_and_settles(tmp_path: Path) -> None:
    with emulator() as server, tvdb.session(mode="real", cwd=tmp_path, environ=environ(server)) as s:
        client = openai.OpenAI(api_key=OPENAI_KEY, base_url=server.openai_base_url)
        got = client.embeddings.create(model="text-embedding-3-small", input=TEXTS)
        assert server.count() == 1
    [row] = usage_rows(tmp_path, s.run_id)
    assert row["implementation"] == "real" and row["units"] == got.usage.prompt_tokens
    assert row["cost_usd"] == pytest.approx(got.usage.prompt_tokens * 0.02 / 1e6)
    assert row["request_id"] and row["reservation_id"]
    assert "OpenAI API at http://127.0.0.1" in row["provenance"]
    db = sqlite3.connect(tmp_path / ".tvdb" / "tvdb.db")
    assert db.execute("SELECT status FROM reservations").fetchall() == [("settled",)]
    summary = s.summary()
    assert summary.spent_usd == pytest.approx(row["cost_usd"]) and summary.spent_usd == summary.would_cost_usd


def test_real_mode_budget_refuses_before_the_request(tmp_path: Path) -> None:
    with emulator() as server, tvdb.session(mode="real", cwd=tmp_path, environ=environ(server),
                                            daily_budget_usd=0.0) as s:
        client = openai.OpenAI(api_key=OPENAI_KEY, base_url=server.openai_base_url, max_retries=0)
        with pytest.raises(CostLimitExceeded, match="daily"):
            client.embeddings.create(model="text-embedding-3-small", input=TEXTS)
        assert server.count() == 0
    assert usage_rows(tmp_path, s.run_id) == []


def test_sdk_errors_are_the_sdks_own_classes(tmp_path: Path, documents_dir: Path) -> None:
    faults = [{"service": "openai", "kind": "status", "status": 429, "nth": 2, "retry_after": 0}]
    with emulator() as server, tvdb.session(mode="real", cwd=tmp_path, environ=environ(server), faults=faults) as s:
        bad_key = openai.OpenAI(api_key="not-sk", base_url=server.openai_base_url, max_retries=0)
        with pytest.raises(openai.AuthenticationError) as auth:
            bad_key.embeddings.create(model="text-embedding-3-small", input=TEXTS)
        client = openai.OpenAI(api_key=OPENAI_KEY, base_url=server.openai_base_url, max_retries=0)
        with pytest.raises(openai.RateLimitError) as limited:
            client.embeddings.create(model="text-embedding-3-small", input=TEXTS)
        with pytest.raises(PriceUnknownError, match="no-such-model"):  # never reserved at $0, never sent
            client.embeddings.create(model="no-such-model", input=TEXTS)
        lc = llama_cloud.LlamaCloud(api_key="bad", base_url=server.llama_cloud_base_url, max_retries=0)
        with pytest.raises(llama_cloud.AuthenticationError) as lc_auth:
            lc.parsing.parse(tier="fast", version="latest", expand=["text"],
                             upload_file=upload(documents_dir / "pdflatex-4-pages.pdf"))
        assert server.count() == 1  # the 429 is the fault plan's, the unknown model was never sent
    assert (auth.value.status_code, auth.value.code) == (401, "invalid_api_key")
    assert (limited.value.status_code, limited.value.code) == (429, "rate_limit_exceeded")
    assert lc_auth.value.status_code == 401
    rows = usage_rows(tmp_path, s.run_id)
    assert [(r["service"], r["status"], r["http_status"]) for r in rows] == [
        ("openai", "error", 401), ("openai", "error", 429), ("llamaparse", "error", 401)]
    db = sqlite3.connect(tmp_path / ".tvdb" / "tvdb.db")
    assert {r[0] for r in db.execute("SELECT status FROM reservations")} == {"released"}


def test_connection_refused_raises_the_sdks_connection_error(tmp_path: Path) -> None:
    with emulator() as server:
        url = server.openai_base_url
    with tvdb.session(mode="real", cwd=tmp_path, environ=environ(None, OPENAI_BASE_URL=url)) as s:
        client = openai.OpenAI(api_key=OPENAI_KEY, base_url=url, max_retries=0)
        with pytest.raises(openai.APIConnectionError):
            client.embeddings.create(model="text-embedding-3-small", input=TEXTS)
    [row] = usage_rows(tmp_path, s.run_id)
    assert (row["status"], row["error_code"], row["assumed"]) == ("error", "ServiceUnavailableError", 0)


def test_other_hosts_and_paths_pass_through_untouched(tmp_path: Path) -> None:
    with emulator() as other, tvdb.session(mode="mock", cwd=tmp_path, environ={}) as s:
        # not the configured OpenAI host: the request reaches the other server as it is
        got = httpx2.get(other.base_url + "/v1/models", headers={"authorization": "Bearer sk-x"})
        legacy = httpx.get(other.base_url + "/api/v2/parse/versions", headers={"authorization": "Bearer llx-x"})
        assert other.count("GET /v1/models") == 1 and other.count("GET /api/v2/parse/versions") == 1
    assert got.status_code == 200 and legacy.status_code == 200
    assert s.summary().calls == ()


def test_block_network_refuses_other_requests(tmp_path: Path) -> None:
    with emulator() as other, tvdb.session(mode="mock", cwd=tmp_path, environ={}, block_network=True):
        with pytest.raises(httpx2.ConnectError, match="block_network"):
            httpx2.get(other.base_url + "/v1/models")
        with pytest.raises(httpx.ConnectError, match="block_network"):
            httpx.get(other.base_url + "/v1/models")
        openai.OpenAI(api_key="x").embeddings.create(model="text-embedding-3-small", input="still served")
        assert other.count("GET /v1/models") == 0


def test_transports_are_restored_and_sessions_do_not_nest(tmp_path: Path) -> None:
    before = (httpx2.HTTPTransport.handle_request, httpx.AsyncHTTPTransport.handle_async_request)
    with tvdb.session(mode="mock", cwd=tmp_path, environ={}):
        assert httpx2.HTTPTransport.handle_request is not before[0]
        with pytest.raises(ConfigError, match="do not nest"):
            tvdb.session(mode="mock", cwd=tmp_path, environ={}).open()
    assert (httpx2.HTTPTransport.handle_request, httpx.AsyncHTTPTransport.handle_async_request) == before


def test_bad_arguments_are_config_errors(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="expected one of mock, real, hybrid, record, replay"):
        tvdb.session(mode="fake")
    with pytest.raises(ConfigError, match="needs cassette=PATH"):
        tvdb.session(mode="replay")
    with pytest.raises(ConfigError, match=r"faults\[0"):
        tvdb.session(mode="mock", faults=[{"service": "openai", "kind": "nope"}], cwd=tmp_path, environ={})


def test_unchanged_code_without_keys_runs_in_mock_mode(tmp_path: Path, no_sockets: list[Any]) -> None:
    import os

    assert "OPENAI_API_KEY" not in os.environ
    with tvdb.session(mode="mock", cwd=tmp_path, environ={}):
        got = openai.OpenAI().embeddings.create(model="text-embedding-3-small", input="no key needed")
        llama_cloud.LlamaCloud(max_retries=0).parsing.list()
        assert os.environ["OPENAI_API_KEY"] == "sk-tvdb-placeholder"
    assert len(got.data[0].embedding) == 1536
    assert "OPENAI_API_KEY" not in os.environ and "LLAMA_CLOUD_API_KEY" not in os.environ
    with emulator() as server, tvdb.session(mode="real", cwd=tmp_path, environ=environ(server, keys=False)):
        assert "OPENAI_API_KEY" not in os.environ  # real mode: the SDK's own missing-key error stays
