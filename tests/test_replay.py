"""Record a real-mode run against the emulator, replay it with the emulator stopped (the embeddings
half of issue 11), and replay third-party cassettes through the same machinery (C01–C03)."""

from __future__ import annotations

import asyncio
import shutil
import sqlite3
from pathlib import Path
from typing import Any

import numpy as np
import openai
import pytest

from tests.openai_support import CANARY, emulator
from tvdb.clock import FakeClock
from tvdb.config import Settings, resolve_settings
from tvdb.domain import EmbeddingRequest, Implementation
from tvdb.errors import PermanentServiceError
from tvdb.http import Client
from tvdb.ledger.prices import PriceTable
from tvdb.recording.session import Tape, use_tape
from tvdb.recording.store import read_cassette
from tvdb.scenarios.loader import load_scenario
from tvdb.scenarios.results import RunResult
from tvdb.scenarios.runner import start_run
from tvdb.services.remote.openai_embedder import build_openai_embedder

REPO = Path(__file__).resolve().parents[1]
SCENARIO = """name: roundtrip
mode: real
services: {parser: mock, embedder: real}
documents: [docs/*]
chunking: {max_tokens: 64, overlap_tokens: 8}
embedding: {concurrency: 1}
expectations:
  retrieval:
    - {query: clean barnacles off the sensor window, document: docs/field-guide.pdf, top_k: 3}
  requests:
    - {service: openai, status: error, min: 1, max: 1}
"""
RATE_LIMIT = [{"service": "openai", "kind": "status", "status": 429, "retry_after": 1, "nth": 1}]


def _scenario(tmp: Path) -> Path:
    shutil.copytree(REPO / "scenarios" / "quickstart", tmp / "docs")
    (tmp / "roundtrip.yaml").write_text(SCENARIO)
    return tmp / "roundtrip.yaml"


def _run(path: Path, env: dict[str, str], tape: Tape | None) -> RunResult:
    loaded = load_scenario(path)
    settings = resolve_settings(cwd=path.parent, environ=env, scenario=loaded.scenario.settings_layer(),
                                scenario_doc=loaded.source)
    return asyncio.run(start_run(loaded, settings, clock=FakeClock(), tape=tape))


def _tape(path: Path, mode: str, fresh: bool = False) -> Tape:
    return Tape(path=path, record_mode=mode, fresh=fresh, scenario="roundtrip",  # type: ignore[arg-type]
                scenario_path="../roundtrip.yaml")


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


def test_round_trip_record_then_replay_with_the_emulator_stopped(tmp_path: Path) -> None:
    scenario = _scenario(tmp_path)
    cassette = tmp_path / "cassettes" / "roundtrip.yaml"
    env = {"TVDB_DATA_DIR": str(tmp_path / ".tvdb"), "OPENAI_API_KEY": CANARY}
    with emulator(faults=RATE_LIMIT) as server:  # a real 429 on the wire, so it is recorded and replayed
        recorded = _run(scenario, {**env, "OPENAI_BASE_URL": server.openai_base_url}, _tape(cassette, "all", True))
        sent = server.count()
    assert recorded.passed, [e for e in recorded.expectations if not e.passed]
    assert recorded.tape is not None and recorded.tape["recorded_calls"] == sent + 0 == 3  # 429, retry, query
    db = tmp_path / ".tvdb" / "tvdb.db"
    rec_chunks, rec_vectors, rec_usage = _outputs(db, recorded.run_id)

    # the emulator is stopped and OPENAI_BASE_URL points nowhere: every answer comes from the cassette
    replays = [_run(scenario, {**env, "OPENAI_BASE_URL": "http://127.0.0.1:9/v1"}, _tape(cassette, "none"))
               for _ in range(2)]
    for replayed in replays:
        assert replayed.passed, [e for e in replayed.expectations if not e.passed]
        chunks, vectors, usage = _outputs(db, replayed.run_id)
        assert chunks == rec_chunks
        assert vectors == rec_vectors and len(vectors) == len(rec_chunks)  # float32 blobs, bit for bit
        # tokens, statuses and the 429 (parse rows are local: their order may differ)
        assert sorted(r[:2] + r[3:6] for r in usage) == sorted(r[:2] + r[3:6] for r in rec_usage)
        assert [r for r in usage if r[1] == "openai"] == [
            r[:2] + ("replay",) + r[3:6] + (0, r[7]) for r in rec_usage if r[1] == "openai"]  # avoided, not spent
        assert all(r[6] == 0 for r in usage)
        assert replayed.usage.cost_usd == 0 and replayed.documents[0].reused_from is None  # never reused
        assert replayed.tape == {"cassette": str(cassette), "record_mode": "none", "replayed_calls": 3,
                                 "avoided_usd": recorded.tape["recorded_cost_usd"], "missed_calls": 0}
    assert recorded.tape["recorded_cost_usd"] == pytest.approx(recorded.usage.cost_usd)
    from tvdb.cli.render import document_table

    # the run's table says replay, as `tvdb runs` does; the recording was a real run
    assert document_table(replays[0], None).title.endswith("· scenario roundtrip · mode replay")
    assert document_table(recorded, None).title.endswith("· scenario roundtrip · mode real")

    meta = read_cassette(cassette)
    assert meta.tvdb["scenario"] == "roundtrip" and meta.tvdb["price_version"] == PriceTable.load().versions[-1]
    assert set(meta.tvdb["versions"]) >= {"tvdb", "openai", "httpx2", "vcrpy"}
    notes = [i["tvdb"] for i in meta.interactions]
    assert [(n["service"], n["status"]) for n in notes] == [("openai", 429), ("openai", 200), ("openai", 200)]
    assert sum(n["units"] for n in notes) == sum(r[5] for r in rec_usage if r[1] == "openai")
    assert CANARY.encode() not in cassette.read_bytes() and b"127.0.0.1" in cassette.read_bytes()


