"""tvdb.session(): scenarios, budgets, tagging, explicit clients, real parse billing (issue 14)."""

from __future__ import annotations

import asyncio
import sqlite3
from pathlib import Path
from typing import Any

import httpx2
import openai
import pytest

import tvdb
from tests.session_support import FAST_POLL, LLX_KEY, OPENAI_KEY, emulator, environ, upload
from tvdb.errors import ConfigError, CostLimitExceeded

TEXTS = ["Section 4.2: termination for convenience.", "Schedule B lists the service levels."]


def rows(tmp_path: Path, run_id: str) -> list[dict[str, Any]]:
    db = sqlite3.connect(tmp_path / ".tvdb" / "tvdb.db")
    db.row_factory = sqlite3.Row
    try:
        return [dict(r) for r in db.execute("SELECT * FROM usage WHERE run_id = ? ORDER BY id", [run_id])]
    finally:
        db.close()


def test_scenario_file_sets_mode_faults_and_name(tmp_path: Path, documents_dir: Path) -> None:
    scenario = tmp_path / "scenarios" / "mine.yaml"
    scenario.parent.mkdir()
    scenario.write_text(f"name: my-pipeline\nmode: mock\ndocuments: [{documents_dir / 'pdflatex-4-pages.pdf'}]\n"
                        "faults:\n  - {service: openai, kind: status, status: 500, nth: 1}\n")
    with tvdb.session(scenario="mine", cwd=tmp_path, environ={}) as s:
        client = openai.OpenAI(api_key="sk-x", max_retries=1)
        client.embeddings.create(model="text-embedding-3-small", input=TEXTS)  # a 500, then the SDK's retry
    assert s.mode == "mock" and s.scenario == "my-pipeline"
    got = [(r["scenario"], r["status"], r["http_status"], r["attempt"]) for r in rows(tmp_path, s.run_id)]
    assert got == [("my-pipeline", "error", 500, 1), ("my-pipeline", "ok", 200, 2)]
    assert s.expect(requests=[{"service": "openai", "retries": True, "min": 1, "max": 1}])[0].passed
    with pytest.raises(tvdb.ExpectationFailed, match=r"openai requests with status error ≤ 0: got 1"):
        s.expect(requests=[{"service": "openai", "status": "error", "max": 0}])
    with pytest.raises(ConfigError, match="Session.expect"):
        s.expect(requests=[{"service": "pinecone"}])


def test_scope_tags_rows_per_thread_and_task(tmp_path: Path) -> None:
    async def main(s: tvdb.Session) -> None:
        client = openai.AsyncOpenAI(api_key="sk-x")

        async def one(doc: str) -> None:
            with s.scope(correlation_id=doc, job_id=f"job-{doc}"):
                await client.embeddings.create(model="text-embedding-3-small", input=doc)

        await asyncio.gather(*(one(d) for d in ("a", "b", "c")))
        with s.scope(stage="query"):
            await client.embeddings.create(model="text-embedding-3-small", input="the query")

    with tvdb.session(mode="mock", cwd=tmp_path, environ={}, run_id="my-run-1") as s:
        asyncio.run(main(s))
    got = {(r["correlation_id"], r["job_id"], r["stage"]) for r in rows(tmp_path, "my-run-1")}
    assert got == {("a", "job-a", "embed"), ("b", "job-b", "embed"), ("c", "job-c", "embed"), (None, None, "query")}


def test_run_budget_refuses_in_real_mode_and_hybrid_falls_back(tmp_path: Path) -> None:
    with emulator() as server:
        env = environ(server)
        with tvdb.session(mode="real", cwd=tmp_path, environ=env, run_budget_usd=1e-7) as s:
            client = openai.OpenAI(api_key=OPENAI_KEY, base_url=server.openai_base_url, max_retries=0)
            with pytest.raises(CostLimitExceeded, match=r"run session-.* budget \$0.0000001 would be exceeded"):
                client.embeddings.create(model="text-embedding-3-small", input=TEXTS[0])  # 10 tokens: $2e-7
        assert s.summary().calls == ()  # refused before sending: no request, no row
    assert server.count() == 0
    with emulator() as server:
        with tvdb.session(mode="hybrid", cwd=tmp_path, environ=environ(server), run_budget_usd=1e-7) as h:
            client = openai.OpenAI(api_key=OPENAI_KEY, base_url=server.openai_base_url, max_retries=0)
            got = client.embeddings.create(model="text-embedding-3-small", input=TEXTS[0])
        assert server.count() == 0
    assert len(got.data[0].embedding) == 1536
    [row] = rows(tmp_path, h.run_id)
    assert (row["implementation"], row["provenance"]) == ("mock", "run budget $1e-07 reached")


