"""examples/own-pipeline (docpipe: llama-cloud parse, its own chunker, openai embed, SQLite store) run by
tvdb through its scenario's `pipeline:` hook: mock opens no network socket; real goes to the emulator on
loopback (a budget refuses before the request; ledger tokens equal the emulator's usage); hybrid falls
back when the emulator stops halfway; a recording replays with the emulator stopped, to identical vectors;
the committed cassette replays offline."""

from __future__ import annotations

import asyncio
import json
import re
import socket
import sqlite3
import sys
import textwrap
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.cli_support import Cli, in_process_cli
from tests.hook_support import forget
from tvdb.emulator.config import EmulatorConfig, build_server
from tvdb.emulator.server import EmulatorServer, SeenRequest

EXAMPLE = Path(__file__).resolve().parents[1] / "examples" / "own-pipeline"
SCENARIO = EXAMPLE / "scenario.yaml"
CASSETTE = EXAMPLE / "cassettes" / "own-pipeline.yaml"
DOCS = ("getting-started.md", "release-notes.txt", "field-guide.pdf")
OPENAI_CANARY = "sk-proj-" + "Owncanary0a1b2c3d4e5f6g7h8"
LLAMA_CANARY = "llx-" + "Owncanary9z8y7x6w5v4u3t2s1"


@pytest.fixture
def cli(monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], tmp_path: Path) -> Cli:
    monkeypatch.setenv("DOCPIPE_POLL_S", "0.01")  # docpipe's own knob: poll the parse job every 10 ms
    monkeypatch.setenv("DOCPIPE_DB", str(tmp_path / "docpipe.db"))
    monkeypatch.chdir(tmp_path)
    return in_process_cli(monkeypatch, capsys)


@pytest.fixture
def answered() -> list[SeenRequest]:
    return []


@pytest.fixture
def emulator(answered: list[SeenRequest]) -> Iterator[EmulatorServer]:
    """What `tvdb emulate` serves, on a free loopback port; fast parse jobs; `answered` gets each request
    as `tvdb emulate` logs it (an embeddings request with the tokens of its `usage`)."""
    server = build_server(EmulatorConfig.model_validate({"parse_per_page_ms": 2, "parse_queue_ms": 2}))
    server.on_request = answered.append
    with server:
        yield server


def _real_env(monkeypatch: pytest.MonkeyPatch, server: EmulatorServer) -> None:
    monkeypatch.setenv("OPENAI_BASE_URL", server.openai_base_url)
    monkeypatch.setenv("LLAMA_CLOUD_BASE_URL", server.llama_cloud_base_url)
    monkeypatch.setenv("OPENAI_API_KEY", OPENAI_CANARY)
    monkeypatch.setenv("LLAMA_CLOUD_API_KEY", LLAMA_CANARY)


@pytest.fixture
def no_network(monkeypatch: pytest.MonkeyPatch) -> list[Any]:
    """Every attempt to reach the network: a connect of an internet socket (sync or asyncio's), a name
    lookup. (urllib3 binds an IPv6 socket at import to probe for IPv6 support; that sends nothing.)"""
    attempts: list[Any] = []
    connect, connect_ex, getaddrinfo = socket.socket.connect, socket.socket.connect_ex, socket.getaddrinfo

    def tracked(original: Callable[..., Any]) -> Callable[..., Any]:
        def call(self: socket.socket, address: Any) -> Any:
            if self.family in (socket.AF_INET, socket.AF_INET6):
                attempts.append(("connect", address))
            return original(self, address)
        return call

    def lookup(host: Any, *args: Any, **kwargs: Any) -> Any:
        attempts.append(("getaddrinfo", host))
        return getaddrinfo(host, *args, **kwargs)

    monkeypatch.setattr(socket.socket, "connect", tracked(connect))
    monkeypatch.setattr(socket.socket, "connect_ex", tracked(connect_ex))
    monkeypatch.setattr(socket, "getaddrinfo", lookup)
    return attempts


def _json(out: str) -> dict[str, Any]:
    data: dict[str, Any] = json.loads(out)
    return data


def _vectors(db: Path) -> dict[str, list[bytes]]:
    with sqlite3.connect(db) as conn:
        rows = conn.execute("SELECT document, vector FROM chunks ORDER BY document, idx").fetchall()
    out: dict[str, list[bytes]] = {}
    for document, vector in rows:
        out.setdefault(Path(document).name, []).append(vector)
    return out