def test_a_changed_document_misses_names_the_difference_and_fails_its_job(tmp_path: Path) -> None:
    scenario = _scenario(tmp_path)
    cassette = tmp_path / "c.yaml"
    env = {"TVDB_DATA_DIR": str(tmp_path / ".tvdb"), "OPENAI_API_KEY": CANARY}
    with emulator() as server:
        first = _run(scenario, {**env, "OPENAI_BASE_URL": server.openai_base_url}, _tape(cassette, "all", True))
    assert first.passed is False  # no 429 this time; the scenario expects one (still records)
    notes = tmp_path / "docs" / "release-notes.txt"
    notes.write_text(notes.read_text().replace("downloaded as CSV", "downloaded as TSV"))
    replayed = _run(scenario, env, _tape(cassette, "none"))
    failed = [d for d in replayed.documents if d.status == "failed"]
    assert failed and {d.error_code for d in failed} == {"cassette_miss"}
    message = failed[0].error_message or ""
    assert message.startswith(f"replay: POST https://api.openai.com/v1/embeddings is not recorded in {cassette} (")
    assert "POST /v1/embeddings" in message and "closest recorded request: #1" in message
    assert "'TSV'" in message or "TSV" in message
    assert "--record" in message and CANARY not in message and "authorization" not in message.lower()
    assert replayed.exit_code == 1


def test_a_miss_shows_the_url_without_credentials() -> None:
    from tvdb.recording.cassette import shown_url

    assert shown_url("https://user:pw@proxy.example:8443/v1/embeddings?api-version=2") == (
        "https://proxy.example:8443/v1/embeddings?api-version=2")
    assert shown_url("http://127.0.0.1:8089/api/v2/parse/pjb-1") == "http://127.0.0.1:8089/api/v2/parse/pjb-1"


# -- third-party cassettes (recorded by other projects) through tvdb's replay machinery ------------
def _replay_settings() -> Settings:
    return Settings.model_validate({"mode": "real"})  # no key: a replay needs none


async def _embed(cassette: Path, req: EmbeddingRequest) -> Any:
    embedder = build_openai_embedder(_replay_settings(), implementation=Implementation.REPLAY)
    tape = Tape(path=cassette, record_mode="none")
    try:
        with use_tape(tape, _replay_settings(), PriceTable.load()) as played:
            result = await embedder.embed(req)
            assert played.play_count == 1
        return result
    finally:
        await embedder.aclose()


async def test_c01_through_replay(cassettes_dir: Path) -> None:
    result = await _embed(cassettes_dir / "dd-trace-py__embedding_b64.yaml",
                          EmbeddingRequest(("hello world",), "text-embedding-3-small", 512, 2))
    assert result.vectors.dtype == np.float32 and result.vectors.shape == (1, 512)
    assert result.vectors[0, 0] == pytest.approx(-0.00967, abs=5e-5)
    assert result.prompt_tokens == 2


async def test_c02_through_replay_async_and_sync(cassettes_dir: Path) -> None:
    path = cassettes_dir / "dd-trace-py__llama_index_openai_embedding.yaml"
    result = await _embed(path, EmbeddingRequest(("test query",), "text-embedding-ada-002", 1536, 2))
    assert result.vectors.shape == (1, 1536) and np.isfinite(result.vectors).all()
    client = openai.OpenAI(api_key="sk-fake-replay", max_retries=0, http_client=Client())
    with use_tape(Tape(path=path, record_mode="none"), _replay_settings(), PriceTable.load()):
        sync = client.embeddings.create(model="text-embedding-ada-002", input=["test query"])
    assert np.allclose(np.asarray(sync.data[0].embedding, np.float32), result.vectors[0], atol=1e-6)


async def test_c03_through_replay_is_a_permanent_404(cassettes_dir: Path) -> None:
    with pytest.raises(PermanentServiceError) as info:
        await _embed(cassettes_dir / "otel-python-contrib__test_embeddings_model_not_found.yaml",
                     EmbeddingRequest(("This is a test for embeddings with bad model",),
                                      "non-existent-embedding-model", 1536, 10))
    assert (info.value.status, info.value.code) == (404, "model_not_found")


def test_a_replay_cannot_reach_the_network(tmp_path: Path) -> None:
    import socket

    from tvdb.errors import CassetteError
    from tvdb.recording.session import network_blocked

    with network_blocked(), pytest.raises(CassetteError, match="network is blocked"):
        socket.create_connection(("127.0.0.1", 9), timeout=1)


def test_the_rerecord_command_names_the_scenario_as_a_user_types_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from tvdb.recording.session import command_path

    (tmp_path / "repo" / "scenarios").mkdir(parents=True)
    monkeypatch.chdir(tmp_path / "repo")
    assert command_path(tmp_path / "repo" / "scenarios" / "s.yaml") == "scenarios/s.yaml"
    assert command_path(tmp_path / "other.yaml") == "../other.yaml"
    far = Path("/tmp/elsewhere/deep/s.yaml")
    assert command_path(far) == str(far)  # not ../../../tmp/elsewhere/deep/s.yaml
