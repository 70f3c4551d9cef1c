"""The full round trip of issue 11: a real-mode run with the parser and the embedder real, recorded
against the emulator (multipart PDF uploads, status polls, a retried 429 on each service), replayed
with the emulator stopped; multipart matching through the real parse client (CASES C04)."""

from __future__ import annotations

import asyncio
import shutil
import sqlite3
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.conftest import DOCUMENTS  # TVDB_SHARED_DIR, else ../shared
from tests.llamaparse_support import LLX_CANARY
from tests.openai_support import CANARY
from tvdb.clock import FakeClock
from tvdb.config import Settings, resolve_settings
from tvdb.emulator.llamaparse import LlamaParseEmulator
from tvdb.emulator.openai import OpenAIEmulator
from tvdb.emulator.server import EmulatorServer
from tvdb.faults.plan import FaultPlan
from tvdb.recording.session import Tape
from tvdb.recording.store import read_cassette
from tvdb.scenarios.loader import load_scenario
from tvdb.scenarios.results import RunResult
from tvdb.scenarios.runner import start_run

DOCS = DOCUMENTS
SCENARIO = """name: parsetrip
mode: real
services: {parser: real, embedder: real}
documents: [docs/*]
chunking: {max_tokens: 64, overlap_tokens: 8}
embedding: {concurrency: 1}
parse: {concurrency: 1}
"""
PARSE_429 = [{"service": "llamaparse", "kind": "status", "status": 429, "retry_after": 1, "nth": 1}]
OPENAI_429 = [{"service": "openai", "kind": "status", "status": 429, "retry_after": 1, "nth": 1}]
NOWHERE = {"OPENAI_BASE_URL": "http://127.0.0.1:9/v1", "LLAMA_CLOUD_BASE_URL": "http://127.0.0.1:9"}


@contextmanager
def emulators(clock: FakeClock) -> Iterator[EmulatorServer]:
    """Both services; LlamaParse on the run's fake clock, so each job takes a few polls."""
    parse = LlamaParseEmulator(clock=clock.monotonic, per_page_s=0.5, queue_s=1.0,
                               faults=FaultPlan.of(PARSE_429))
    with EmulatorServer([OpenAIEmulator(faults=FaultPlan.of(OPENAI_429)), parse]) as server:
        yield server


def _scenario(tmp: Path, names: tuple[str, ...] = ("minimal-document.pdf", "pdflatex-4-pages.pdf")) -> Path:
    (tmp / "docs").mkdir()
    for name in names:
        shutil.copy(DOCS / name, tmp / "docs" / name)
    (tmp / "parsetrip.yaml").write_text(SCENARIO)
    return tmp / "parsetrip.yaml"


def _run(path: Path, env: dict[str, str], tape: Tape, clock: FakeClock | None = None) -> RunResult:
    loaded = load_scenario(path)
    settings = resolve_settings(cwd=path.parent, environ=env, scenario=loaded.scenario.settings_layer(),
                                scenario_doc=loaded.source)
    return asyncio.run(start_run(loaded, settings, clock=clock or FakeClock(), tape=tape))


def _tape(path: Path, mode: str, fresh: bool = False) -> Tape:
    return Tape(path=path, record_mode=mode, fresh=fresh, scenario="parsetrip",  # type: ignore[arg-type]
                scenario_path="../parsetrip.yaml")


def _outputs(db: Path, run_id: str) -> tuple[list[Any], list[Any], list[Any]]:
    with sqlite3.connect(db) as conn:
        chunks = conn.execute("SELECT j.path, c.idx, c.text, c.token_count FROM chunks c JOIN jobs j USING (job_id) "
                              "WHERE j.run_id = ? ORDER BY j.path, c.idx", [run_id]).fetchall()
        vectors = conn.execute("SELECT j.path, c.idx, v.vector FROM vectors v JOIN chunks c USING (chunk_id) "
                               "JOIN jobs j ON j.job_id = c.job_id WHERE j.run_id = ? ORDER BY j.path, c.idx",
                               [run_id]).fetchall()
        usage = conn.execute("SELECT stage, service, implementation, status, http_status, units, cost_nusd, "
                             "would_cost_nusd FROM usage WHERE run_id = ? ORDER BY id", [run_id]).fetchall()
    return chunks, vectors, usage


def _env(tmp: Path) -> dict[str, str]:
    return {"TVDB_DATA_DIR": str(tmp / ".tvdb"), "OPENAI_API_KEY": CANARY, "LLAMA_CLOUD_API_KEY": LLX_CANARY}