def test_real_parse_is_billed_at_the_jobs_credits(tmp_path: Path, documents_dir: Path) -> None:
    import llama_cloud

    pdf = documents_dir / "pdflatex-4-pages.pdf"
    with emulator() as server, tvdb.session(mode="real", cwd=tmp_path, environ=environ(server)) as s:
        client = llama_cloud.LlamaCloud(api_key=LLX_KEY, base_url=server.llama_cloud_base_url, max_retries=0)
        parsed = client.parsing.parse(tier="agentic", version="latest", upload_file=upload(pdf),
                                      page_ranges={"target_pages": "1-2"}, expand=["text"], **FAST_POLL)
        assert s.summary().pending_jobs == 0
    assert parsed.job.usage is not None and parsed.job.usage.credits == 20.0
    [row] = rows(tmp_path, s.run_id)
    # reserved at the file's 4 pages, billed at the 2 pages the job's credits say
    assert (row["units"], row["credits"], row["model"], row["implementation"]) == (2.0, 20.0, "agentic", "real")
    assert row["cost_usd"] == pytest.approx(20 * 1.25 / 1000)
    db = sqlite3.connect(tmp_path / ".tvdb" / "tvdb.db")
    assert db.execute("SELECT amount_nusd, settled_nusd, status FROM reservations").fetchall() == [
        (50_000_000, 25_000_000, "settled")]


def test_explicit_clients_without_patching(tmp_path: Path, documents_dir: Path) -> None:
    before = httpx2.HTTPTransport.handle_request
    with tvdb.session(mode="mock", cwd=tmp_path, environ={}, intercept=False) as s:
        assert httpx2.HTTPTransport.handle_request is before
        sync = s.openai_client().embeddings.create(model="text-embedding-3-small", input=TEXTS)

        async def run() -> Any:
            return await s.async_openai_client().embeddings.create(model="text-embedding-3-small", input=TEXTS)

        async_got = asyncio.run(run())
        parsed = s.llama_cloud_client(max_retries=0).parsing.parse(
            tier="fast", version="latest", upload_file=upload(documents_dir / "pdflatex-4-pages.pdf"),
            expand=["text"], **FAST_POLL)
        raw = httpx2.Client(transport=s.http_transport())  # kept past the block: it must then refuse
        answer = raw.post("https://api.openai.com/v1/embeddings", headers={"authorization": "Bearer x"},
                          json={"model": "text-embedding-3-small", "input": "raw", "encoding_format": "float"})
    assert [d.embedding for d in sync.data] == [d.embedding for d in async_got.data]
    assert parsed.job.status == "COMPLETED"
    assert len(answer.json()["data"][0]["embedding"]) == 1536
    summary = s.summary()
    assert [(c.service, c.requests) for c in summary.calls] == [("llamaparse", 1), ("openai", 3)]
    with pytest.raises(ConfigError, match="not open"):
        s.openai_client()
    with pytest.raises(ConfigError, match="tvdb.session that is closed"):
        raw.post("https://api.openai.com/v1/embeddings", json={"model": "m", "input": "x"})


def test_real_mode_client_without_key_names_the_variable(tmp_path: Path) -> None:
    with emulator() as server, tvdb.session(mode="real", cwd=tmp_path, environ=environ(server, keys=False)) as s:
        with pytest.raises(ConfigError, match="OPENAI_API_KEY"):
            s.openai_client()


