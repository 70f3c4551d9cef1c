"""tvdb.session() in hybrid, record and replay mode, secrets, and `import tvdb` (issue 14)."""

from __future__ import annotations

import json
import logging
import re
import subprocess
import sys
from pathlib import Path

import llama_cloud
import numpy as np
import openai
import pytest

import tvdb
from tests.session_support import FAST_POLL, LLX_KEY, OPENAI_KEY, emulator, environ, upload
from tvdb.emulator.config import EmulatorConfig, build_server
from tvdb.errors import CassetteError, CassetteMiss

TEXTS = ["Payment terms: net thirty days.", "The warranty covers parts and labour for two years."]


def test_hybrid_falls_back_to_the_emulator_when_the_service_stops(tmp_path: Path) -> None:
    server = build_server(EmulatorConfig()).start()
    with tvdb.session(mode="hybrid", cwd=tmp_path, environ=environ(server)) as s:
        client = openai.OpenAI(api_key=OPENAI_KEY, base_url=server.openai_base_url, max_retries=0)
        before = [client.embeddings.create(model="text-embedding-3-small", input=t) for t in TEXTS]
        assert server.count() == 2
        server.stop()  # halfway: the service goes away
        after = [client.embeddings.create(model="text-embedding-3-small", input=t) for t in TEXTS]
    assert np.allclose([b.data[0].embedding for b in before], [a.data[0].embedding for a in after], atol=1e-6)
    summary = s.summary()
    real, mock = summary.call("openai", "real"), summary.call("openai", "mock")
    assert real is not None and (real.requests, real.errors) == (4, 2)  # 2 served, 2 refused connections
    assert mock is not None and (mock.requests, mock.errors) == (2, 0)
    assert summary.fallbacks == 2
    s.expect(provenance={"max_fallbacks": 2}, requests=[{"service": "openai", "status": "ok", "min": 4}])
    with pytest.raises(tvdb.ExpectationFailed, match=r"every embed call runs real: 2 of 4 embed calls real"):
        s.expect(provenance={"require_real": ["embed"]})


def test_record_then_replay_with_the_service_stopped(tmp_path: Path, documents_dir: Path,
                                                      monkeypatch: pytest.MonkeyPatch) -> None:
    cassette = tmp_path / "cassettes" / "mine.yaml"
    pdf = documents_dir / "pdflatex-4-pages.pdf"

    def pipeline() -> tuple[list[list[float]], list[str]]:
        parsed = llama_cloud.LlamaCloud(api_key=LLX_KEY, max_retries=0).parsing.parse(
            tier="fast", version="latest", upload_file=upload(pdf), expand=["text"], **FAST_POLL)
        assert parsed.text is not None
        pages = [p.text for p in parsed.text.pages]
        got = openai.OpenAI(api_key=OPENAI_KEY).embeddings.create(model="text-embedding-3-small", input=pages)
        return [d.embedding for d in got.data], pages

    with emulator() as server:
        for name, value in environ(server).items():  # the SDKs and the session read the same environment
            monkeypatch.setenv(name, value)
        with tvdb.session(mode="record", cassette=cassette, cwd=tmp_path) as rec:
            recorded = pipeline()
    monkeypatch.delenv("OPENAI_API_KEY")  # CI has no keys: a replay needs none
    monkeypatch.delenv("LLAMA_CLOUD_API_KEY")
    with tvdb.session(mode="replay", cassette=cassette, cwd=tmp_path) as rep:
        replayed = pipeline()
    assert replayed == recorded
    summary = rep.summary()
    assert summary.spent_usd == 0.0 and summary.replayed == 2
    assert {(c.service, c.implementation) for c in summary.calls} == {("openai", "replay"), ("llamaparse", "replay")}
    assert summary.would_cost_usd == pytest.approx(rec.summary().spent_usd)
    text = cassette.read_text()
    assert OPENAI_KEY not in text and LLX_KEY not in text and "interactions" in text


def test_replay_miss_names_the_request(tmp_path: Path) -> None:
    cassette = tmp_path / "c.yaml"
    with emulator() as server:
        with tvdb.session(mode="record", cassette=cassette, cwd=tmp_path, environ=environ(server)):
            openai.OpenAI(api_key=OPENAI_KEY, base_url=server.openai_base_url).embeddings.create(
                model="text-embedding-3-small", input=TEXTS[0])
    with tvdb.session(mode="replay", cassette=cassette, cwd=tmp_path, environ=environ(server, keys=False)) as s:
        with pytest.raises(CassetteMiss) as missed:
            openai.OpenAI(api_key="sk-x", base_url=server.openai_base_url,
                          default_query={"api-key": OPENAI_KEY}).embeddings.create(
                model="text-embedding-3-small", input=TEXTS[1])
    # which request (method, URL with its secrets scrubbed), that it is not recorded, how to re-record
    first, *_, last = str(missed.value).splitlines()
    assert re.fullmatch(r"replay: POST http://127\.0\.0\.1:\d+/v1/embeddings\?api-key=<SCRUBBED> is not recorded "
                        rf"in {re.escape(str(cassette))} \(1 interactions\)", first), first
    assert last.startswith("The cassette is out of date for this scenario: re-record it with ")
    assert OPENAI_KEY not in str(missed.value)
    [miss] = s.summary().calls
    assert (miss.implementation, miss.errors, miss.spent_usd) == ("replay", 1, 0.0)
    with emulator() as server:  # recording with record_mode once: the cassette exists, so a new request is refused
        with tvdb.session(mode="real", cassette=cassette, record_mode="once", cwd=tmp_path,
                          environ=environ(server)) as once:
            with pytest.raises(CassetteMiss):
                openai.OpenAI(api_key=OPENAI_KEY, base_url=server.openai_base_url, max_retries=0).embeddings.create(
                    model="text-embedding-3-small", input=TEXTS[1])
        assert server.count() == 0
    [refused] = once.summary().calls
    assert (refused.implementation, refused.errors, refused.spent_usd) == ("real", 1, 0.0)  # not assumed spent
    with pytest.raises(CassetteError, match="no such cassette"):
        tvdb.session(mode="replay", cassette=tmp_path / "none.yaml", cwd=tmp_path, environ={}).open()