def _record(tmp: Path, cassette: Path) -> RunResult:
    clock = FakeClock()
    with emulators(clock) as server:
        urls = {"OPENAI_BASE_URL": server.openai_base_url, "LLAMA_CLOUD_BASE_URL": server.llama_cloud_base_url}
        return _run(_scenario(tmp), {**_env(tmp), **urls}, _tape(cassette, "all", True), clock)


def test_both_services_record_and_replay_with_the_emulator_stopped(tmp_path: Path) -> None:
    cassette = tmp_path / "cassettes" / "parsetrip.yaml"
    recorded = _record(tmp_path, cassette)
    assert recorded.exit_code == 0, [(d.path, d.error_message) for d in recorded.documents]
    db = tmp_path / ".tvdb" / "tvdb.db"
    rec_chunks, rec_vectors, rec_usage = _outputs(db, recorded.run_id)
    assert {r[1] for r in rec_usage} == {"llamaparse", "openai"} and rec_chunks
    assert [r[4] for r in rec_usage if r[1] == "llamaparse"].count(429) == 1
    assert [r[4] for r in rec_usage if r[1] == "openai"].count(429) == 1

    loaded = read_cassette(cassette)
    notes = [i["tvdb"] for i in loaded.interactions]
    parse_notes = [n for n in notes if n["service"] == "llamaparse"]
    uploads = [n for n, i in zip(notes, loaded.interactions, strict=True)
               if i["request"]["uri"].endswith("/api/v2/parse/upload")]
    assert len(uploads) == 3 and [u["status"] for u in uploads] == [429, 200, 200]
    results = [n for n in parse_notes if n.get("unit") == "pages" and n.get("units")]
    assert sorted(n["units"] for n in results) == [1, 4]  # the final job of each document: its pages
    assert all(n["credits"] == n["units"] and n["would_cost_usd"] > 0 for n in results)
    from tvdb.recording.info import summarize_path

    summary = summarize_path(cassette)  # what `tvdb cassette show` prints: both services, both priced
    assert set(summary.by_service) == {"llamaparse", "openai"} and sum(summary.by_service.values()) == len(notes)
    assert summary.recorded_cost_usd == pytest.approx(recorded.usage.cost_usd)
    polls = [i for i in loaded.interactions if i["request"]["method"] == "GET"
             and "expand" not in i["request"]["uri"]]
    assert len(polls) >= 2  # the jobs were PENDING at first

    for _ in range(2):  # the emulator is stopped, both base URLs point nowhere
        replayed = _run(tmp_path / "parsetrip.yaml", {**_env(tmp_path), **NOWHERE}, _tape(cassette, "none"))
        assert replayed.exit_code == 0, [(d.path, d.error_message) for d in replayed.documents]
        chunks, vectors, usage = _outputs(db, replayed.run_id)
        assert chunks == rec_chunks
        assert vectors == rec_vectors and len(vectors) == len(rec_chunks)  # float32 blobs, bit for bit
        assert sorted(usage) == sorted(r[:2] + ("replay",) + r[3:6] + (0, r[7]) for r in rec_usage)
        assert replayed.usage.cost_usd == 0
        assert replayed.tape is not None and replayed.tape["avoided_usd"] == pytest.approx(
            recorded.usage.cost_usd) and recorded.usage.cost_usd > 0
    uploads = [_upload_body(i) for i in yaml.safe_load(cassette.read_text())["interactions"]
               if i["request"]["uri"].endswith("/upload")]  # !!binary (base64) in the file: look inside
    for where in (cassette.read_bytes(), db.read_bytes(), *uploads):
        assert CANARY.encode() not in where and LLX_CANARY.encode() not in where


def test_a_different_number_of_polls_replays_to_the_same_final_state(tmp_path: Path) -> None:
    cassette = tmp_path / "c.yaml"
    recorded = _record(tmp_path, cassette)
    db = tmp_path / ".tvdb" / "tvdb.db"
    rec_chunks, rec_vectors, rec_usage = _outputs(db, recorded.run_id)
    data = yaml.safe_load(cassette.read_text())
    pending = [i for i in data["interactions"] if i["request"]["method"] == "GET"
               and "expand" not in i["request"]["uri"] and b"COMPLETED" not in _body(i)]
    assert pending
    data["interactions"] = [i for i in data["interactions"] if i not in pending]  # fewer polls recorded
    cassette.write_text(yaml.safe_dump(data))
    replayed = _run(tmp_path / "parsetrip.yaml", {**_env(tmp_path), **NOWHERE}, _tape(cassette, "none"))
    assert replayed.exit_code == 0, [(d.path, d.error_message) for d in replayed.documents]
    chunks, vectors, usage = _outputs(db, replayed.run_id)
    assert (chunks, vectors) == (rec_chunks, rec_vectors)
    assert [r for r in usage if r[5]] == [r[:2] + ("replay",) + r[3:6] + (0, r[7]) for r in rec_usage if r[5]]