def _ledger(tmp_path: Path, run_id: str) -> list[sqlite3.Row]:
    with sqlite3.connect(tmp_path / ".tvdb" / "tvdb.db") as conn:
        conn.row_factory = sqlite3.Row
        return conn.execute("SELECT * FROM usage WHERE run_id = ? ORDER BY id", [run_id]).fetchall()


def _emulator_tokens(answered: list[SeenRequest]) -> int:
    """The `usage.prompt_tokens` the emulator answered, summed over its embeddings requests."""
    return sum(int(m.group(1).replace(",", "")) for r in answered if r.path == "/v1/embeddings"
               if (m := re.search(r"([\d,]+) tokens", r.detail)))


def test_mock_runs_the_example_offline_without_opening_a_socket(cli: Cli, tmp_path: Path,
                                                                no_network: list[Any]) -> None:
    code, out, err = cli("run", str(SCENARIO), "--json")
    assert no_network == []
    result = _json(out)
    assert code == 0 and result["passed"], err
    assert result["pipeline"] == "docpipe.ingest:run"
    assert [(Path(d["path"]).name, d["status"]) for d in result["documents"]] == [(n, "complete") for n in DOCS]
    assert result["cost_usd"] == 0 and 0 < result["would_cost_usd"] <= 0.01
    assert {(p["stage"], p["implementation"]) for p in result["provenance"]} == {
        ("parse", "mock"), ("embed", "mock"), ("query", "mock")}
    assert [d["pages"] for d in result["documents"]] == [1, 1, 3]
    rows = _ledger(tmp_path, result["run_id"])
    by_doc = {d["correlation_id"]: d for d in result["documents"]}
    assert all(r["correlation_id"] in by_doc for r in rows if r["stage"] != "query")
    assert set(_vectors(tmp_path / "docpipe.db")) == set(DOCS)


def test_real_against_the_emulator_meters_exactly_what_it_answered(cli: Cli, tmp_path: Path,
                                                                   monkeypatch: pytest.MonkeyPatch,
                                                                   emulator: EmulatorServer,
                                                                   answered: list[SeenRequest]) -> None:
    _real_env(monkeypatch, emulator)
    code, out, err = cli("run", str(SCENARIO), "--mode", "real", "--json")
    result = _json(out)
    assert code == 0 and result["passed"], err
    assert {p["implementation"] for p in result["provenance"]} == {"real"}
    rows = _ledger(tmp_path, result["run_id"])
    tokens = sum(int(r["units"]) for r in rows if r["unit"] == "tokens" and r["status"] == "ok")
    assert tokens == _emulator_tokens(answered) > 0
    assert len([r for r in answered if r.path == "/v1/embeddings"]) == 5  # 3 documents, 2 queries
    assert emulator.count("POST /api/v2/parse/upload") == 3
    assert result["cost_usd"] == pytest.approx(sum(d["would_cost_usd"] for d in result["documents"])
                                               + sum(r["cost_usd"] for r in rows if r["stage"] == "query"))
    stored = (tmp_path / ".tvdb" / "tvdb.db").read_bytes()
    for canary in (OPENAI_CANARY, LLAMA_CANARY):
        assert canary not in out + err and canary.encode() not in stored


def test_an_exhausted_budget_refuses_before_any_request(cli: Cli, monkeypatch: pytest.MonkeyPatch,
                                                        emulator: EmulatorServer) -> None:
    _real_env(monkeypatch, emulator)
    monkeypatch.setenv("TVDB_DAILY_BUDGET_USD", "0.000001")
    code, out, _ = cli("run", str(SCENARIO), "--mode", "real", "--json")
    result = _json(out)
    assert code == 3
    assert [(d["status"], d["error_code"]) for d in result["documents"]] == [("failed", "budget")] * 3
    assert "budget" in result["documents"][0]["error_message"]
    assert sum(emulator.counts.values()) == 0  # not one request reached the service


