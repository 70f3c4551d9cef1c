"""Whole runs through the router: a service that goes down in the middle of a run (hybrid finishes
locally and counts its fallbacks; real fails those jobs), one space per document and per search,
mock mode with sockets blocked, provenance in rows, summary and --json, provenance expectations."""

from __future__ import annotations

import asyncio
import json
import socket
import sqlite3
from pathlib import Path
from typing import Any

import pytest

from tests.openai_support import KEY, emulator
from tvdb.clock import FakeClock
from tvdb.config import resolve_settings
from tvdb.domain import EmbeddingSpace, Implementation
from tvdb.emulator.server import EmulatorServer
from tvdb.http import AsyncBaseTransport, AsyncHTTPTransport, Request, Response
from tvdb.pipeline.store import Hit, VectorIndex
from tvdb.scenarios.loader import load_scenario
from tvdb.scenarios.results import RunResult
from tvdb.scenarios.runner import RunHooks, start_run

REPO = Path(__file__).resolve().parents[1]


class StopsAfterFirstEmbedding(AsyncBaseTransport):
    """The network, except that the emulator is stopped once it has answered one embeddings request."""

    def __init__(self, server: EmulatorServer) -> None:
        self.server = server
        self.inner = AsyncHTTPTransport()

    async def handle_async_request(self, request: Request) -> Response:
        response = await self.inner.handle_async_request(request)
        if request.url.path.endswith("/embeddings") and self.server.count() == 1:
            await response.aread()
            self.server.stop()  # from now on: connection refused
        return response


def _docs(tmp_path: Path) -> None:
    # 1,200 + 1,200 + ~900 four-token chunks: two embedding requests, the first ending inside b.txt
    (tmp_path / "a.txt").write_text(" ".join(f"anchor{i % 97} tide" for i in range(1600)))
    (tmp_path / "b.txt").write_text(" ".join(f"buoy{i % 89} battery" for i in range(1600)))
    (tmp_path / "c.txt").write_text(" ".join(f"clean barnacles off window{i % 83}" for i in range(600)))


def _run(tmp_path: Path, body: str, env: dict[str, str], hooks: RunHooks | None = None) -> RunResult:
    path = tmp_path / "s.yaml"
    path.write_text(body)
    loaded = load_scenario(path)
    settings = resolve_settings(cwd=tmp_path, environ={"TVDB_DATA_DIR": str(tmp_path / ".tvdb"), **env},
                                scenario=loaded.scenario.settings_layer(), scenario_doc=loaded.source, dotenv=False)
    return asyncio.run(start_run(loaded, settings, clock=FakeClock(), hooks=hooks or RunHooks()))


OUTAGE = (
    "name: outage\ndocuments: [a.txt, b.txt, c.txt]\nchunking: {max_tokens: 4, overlap_tokens: 0}\n"
    "embedding: {concurrency: 1}\nservices: {parser: mock}\n"
    "expectations:\n  documents: [{document: '*', status: complete}]\n"
    "  retrieval: [{query: clean barnacles off window7, document: c.txt, top_k: 3}]\n"
)


def _spaces_per_job(db: Path) -> dict[str, set[str]]:
    with sqlite3.connect(db) as conn:
        out: dict[str, set[str]] = {}
        for path, impl in conn.execute(
                "SELECT j.path, v.implementation FROM vectors v JOIN jobs j USING (job_id) GROUP BY 1, 2"):
            out.setdefault(Path(path).name, set()).add(impl)
        return out


