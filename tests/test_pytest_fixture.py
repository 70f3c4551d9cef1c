"""The `tvdb` fixture and `@pytest.mark.tvdb(...)`: sessions with the command line's mode, ledger rows
tagged with the test's node id, the summary line's money, and the fixture next to pytest-recording's
`vcr` marker without double interception (tvdb serves OpenAI/LlamaParse, vcrpy everything else)."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

pytest_plugins = ["pytester"]
REPO = Path(__file__).resolve().parents[1]
EXAMPLE = REPO / "examples" / "own-pipeline"
INI = "[pytest]\nasyncio_default_fixture_loop_scope = function\n"

TESTS = '''
import json, os
from pathlib import Path
import openai, pytest

def embed(text):
    return openai.OpenAI().embeddings.create(input=[text], model="text-embedding-3-small")

def test_session_via_fixture(tvdb):
    with tvdb.session() as s:                  # auto, no cassette: mock
        with s.scope(correlation_id="doc-1"):
            embed("clean barnacles off the sensor window")
        embed("download water-level history")
    Path("out-fixture.json").write_text(json.dumps({"mode": s.mode, "run_id": s.run_id, "node": tvdb.node_id,
                                                    "data_dir": str(s.settings.data_dir)}))

@pytest.mark.tvdb(mode="replay", cassette="own-pipeline.yaml")
def test_marker_replays(tvdb):
    from docpipe.ingest import ingest
    assert tvdb.active is not None and tvdb.active.mode == "replay"
    for name in ("getting-started.md", "release-notes.txt", "field-guide.pdf"):
        path = Path("docs") / name
        ingest(path.resolve(), path.read_bytes())
    Path("out-marker.json").write_text(json.dumps({"run_id": tvdb.active.run_id,
                                                   "replayed": tvdb.active.summary().replayed}))
'''


@pytest.fixture
def project(pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch) -> Path:
    """The example project's docpipe, documents and recorded cassette, and tests that use the fixture."""
    root = pytester.path
    shutil.copytree(EXAMPLE / "docpipe", root / "docpipe")
    shutil.copytree(EXAMPLE / "docs", root / "docs")
    shutil.copy(EXAMPLE / "cassettes" / "own-pipeline.yaml", root)
    (root / "pytest.ini").write_text(INI)
    (root / "test_uses_tvdb.py").write_text(TESTS)
    monkeypatch.setenv("DOCPIPE_DB", str(root / "vectors.db"))
    monkeypatch.setenv("DOCPIPE_POLL_S", "0.01")
    pytester.syspathinsert(root)
    return root


def _ledger_rows(data_dir: Path, run_id: str) -> list[dict[str, object]]:
    import tvdb
    from tvdb.config import resolve_settings

    ledger = tvdb.Ledger.open(settings=resolve_settings(cwd=data_dir, environ={"TVDB_DATA_DIR": str(data_dir)}))
    try:
        return ledger.usage(run_id)
    finally:
        ledger.close()


def test_fixture_sessions_tag_rows_with_the_node_id_and_sum_up(pytester: pytest.Pytester, project: Path) -> None:
    import json

    data = project / "data"
    result = pytester.runpytest("-q", "-p", "no:cacheprovider", "--tvdb-data-dir", str(data))
    result.assert_outcomes(passed=2)
    fixture = json.loads((project / "out-fixture.json").read_text())
    assert fixture["mode"] == "mock" and fixture["node"] == "test_uses_tvdb.py::test_session_via_fixture"
    assert fixture["data_dir"] == str(data)
    rows = _ledger_rows(data, fixture["run_id"])
    assert sorted(str(r["correlation_id"]) for r in rows) == [
        "test_uses_tvdb.py::test_session_via_fixture",
        "test_uses_tvdb.py::test_session_via_fixture::doc-1"]
    assert {r["implementation"] for r in rows} == {"mock"}
    marker = json.loads((project / "out-marker.json").read_text())
    replayed = _ledger_rows(data, marker["run_id"])
    assert marker["replayed"] == len(replayed) > 0
    assert {r["correlation_id"] for r in replayed} == {"test_uses_tvdb.py::test_marker_replays"}
    would = sum(int(r["would_cost_nusd"] or 0) for r in rows + replayed) / 1e9  # type: ignore[call-overload]
    from tvdb.money import format_usd

    line = [x for x in result.outlines if x.startswith("tvdb: ")]
    assert line == [f"tvdb: 0 scenarios, 2 sessions; real spend $0, dollars avoided {format_usd(round(would, 9))}"]


def test_command_line_mode_overrides_the_marker(pytester: pytest.Pytester, project: Path) -> None:
    """--tvdb-mode mock turns the marker's replay into mock (its cassette unused); --tvdb-mode replay
    skips a session that has no cassette, saying why."""
    result = pytester.runpytest("-q", "-rs", "-p", "no:cacheprovider", "--tvdb-mode", "replay")
    result.assert_outcomes(passed=1, skipped=1)
    assert "--tvdb-mode replay: this test's tvdb session has no cassette= to replay" in result.stdout.str()
    (project / "test_uses_tvdb.py").write_text(TESTS.replace('assert tvdb.active is not None and '
                                                             'tvdb.active.mode == "replay"',
                                                             'assert tvdb.active.mode == "mock"'))
    result = pytester.runpytest("-q", "-p", "no:cacheprovider", "--tvdb-mode", "mock", "-k", "marker")
    result.assert_outcomes(passed=1)


VCR_TESTS = '''
import httpx2, openai, pytest

@pytest.mark.vcr(record_mode="once")
def test_both(tvdb):
    with tvdb.session(mode="real") as s:
        openai.OpenAI().embeddings.create(input=["hello"], model="text-embedding-3-small")
        httpx2.get(BASE + "/models")             # not a request tvdb serves: vcrpy's
    assert s.summary().calls[0].implementation == "real"
'''


def test_next_to_the_vcr_marker_each_request_has_one_interceptor(pytester: pytest.Pytester,
                                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    """tvdb (real mode, against the emulator) meters the embeddings request and sends it past the
    `vcr` cassette, so the API key never lands there; the other request is recorded by vcrpy."""
    pytest.importorskip("pytest_recording")
    from tvdb.emulator.openai import OpenAIEmulator
    from tvdb.emulator.server import EmulatorServer

    canary = "sk-canary-vcr-0123456789abcdef"
    with EmulatorServer([OpenAIEmulator()]) as server:
        monkeypatch.setenv("OPENAI_BASE_URL", server.openai_base_url)
        monkeypatch.setenv("OPENAI_API_KEY", canary)
        (pytester.path / "pytest.ini").write_text(INI)
        pytester.makepyfile(test_vcr=f"BASE = {server.openai_base_url!r}\n" + VCR_TESTS)
        result = pytester.runpytest("-q", "-p", "no:cacheprovider")
    result.assert_outcomes(passed=1)
    cassette = (pytester.path / "cassettes" / "test_vcr" / "test_both.yaml").read_text()
    assert "/v1/models" in cassette
    assert "/v1/embeddings" not in cassette and canary not in cassette
    assert "tvdb: 0 scenarios, 1 session; real spend $0.00000002" in result.stdout.str()
