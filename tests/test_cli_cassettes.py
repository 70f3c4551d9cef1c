"""The cassette commands end to end: `tvdb run --record` / `--record-mode`, `tvdb replay` with the
emulator stopped, `tvdb cassette check | list | show`, with canary keys on every path."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from tests.openai_support import CANARY, emulator

REPO = Path(__file__).resolve().parents[1]
LLX_CANARY = "llx-canary-5d2e8f1a9c3b7064e1f2"
SCENARIO = """name: canary
mode: real
services: {parser: mock, embedder: real}
documents: [docs/*]
chunking: {max_tokens: 128, overlap_tokens: 16}
expectations:
  retrieval:
    - {query: clean barnacles off the sensor window, document: docs/field-guide.pdf, top_k: 3}
"""

pytestmark = pytest.mark.slow


def tvdb(cwd: Path, *args: str, **env: str) -> subprocess.CompletedProcess[str]:
    full = {**os.environ, "TVDB_DATA_DIR": str(cwd / ".tvdb"), "OPENAI_API_KEY": CANARY,
            "LLAMA_CLOUD_API_KEY": LLX_CANARY, **env}
    return subprocess.run([sys.executable, "-m", "tvdb", "--debug", *args], cwd=cwd, env=full, capture_output=True,
                          text=True, timeout=180)


def _leaks(root: Path, *secrets: str) -> list[str]:
    return [str(p) for p in root.rglob("*") if p.is_file() and any(s.encode() in p.read_bytes() for s in secrets)]


@pytest.fixture
def project(tmp_path: Path) -> Path:
    shutil.copytree(REPO / "scenarios" / "quickstart", tmp_path / "docs")
    (tmp_path / "canary.yaml").write_text(SCENARIO)
    return tmp_path


def test_record_append_rerecord_replay_report_never_leak_a_key(project: Path) -> None:
    outputs = []
    with emulator(faults=[{"service": "openai", "kind": "status", "status": 429, "retry_after": 0, "nth": 1}]) as srv:
        base = {"OPENAI_BASE_URL": srv.openai_base_url}
        first = tvdb(project, "run", "canary.yaml", "--record", "--json", **base)
        outputs.append(first)
        assert first.returncode == 0, first.stderr[-3000:]
        cassette = project / "cassettes" / "canary.yaml"
        recorded = json.loads(first.stdout)["recording"]
        assert recorded["cassette"] == "cassettes/canary.yaml" and recorded["recorded_calls"] == 3
        # append: a new query is a new episode; the old interactions are replayed, not re-sent
        (project / "canary.yaml").write_text(SCENARIO + "    - {query: battery pack, document: docs/*, top_k: 3}\n")
        before = srv.count()
        appended = tvdb(project, "run", "canary.yaml", "--record-mode", "new_episodes", "--json", **base)
        outputs.append(appended)
        assert appended.returncode == 0, appended.stderr[-3000:]
        assert srv.count() - before == 1  # only the new query went out
        # what the cassette answered cost nothing and says so; only the new query is real spend
        requests = json.loads(appended.stdout)["requests"]
        assert (requests["embed/replay"], requests["query/replay"], requests["query/real"]) == (1, 1, 1)
        assert len(yaml.safe_load(cassette.read_text())["interactions"]) == 4
        rerecorded = tvdb(project, "run", "canary.yaml", "--record", "--no-progress", **base)
        outputs.append(rerecorded)
        assert rerecorded.returncode == 0, rerecorded.stderr[-3000:]
        assert "Recorded 3 calls" in rerecorded.stdout
    # the emulator is gone: replay from the cassette alone, by cassette and by scenario
    replayed = tvdb(project, "replay", "cassettes/canary.yaml", "--json", OPENAI_BASE_URL="http://127.0.0.1:9/v1")
    outputs.append(replayed)
    assert replayed.returncode == 0, replayed.stderr[-3000:]
    result = json.loads(replayed.stdout)
    run_keys = set(json.loads(first.stdout)) - {"recording"}
    assert run_keys <= set(result) and result["passed"] and result["cost_usd"] == 0
    assert result["replay"]["replayed_calls"] == 3 and result["replay"]["avoided_usd"] > 0
    # re-recorded with two queries (the 429 fired once, in the first run)
    assert result["requests"] == {"embed/replay": 1, "parse/mock": 4, "query/replay": 2}
    by_scenario = tvdb(project, "replay", "--scenario", "canary.yaml", "--no-progress", env_unset="1")
    outputs.append(by_scenario)
    assert by_scenario.returncode == 0, by_scenario.stderr[-3000:]
    assert "Replayed 3 calls, avoided $" in by_scenario.stdout
    report = tvdb(project, "cost", "report", "--by", "mode")
    listing = tvdb(project, "cassette", "list", "--json")
    shown = tvdb(project, "cassette", "show", "cassettes/canary.yaml")
    check = tvdb(project, "cassette", "check", "cassettes")
    outputs += [report, listing, shown, check]
    assert check.returncode == 0, check.stdout
    summary = json.loads(listing.stdout)["cassettes"][0]
    assert summary["by_service"] == {"openai": 3} and summary["scenario"] == "canary" and not summary["stale"]
    for done in outputs:
        assert CANARY not in done.stdout + done.stderr and LLX_CANARY not in done.stdout + done.stderr
    assert _leaks(project, CANARY, LLX_CANARY) == []


def test_cassette_check_flags_a_key_with_file_line_and_a_masked_excerpt(tmp_path: Path, cassettes_dir: Path) -> None:
    leaky = tmp_path / "leaky.yaml"
    leaky.write_text("interactions:\n- request:\n    headers:\n      authorization:\n"
                     f"      - Bearer {CANARY}\n")
    done = tvdb(tmp_path, "cassette", "check", str(leaky))
    assert done.returncode == 1
    assert f"{leaky}:5: OpenAI key" in done.stdout and "sk-can…(30 chars)" in done.stdout
    assert CANARY not in done.stdout + done.stderr
    clean = tvdb(tmp_path, "cassette", "check", str(cassettes_dir / "dd-trace-py__embedding_b64.yaml"))
    assert clean.returncode == 0, clean.stdout


def test_cassette_check_of_a_missing_file_says_unreadable_not_a_key(tmp_path: Path) -> None:
    # Before: "/x/missing.yaml:0: unreadable: …" was summed up as "1 key-shaped string(s)".
    missing = tmp_path / "missing.yaml"
    done = tvdb(tmp_path, "cassette", "check", str(missing))
    assert done.returncode == 1
    assert f"{missing}:0: unreadable: No such file or directory" in done.stdout
    assert done.stdout.strip().endswith("no key-shaped strings in 1 file(s); 1 file(s) could not be read")


def test_hostile_cassette_is_refused_and_stale_ones_are_flagged(project: Path, cassettes_dir: Path) -> None:
    marker = project / "pwned"
    evil = project / "cassettes" / "canary.yaml"
    evil.parent.mkdir()
    evil.write_text(f"version: 1\ninteractions:\n- !!python/object/apply:os.system ['touch {marker}']\n")
    done = tvdb(project, "replay", "--scenario", "canary.yaml", "--json")
    assert done.returncode == 2 and not marker.exists()
    error = json.loads(done.stdout)["error"]
    assert error["type"] == "CassetteError" and error["message"].startswith("cassettes/canary.yaml:3: refused")
    shutil.copy(cassettes_dir / "dd-trace-py__embedding_b64.yaml", evil)
    stale = tvdb(project, "cassette", "list", "--max-age", "30d", "--now", "2031-01-01T00:00:00")
    assert stale.returncode == 1 and "STALE" in stale.stdout
    fresh = tvdb(project, "cassette", "list", "--max-age", "30d")
    assert fresh.returncode == 0, fresh.stdout


def test_recording_needs_a_real_service_and_a_missing_cassette_says_how_to_record(project: Path) -> None:
    (project / "mock.yaml").write_text("name: mocked\ndocuments: [docs/*]\n")
    mock = tvdb(project, "run", "mock.yaml", "--record")
    assert mock.returncode == 2 and "no real service" in mock.stderr
    missing = tvdb(project, "replay", "--scenario", "canary.yaml")
    assert missing.returncode == 2 and "no such cassette" in missing.stderr and "--record" in missing.stderr


MOCK_SCENARIO = """name: offline
mode: mock
services: {parser: mock}
documents: [docs/*]
expectations:
  retrieval:
    - {query: clean barnacles off the sensor window, document: docs/field-guide.pdf, top_k: 3}
"""


def test_a_mock_scenario_recorded_in_real_mode_replays_from_its_cassette(project: Path) -> None:
    """A `mode: mock` scenario (offline by default) recorded with `--mode real --record` replays its
    recorded calls — in mock mode nothing would ask the cassette and a replay would pass on zero calls —
    while the service it sets to mock itself stays mock. `tvdb runs` lists the run as a replay."""
    (project / "offline.yaml").write_text(MOCK_SCENARIO)
    with emulator() as srv:
        recorded = tvdb(project, "run", "offline.yaml", "--mode", "real", "--record", "--json",
                        OPENAI_BASE_URL=srv.openai_base_url)
        assert recorded.returncode == 0, recorded.stderr[-3000:]
    replayed = tvdb(project, "replay", "--scenario", "offline.yaml", "--json", OPENAI_BASE_URL="http://127.0.0.1:9/v1")
    assert replayed.returncode == 0, replayed.stderr[-3000:]
    result = json.loads(replayed.stdout)
    assert result["requests"] == {"embed/replay": 1, "parse/mock": 4, "query/replay": 1}
    assert result["replay"]["replayed_calls"] == 2
    embed = next(p for p in result["provenance"] if p["stage"] == "embed")
    assert embed["reason"].startswith("set by tvdb replay") and embed["reason"].count("cassette") == 1
    runs = json.loads(tvdb(project, "runs", "--json").stdout)["runs"]
    assert [r["mode"] for r in runs] == ["replay", "real"]
    # a changed document is a miss, not a pass: the replay really asks the cassette
    (project / "docs" / "release-notes.txt").write_text("Entirely new release notes.\n")
    missed = tvdb(project, "replay", "--scenario", "offline.yaml", "--no-progress")
    assert missed.returncode != 0 and "cassette" in missed.stdout + missed.stderr