def test_concurrent_real_requests_stay_within_the_daily_budget(tmp_path: Path) -> None:
    # each request reserves ~10 tokens at $0.02/1M: a budget of 5 such requests admits 5, refuses the rest
    texts = [f"document number {i} of the batch" for i in range(12)]
    with emulator() as server:
        with tvdb.session(mode="real", cwd=tmp_path, environ=environ(server), daily_budget_usd=7 * 20e-9 * 5) as s:
            client = openai.AsyncOpenAI(api_key=OPENAI_KEY, base_url=server.openai_base_url, max_retries=0)

            async def one(t: str) -> str:
                try:
                    await client.embeddings.create(model="text-embedding-3-small", input=t)
                    return "ok"
                except CostLimitExceeded:
                    return "refused"

            async def all_of() -> list[str]:
                return list(await asyncio.gather(*(one(t) for t in texts)))

            outcomes = asyncio.run(all_of())
        sent = server.count()
    summary = s.summary()
    assert outcomes.count("ok") == sent and sent == summary.requests
    assert summary.spent_usd is not None and summary.spent_usd <= 7 * 20e-9 * 5
    assert outcomes.count("refused") > 0


def test_resolved_settings_with_arguments_on_top(tmp_path: Path) -> None:
    from tvdb.config import resolve_settings

    settings = resolve_settings(cwd=tmp_path, environ={"TVDB_MODE": "real", "TVDB_DATA_DIR": str(tmp_path / ".tvdb")})
    s = tvdb.session(settings=settings, mode="mock", run_budget_usd=0.5, services={"parser": "hybrid"})
    assert (s.mode, s.settings.mode, s.settings.budget.max_usd, s.settings.services.parser) == (
        "mock", "mock", 0.5, "hybrid")
    assert s.settings.origin_of("mode") == "set by tvdb.session(mode='mock')"
    with pytest.raises(ConfigError, match="services are parser and embedder"):
        tvdb.session(settings=settings, services={"vectorstore": "mock"})
    with pytest.raises(ConfigError, match="daily_budget_usd"):
        tvdb.session(settings=settings, daily_budget_usd=-1)


def test_ledger_reserves_settles_and_reports(tmp_path: Path) -> None:
    from tvdb.config import resolve_settings

    settings = resolve_settings(cwd=tmp_path, environ={"TVDB_DATA_DIR": str(tmp_path / ".tvdb"),
                                                       "TVDB_DAILY_BUDGET_USD": "0.00003"})
    ledger = tvdb.Ledger.open(settings=settings)
    try:
        held = ledger.reserve("openai", "text-embedding-3-small", 1_000, "tokens", run_id="mine")  # $0.00002
        with pytest.raises(CostLimitExceeded, match="daily"):
            ledger.reserve("openai", "text-embedding-3-small", 1_000, "tokens", run_id="mine")
        ledger.settle(held, 400)  # billed less: $0.000008 spent, room for another 1,000 tokens
        again = ledger.reserve("openai", "text-embedding-3-small", 1_000, "tokens", run_id="mine")
        ledger.release(again)
        statuses = [r[0] for r in ledger.db.execute("SELECT status FROM reservations ORDER BY created_at")]
    finally:
        ledger.close()
    assert statuses == ["settled", "released"]


async def test_emulator_app_is_an_asgi_app() -> None:
    import json

    emu = tvdb.emulator.app()
    body = json.dumps({"model": "text-embedding-3-small", "input": ["a b c"], "encoding_format": "float"}).encode()
    sent: list[dict[str, Any]] = []
    messages = [{"type": "http.request", "body": body, "more_body": False}]

    async def receive() -> dict[str, Any]:
        return messages.pop(0)

    async def send(message: dict[str, Any]) -> None:
        sent.append(message)

    scope = {"type": "http", "method": "POST", "path": "/v1/embeddings", "query_string": b"",
             "headers": [(b"authorization", b"Bearer sk-x"), (b"content-type", b"application/json")]}
    await emu(scope, receive, send)
    assert sent[0]["status"] == 200
    answer = json.loads(sent[1]["body"])
    assert len(answer["data"][0]["embedding"]) == 1536 and answer["usage"]["prompt_tokens"] == 3