def test_canary_keys_reach_no_cassette_ledger_or_log(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    cassette = tmp_path / "c.yaml"
    with emulator() as server:
        env = environ(server)
        with tvdb.session(mode="record", cassette=cassette, cwd=tmp_path, environ=env) as s:
            client = openai.OpenAI(api_key=OPENAI_KEY, base_url=server.openai_base_url, max_retries=0)
            client.embeddings.create(model="text-embedding-3-small", input=TEXTS)
            with pytest.raises(openai.AuthenticationError):
                openai.OpenAI(api_key="bad", base_url=server.openai_base_url, max_retries=0).embeddings.create(
                    model="text-embedding-3-small", input="x")
            summary = json.dumps(s.summary().as_dict())
    stored = [cassette.read_bytes(), *(p.read_bytes() for p in (tmp_path / ".tvdb").rglob("*") if p.is_file())]
    for key in (OPENAI_KEY, LLX_KEY):
        assert not any(key.encode() in blob for blob in stored)
        assert key not in caplog.text and key not in summary
        assert key not in repr(s.settings)


def test_import_tvdb_does_no_io_and_imports_no_sdk() -> None:
    code = ("import sys, tvdb; heavy = {'openai', 'httpx', 'httpx2', 'llama_cloud', 'vcr', 'sqlite_utils', "
            "'tiktoken', 'numpy', 'tvdb.sessions.api'}; print(sorted(heavy & set(sys.modules))); "
            "print(sorted(tvdb.__all__)); print(callable(tvdb.session))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.splitlines()
    assert out[0] == "[]"
    assert json.loads(out[1].replace("'", '"')) == sorted(
        ["CallSummary", "ExpectationFailed", "FaultPlan", "HashEmbedder", "Ledger", "LocalParser",
         "PipelineDocument", "ServiceRouter", "Session", "SessionSummary", "emulator", "session"])
    assert out[2] == "True"


def test_emulator_app_serves_sdks_in_process() -> None:
    import httpx2

    emu = tvdb.emulator.app()
    client = openai.OpenAI(api_key="sk-x", base_url="http://emulator/v1", max_retries=0,
                           http_client=httpx2.Client(transport=emu.transport()))
    got = client.embeddings.create(model="text-embedding-3-small", input="hello", dimensions=8)
    assert len(got.data[0].embedding) == 8
    with pytest.raises(openai.AuthenticationError):
        openai.OpenAI(api_key="nope", base_url="http://emulator/v1", max_retries=0,
                      http_client=httpx2.Client(transport=emu.transport())).embeddings.create(
            model="text-embedding-3-small", input="x")


async def test_hybrid_parse_falls_back_and_polls_where_the_job_lives(tmp_path: Path, documents_dir: Path) -> None:
    pdf = documents_dir / "pdflatex-4-pages.pdf"
    server = build_server(EmulatorConfig.model_validate({"parse_per_page_ms": 1, "parse_queue_ms": 1})).start()
    try:
        async with tvdb.session(mode="hybrid", cwd=tmp_path, environ=environ(server)) as s:
            client = llama_cloud.AsyncLlamaCloud(api_key=LLX_KEY, base_url=server.llama_cloud_base_url,
                                                 max_retries=0)
            first = await client.parsing.parse(tier="fast", version="latest", upload_file=upload(pdf),
                                               expand=["text"], **FAST_POLL)
            server.stop()
            second = await client.parsing.parse(tier="fast", version="latest", upload_file=upload(pdf),
                                                expand=["text"], **FAST_POLL)
    finally:
        server.stop()
    assert first.text is not None and second.text is not None
    assert [p.text for p in first.text.pages] == [p.text for p in second.text.pages]
    summary = s.summary()
    real, mock = summary.call("llamaparse", "real"), summary.call("llamaparse", "mock")
    assert real is not None and (real.requests, real.errors, real.credits) == (2, 1, 4.0)
    assert mock is not None and (mock.requests, mock.credits) == (1, 4.0)
    assert summary.fallbacks == 1 and summary.spent_usd == pytest.approx(4 * 1.25 / 1000)


def test_real_with_a_cassette_appends_new_requests_and_replays_known_ones(tmp_path: Path) -> None:
    cassette = tmp_path / "c.yaml"
    with emulator() as server:
        env = environ(server)
        for texts in (TEXTS[:1], TEXTS):
            with tvdb.session(mode="real", cassette=cassette, cwd=tmp_path, environ=env) as s:
                client = openai.OpenAI(api_key=OPENAI_KEY, base_url=server.openai_base_url, max_retries=0)
                for text in texts:
                    client.embeddings.create(model="text-embedding-3-small", input=text)
        assert server.count() == 2  # the first text went out once
    summary = s.summary()
    assert [(c.implementation, c.requests) for c in summary.calls] == [("real", 1), ("replay", 1)]
    assert summary.replayed == 1 and summary.spent_usd is not None and summary.spent_usd > 0