def _upload_body(item: dict[str, Any]) -> bytes:
    body = item["request"]["body"]
    return body if isinstance(body, bytes) else str(body).encode()


def _body(item: dict[str, Any]) -> bytes:
    body = item["response"]["body"]["string"]
    return body if isinstance(body, bytes) else str(body).encode()


# -- CASES C04 through the real parse client -------------------------------------------------------
def _parse(cassette: Path, base_url: str, name: str, mode: str, clock: FakeClock) -> Any:
    from tvdb.domain import ParseRequest
    from tvdb.ledger.prices import PriceTable
    from tvdb.recording.session import use_tape
    from tvdb.services.remote.llamaparse_client import build_llamaparse_client

    settings = Settings.model_validate({"llama_cloud_api_key": LLX_CANARY, "llama_cloud_base_url": base_url,
                                        "mode": "real"})
    tape = Tape(path=cassette, record_mode=mode, fresh=mode == "all")  # type: ignore[arg-type]

    async def go() -> Any:
        client = build_llamaparse_client(settings, clock)
        try:
            with use_tape(tape, settings, PriceTable.load()):
                return await client.parse(ParseRequest((DOCS / name).read_bytes(), name, "application/pdf", "fast"))
        finally:
            await client.aclose()

    return asyncio.run(go())


def _boundaries(cassette: Path) -> list[bytes]:
    data = yaml.safe_load(cassette.read_text())
    uploads = [i["request"] for i in data["interactions"] if i["request"]["uri"].endswith("/upload")]
    return [u["body"].split(b"\r\n", 1)[0] for u in uploads]


def _rewrite_boundary(cassette: Path, old: bytes, new: bytes) -> None:
    data = yaml.safe_load(cassette.read_text())
    for item in data["interactions"]:
        request = item["request"]
        if request["uri"].endswith("/upload"):
            request["body"] = request["body"].replace(old, new)
            request["headers"] = {k: [v.replace(old.decode(), new.decode()) for v in vs]
                                  for k, vs in request["headers"].items()}
    cassette.write_text(yaml.safe_dump(data))


def test_c04_a_new_boundary_replays_and_another_pdf_is_a_clear_miss(tmp_path: Path) -> None:
    from tvdb.errors import CassetteMiss

    cassette = tmp_path / "c04.yaml"
    clock = FakeClock()
    parse = LlamaParseEmulator(clock=clock.monotonic, per_page_s=0.5, queue_s=0.5)
    with EmulatorServer([parse]) as server:
        recorded = _parse(cassette, server.base_url, "minimal-document.pdf", "all", clock)
        jobs = len(parse.jobs)
        [old] = _boundaries(cassette)
        _rewrite_boundary(cassette, old[2:], b"recorded-elsewhere-0000")  # surely not the replay's boundary
        replayed = _parse(cassette, server.base_url, "minimal-document.pdf", "none", FakeClock())
        with pytest.raises(CassetteMiss) as miss:
            _parse(cassette, server.base_url, "pdflatex-4-pages.pdf", "none", FakeClock())
        assert len(parse.jobs) == jobs == 1  # the replays sent nothing to the service
    assert replayed.document.pages == recorded.document.pages and replayed.pages_billed == recorded.pages_billed
    assert old.startswith(b"--") and _boundaries(cassette) == [b"--recorded-elsewhere-0000"]
    message = str(miss.value)
    assert "POST /api/v2/parse/upload" in message and "closest recorded request" in message
    assert "pdflatex-4-pages.pdf" in message and "minimal-document.pdf" in message  # the file part, by name
    assert "--record" in message
    for secret in (LLX_CANARY, "Bearer", "authorization", "multipart/form-data; boundary"):
        assert secret.lower() not in message.lower()
    assert LLX_CANARY.encode() not in cassette.read_bytes()


WEBHOOK_SECRET = "whsec_canary0a1b2c3d4e5f60718293"
HOOK_TOKEN = "hooktoken-canary-9f8e7d6c5b4a"