def test_hybrid_falls_back_to_the_emulator_in_process_when_the_service_stops_halfway(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, emulator: EmulatorServer) -> None:
    from tvdb.clock import FakeClock
    from tvdb.config import resolve_settings
    from tvdb.scenarios.loader import load_scenario
    from tvdb.scenarios.runner import start_run

    _real_env(monkeypatch, emulator)
    monkeypatch.setenv("DOCPIPE_POLL_S", "0.01")
    monkeypatch.setenv("DOCPIPE_DB", str(tmp_path / "docpipe.db"))
    wrapper = f"stop_after_first_{id(tmp_path):x}"
    (tmp_path / f"{wrapper}.py").write_text(textwrap.dedent("""\
        from docpipe import ingest

        AFTER_FIRST = []

        def run(doc):
            ingest.run(doc)
            while AFTER_FIRST:
                AFTER_FIRST.pop()()
        """))
    documents = "\n".join(f"  - {EXAMPLE / 'docs' / n}" for n in DOCS)
    (tmp_path / "s.yaml").write_text(f"name: halfway\nmode: hybrid\npipeline: {wrapper}:run\n"
                                     f"search: docpipe.search:query\npython_path: [{EXAMPLE}]\n"
                                     f"documents:\n{documents}\n")
    try:
        loaded = load_scenario(tmp_path / "s.yaml")
        stop: Callable[[], None] = emulator.stop
        sys.modules[wrapper].AFTER_FIRST.append(stop)
        environ = {"TVDB_DATA_DIR": str(tmp_path / ".tvdb"), "OPENAI_API_KEY": OPENAI_CANARY,
                   "LLAMA_CLOUD_API_KEY": LLAMA_CANARY, "OPENAI_BASE_URL": emulator.openai_base_url,
                   "LLAMA_CLOUD_BASE_URL": emulator.llama_cloud_base_url}
        settings = resolve_settings(cwd=tmp_path, environ=environ, scenario=loaded.scenario.settings_layer(),
                                    scenario_doc=loaded.source, dotenv=False)
        result = asyncio.run(start_run(loaded, settings, clock=FakeClock()))
    finally:
        forget(wrapper)
    assert [d.status for d in result.documents] == ["complete"] * 3
    served = {(p.stage, p.implementation): p.calls - p.errors for p in result.provenance}
    assert served[("parse", "real")] == 1 and served[("embed", "real")] == 1
    assert served[("parse", "mock")] == 2 and served[("embed", "mock")] == 2
    assert result.fallbacks >= 4
    assert set(_vectors(tmp_path / "docpipe.db")) == set(DOCS)


def test_a_recording_replays_with_the_emulator_stopped_to_identical_vectors(
        cli: Cli, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, emulator: EmulatorServer,
        no_network: list[Any]) -> None:
    _real_env(monkeypatch, emulator)
    cassette = tmp_path / "own.yaml"
    monkeypatch.setenv("DOCPIPE_DB", str(tmp_path / "recorded.db"))
    code, out, err = cli("run", str(SCENARIO), "--mode", "real", "--record", "--cassette", str(cassette), "--json")
    recorded = _json(out)
    assert code == 0 and recorded["passed"], err
    emulator.stop()
    no_network.clear()
    text = cassette.read_text()
    assert OPENAI_CANARY not in text and LLAMA_CANARY not in text
    for name in ("OPENAI_API_KEY", "LLAMA_CLOUD_API_KEY", "OPENAI_BASE_URL", "LLAMA_CLOUD_BASE_URL"):
        monkeypatch.delenv(name)  # a replay needs neither keys nor the service
    monkeypatch.setenv("DOCPIPE_DB", str(tmp_path / "replayed.db"))
    code, out, err = cli("replay", str(cassette), "--json")
    replayed = _json(out)
    assert code == 0 and replayed["passed"], err
    assert no_network == []
    assert replayed["replay"]["replayed_calls"] == recorded["recording"]["recorded_calls"] > 0
    assert {p["implementation"] for p in replayed["provenance"]} == {"replay"}
    assert replayed["cost_usd"] == 0 and replayed["replay"]["avoided_usd"] == pytest.approx(recorded["cost_usd"])
    assert _vectors(tmp_path / "replayed.db") == _vectors(tmp_path / "recorded.db") != {}


def test_the_committed_cassette_replays_offline(cli: Cli, no_network: list[Any]) -> None:
    code, out, err = cli("replay", str(CASSETTE), "--json")
    result = _json(out)
    assert code == 0 and result["passed"], err
    assert no_network == []
    assert [d["status"] for d in result["documents"]] == ["complete"] * 3
    assert result["replay"]["replayed_calls"] > 0


def test_the_committed_cassette_holds_no_key(cli: Cli) -> None:
    code, out, _ = cli("cassette", "check", str(CASSETTE))
    assert code == 0, out


@pytest.mark.slow
def test_the_examples_own_tests_pass(tmp_path: Path) -> None:
    import os
    import subprocess

    env = {k: v for k, v in os.environ.items() if not k.startswith(("OPENAI_", "LLAMA_CLOUD_"))}
    done = subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", str(EXAMPLE / "tests")],
                          cwd=tmp_path, env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "3 passed" in done.stdout