def test_hybrid_finishes_locally_when_the_service_goes_down_mid_run(tmp_path: Path) -> None:
    _docs(tmp_path)
    with emulator() as server:
        env = {"TVDB_MODE": "hybrid", "OPENAI_API_KEY": KEY, "OPENAI_BASE_URL": server.openai_base_url}
        result = _run(tmp_path, OUTAGE, env, RunHooks(transports={"openai": StopsAfterFirstEmbedding(server)}))
        assert server.count() == 1
    assert [d.status for d in result.documents] == ["complete"] * 3
    rows = {(p.stage, p.implementation, p.reason): (p.calls, p.errors) for p in result.provenance}
    assert rows[("embed", "real", "hybrid: openai available")] == (6, 5)  # 1 answered, then 5 refused attempts
    assert rows[("embed", "mock", "openai failed after 5 attempts: connection error")] == (1, 0)
    reembedded = [k for k in rows if k[2].startswith("re-embedded locally as a whole")]
    assert len(reembedded) == 1 and rows[reembedded[0]] == (1, 0)
    assert result.fallbacks == 2  # the request that fell back, and b.txt re-embedded in one space
    # every document lives in one space: a.txt stayed real, b.txt (split by the outage) went local whole
    assert _spaces_per_job(tmp_path / ".tvdb" / "tvdb.db") == {"a.txt": {"real"}, "b.txt": {"mock"}, "c.txt": {"mock"}}
    spaces = {sp.implementation: n for sp, n in result.spaces}
    assert spaces[Implementation.REAL] == result.documents[0].vectors
    assert spaces[Implementation.MOCK] == result.documents[1].vectors + result.documents[2].vectors
    # the query is embedded in each space: the real one cannot be now, the mock one finds c.txt
    retrieval = result.expectations[-1]
    assert retrieval.passed, retrieval.detail
    assert ("real/text-embedding-3-small/1536: embedding the query in real failed: openai unhealthy: "
            "connection refused") in retrieval.detail
    assert not [p for p in result.provenance if p.stage == "query" and p.implementation == "real"]  # not sent
    assert "mock/text-embedding-3-small/1536: top 3 of" in retrieval.detail
    data = result.as_json()
    assert data["fallbacks"] == 2
    assert {"stage": "embed", "implementation": "mock", "reason": "openai failed after 5 attempts: connection error",
            "calls": 1, "errors": 0} in data["provenance"]
    assert [s["implementation"] for s in data["spaces"]] in (["mock", "real"], ["real", "mock"])


def test_real_mode_fails_the_jobs_the_outage_hits(tmp_path: Path) -> None:
    _docs(tmp_path)
    with emulator() as server:
        env = {"TVDB_MODE": "real", "OPENAI_API_KEY": KEY, "OPENAI_BASE_URL": server.openai_base_url}
        result = _run(tmp_path, OUTAGE, env, RunHooks(transports={"openai": StopsAfterFirstEmbedding(server)}))
    statuses = {Path(d.path).name: (d.status, d.error_code) for d in result.documents}
    assert statuses == {"a.txt": ("complete", None), "b.txt": ("failed", "service_error"),
                        "c.txt": ("failed", "service_error")}
    assert result.fallbacks == 0 and result.exit_code == 1
    assert {p.implementation for p in result.provenance if p.stage == "embed"} == {"real"}