def test_webhook_runs_replay_though_the_receiver_listens_on_another_port(tmp_path: Path) -> None:
    scenario = _scenario(tmp_path, ("minimal-document.pdf",))
    scenario.write_text(SCENARIO.replace("parse: {concurrency: 1}",
                                         "parse: {concurrency: 1, webhook: true, webhook_grace_s: 0.05}"))
    env = {**_env(tmp_path), "LLAMA_CLOUD_WEBHOOK_SECRET": WEBHOOK_SECRET}
    cassette = tmp_path / "hooks.yaml"
    clock = FakeClock()
    with emulators(clock) as server:
        urls = {"OPENAI_BASE_URL": server.openai_base_url, "LLAMA_CLOUD_BASE_URL": server.llama_cloud_base_url}
        recorded = _run(scenario, {**env, **urls}, _tape(cassette, "all", True), clock)
    replayed = _run(scenario, {**env, **NOWHERE}, _tape(cassette, "none"))
    assert (recorded.exit_code, replayed.exit_code) == (0, 0), [d.error_message for d in replayed.documents]
    assert WEBHOOK_SECRET.encode() not in b"".join(
        _upload_body(i) for i in yaml.safe_load(cassette.read_text())["interactions"])


def test_webhook_secret_and_url_token_reach_no_cassette_db_or_output(tmp_path: Path) -> None:
    import json

    scenario = _scenario(tmp_path, ("minimal-document.pdf",))
    scenario.write_text(SCENARIO.replace(
        "parse: {concurrency: 1}",
        f"parse: {{concurrency: 1, webhook: true, webhook_grace_s: 0.05,"
        f" webhook_url: 'http://127.0.0.1:9/hooks/{HOOK_TOKEN}?token={HOOK_TOKEN}'}}"))
    env = {**_env(tmp_path), "LLAMA_CLOUD_WEBHOOK_SECRET": WEBHOOK_SECRET}
    cassette = tmp_path / "hooks.yaml"
    clock = FakeClock()
    with emulators(clock) as server:
        urls = {"OPENAI_BASE_URL": server.openai_base_url, "LLAMA_CLOUD_BASE_URL": server.llama_cloud_base_url}
        recorded = _run(scenario, {**env, **urls}, _tape(cassette, "all", True), clock)
    replayed = _run(scenario, {**env, **NOWHERE}, _tape(cassette, "none"))
    assert (recorded.exit_code, replayed.exit_code) == (0, 0), [d.error_message for d in replayed.documents]
    outputs = [cassette.read_bytes(), (tmp_path / ".tvdb" / "tvdb.db").read_bytes(),
               json.dumps([recorded.as_json(), replayed.as_json()], default=str).encode()]
    uploads = [_upload_body(i) for i in yaml.safe_load(cassette.read_text())["interactions"]
               if i["request"]["uri"].endswith("/upload")]
    assert uploads and all(b'"webhook_url": "http://127.0.0.1:9/' in u for u in uploads)  # sent, scrubbed
    outputs += uploads  # the PDF upload is stored as !!binary (base64): look inside it too
    for where in outputs:
        for secret in (CANARY, LLX_CANARY, WEBHOOK_SECRET, HOOK_TOKEN):
            assert secret.encode() not in where, secret


def test_new_episodes_answers_recorded_parse_jobs_from_the_cassette_for_free(tmp_path: Path) -> None:
    cassette = tmp_path / "c.yaml"
    _record(tmp_path, cassette)
    clock = FakeClock()
    with emulators(clock) as server:
        urls = {"OPENAI_BASE_URL": server.openai_base_url, "LLAMA_CLOUD_BASE_URL": server.llama_cloud_base_url}
        again = _run(tmp_path / "parsetrip.yaml", {**_env(tmp_path), **urls}, _tape(cassette, "new_episodes"), clock)
        assert llamaparse_jobs(server) == 0  # nothing uploaded: every job came from the cassette
    _, _, usage = _outputs(tmp_path / ".tvdb" / "tvdb.db", again.run_id)
    parse_rows = [r for r in usage if r[1] == "llamaparse" and r[3] == "ok"]
    assert len(parse_rows) == 2 and {(r[2], r[6]) for r in parse_rows} == {("replay", 0)}
    assert sorted(r[5] for r in parse_rows) == [1, 4] and all(r[7] > 0 for r in parse_rows)


def llamaparse_jobs(server: EmulatorServer) -> int:
    return len(next(s for s in server.services if isinstance(s, LlamaParseEmulator)).jobs)