def test_mock_mode_never_opens_a_socket(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    def refuse(*_: Any, **__: Any) -> None:
        raise AssertionError("mock mode opened a socket")

    monkeypatch.setattr(socket.socket, "connect", refuse)
    monkeypatch.setattr(socket.socket, "connect_ex", refuse)
    monkeypatch.setattr(socket, "create_connection", refuse)
    quickstart = (REPO / "scenarios" / "quickstart.yaml").read_text()
    for name in ("getting-started.md", "release-notes.txt", "support.html", "field-guide.pdf"):
        quickstart = quickstart.replace(f"quickstart/{name}", str(REPO / "scenarios" / "quickstart" / name))
    for mode in ("mock", "hybrid"):  # hybrid without keys: no probe is made without a key
        (tmp_path / mode).mkdir()
        result = _run(tmp_path / mode, quickstart, {"TVDB_MODE": mode})
        assert result.passed, [e for e in result.expectations if not e.passed]
        assert {p.implementation for p in result.provenance} == {"mock"}


def test_search_compares_only_within_one_space() -> None:
    import numpy as np

    real = EmbeddingSpace(Implementation.REAL, "text-embedding-3-small", 4)
    mock = EmbeddingSpace(Implementation.MOCK, "text-embedding-3-small", 4)
    same = np.array([1, 0, 0, 0], dtype=np.float32)
    other = np.array([0, 1, 0, 0], dtype=np.float32)
    index = VectorIndex((Hit("mock-doc", 0, 0.0, "x", mock), Hit("real-doc", 0, 0.0, "x", real),
                         Hit("real-doc", 1, 0.0, "y", real)), np.vstack([same, other, other]))
    # the mock vector is identical to the query, but the query was embedded in the real space
    hits = index.search(same, 3, real)
    assert [(h.job_id, h.chunk_index) for h in hits] == [("real-doc", 0), ("real-doc", 1)]
    assert {h.space for h in hits} == {real}
    assert [h.job_id for h in index.search(same, 3, mock)] == ["mock-doc"]
    assert index.spaces == [real, mock]


PROVENANCE = (
    "name: prov\ndocuments: [c.txt]\n"
    "expectations:\n  provenance: {require_real: [embed], max_mock_fraction: 0.2, max_fallbacks: 0}\n"
)


def test_provenance_expectations_fail_when_calls_ran_local(tmp_path: Path) -> None:
    (tmp_path / "c.txt").write_text("clean barnacles off the sensor window every week")
    result = _run(tmp_path, PROVENANCE, {"TVDB_MODE": "hybrid"})
    verdicts = {e.description: (e.passed, e.detail) for e in result.expectations}
    assert verdicts["every embed call runs real"] == (False, "0 of 1 embed calls real (1 mock: no OPENAI_API_KEY)")
    assert verdicts["at most 20% of calls run mock"] == (False, "2 of 2 calls ran mock (100%)")
    assert verdicts["at most 0 fallbacks"] == (False, "2 calls fell back to local")
    assert result.exit_code == 1


def test_provenance_expectations_pass_when_everything_ran_real(tmp_path: Path) -> None:
    (tmp_path / "c.txt").write_text("clean barnacles off the sensor window every week")
    with emulator() as server:
        env = {"TVDB_MODE": "hybrid", "OPENAI_API_KEY": KEY, "OPENAI_BASE_URL": server.openai_base_url}
        body = PROVENANCE.replace("max_mock_fraction: 0.2", "max_mock_fraction: 0.5")
        result = _run(tmp_path, body.replace("documents: [c.txt]", "documents: [c.txt]\nservices: {parser: mock}"),
                      env)
    verdicts = {e.description: (e.passed, e.detail) for e in result.expectations}
    assert verdicts["every embed call runs real"] == (True, "1 of 1 embed calls real")
    assert verdicts["at most 50% of calls run mock"] == (True, "1 of 2 calls ran mock (50%)")  # the local parse
    assert verdicts["at most 0 fallbacks"] == (True, "0 calls fell back to local")  # parser mock is no fallback
    assert result.passed
    data = json.loads(json.dumps(result.as_json()))
    assert {(p["stage"], p["implementation"], p["reason"]) for p in data["provenance"]} == {
        ("parse", "mock", "set by scenario: services.parser"), ("embed", "real", "hybrid: openai available")}


def test_estimate_counts_hybrid_as_real_spend_that_falls_back_instead_of_being_refused(tmp_path: Path) -> None:
    from tvdb.clock import FakeClock
    from tvdb.scenarios.estimate import estimate

    (tmp_path / "c.txt").write_text("clean barnacles off the sensor window every week")
    path = tmp_path / "s.yaml"
    path.write_text("name: est\ndocuments: [c.txt]\nservices: {parser: mock}\n")
    loaded = load_scenario(path)
    out = {}
    for mode in ("hybrid", "real"):
        settings = resolve_settings(cwd=tmp_path, environ={"TVDB_DATA_DIR": str(tmp_path / ".tvdb"),
                                                           "TVDB_MODE": mode, "TVDB_DAILY_BUDGET_USD": "0"},
                                    scenario=loaded.scenario.settings_layer(), scenario_doc=loaded.source)
        out[mode] = estimate(loaded, settings, FakeClock())
    assert out["hybrid"].forecast.total_nusd == out["real"].forecast.total_nusd > 0
    assert not out["hybrid"].forecast.fits and out["hybrid"].fits  # over budget: it would run local
    assert not out["real"].fits  # real would be refused (exit 3)


@pytest.mark.parametrize(("status", "outcome"), [(503, "complete"), (400, "failed")])
def test_scenario_faults_hit_the_real_service_in_hybrid_and_only_transient_ones_fall_back(
    tmp_path: Path, status: int, outcome: str,
) -> None:
    (tmp_path / "c.txt").write_text("clean barnacles off the sensor window every week")
    body = (f"name: faults\ndocuments: [c.txt]\nservices: {{parser: mock}}\n"
            f"faults: [{{service: openai, kind: status, status: {status}}}]\n")
    with emulator() as server:
        env = {"TVDB_MODE": "hybrid", "OPENAI_API_KEY": KEY, "OPENAI_BASE_URL": server.openai_base_url}
        result = _run(tmp_path, body, env)
        assert server.count() == 0  # the fault plan answered on the client's transport
    assert [d.status for d in result.documents] == [outcome]
    embed = {(p.implementation, p.reason): (p.calls, p.errors) for p in result.provenance if p.stage == "embed"}
    if status == 503:  # retried, then local; the local fallback is never faulted
        assert embed == {("real", "hybrid: openai available"): (5, 5),
                         ("mock", "openai failed after 5 attempts: 503"): (1, 0)}
        assert result.fallbacks == 1
    else:  # a request the service refuses is not hidden by a fallback: the job fails as in real mode
        assert embed == {("real", "hybrid: openai available"): (1, 1)}
        assert result.documents[0].error_code == "service_error" and result.fallbacks == 0
