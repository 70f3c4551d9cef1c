"""A cassette remembers which services its recording ran as mock (`tvdb run … --service parser=mock
--record`), so `tvdb replay CASSETTE` needs no flags: the mock service stays mock offline instead of
asking the cassette for traffic it never held. A re-record hint repeats the recording's modes (a hint
without `--service parser=mock` would spend real LlamaParse money), and a replay whose requests
missed never says it replayed them. Old cassettes (no `services` in their metadata) replay as before."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from tests.cli_support import in_process_cli
from tests.openai_support import CANARY, emulator
from tvdb.config import Settings
from tvdb.domain import Mode
from tvdb.errors import CassetteError
from tvdb.recording.session import Tape, record_hint, recorded_modes, replay_settings, with_recorded
from tvdb.services.modes import service_mode

REPO = Path(__file__).resolve().parents[1]
LLX_CANARY = "llx-canary-3c9e1f7a0b2d5e8f4a61"
# the quickstart's shape: a mock scenario that says nothing about its services
SCENARIO = """name: quick
mode: mock
documents: [docs/*]
chunking: {max_tokens: 128, overlap_tokens: 16}
expectations:
  retrieval:
    - {query: clean barnacles off the sensor window, document: docs/field-guide.pdf, top_k: 3}
"""
RERECORD = ("re-record it with `tvdb run quick.yaml --mode real --service parser=mock --record "
            "--cassette tapes/qs.yaml` (real mode: it spends money once)")


def tvdb(cwd: Path, *args: str, **env: str) -> subprocess.CompletedProcess[str]:
    full = {k: v for k, v in os.environ.items() if not k.startswith(("OPENAI_", "LLAMA_CLOUD_", "TVDB_"))}
    full.update({"TVDB_DATA_DIR": str(cwd / ".tvdb"), "COLUMNS": "250", **env})
    return subprocess.run([sys.executable, "-m", "tvdb", "--debug", *args], cwd=cwd, env=full, capture_output=True,
                          text=True, timeout=180)


@pytest.fixture
def project(tmp_path: Path) -> Path:
    shutil.copytree(REPO / "scenarios" / "quickstart", tmp_path / "docs")
    (tmp_path / "quick.yaml").write_text(SCENARIO)
    return tmp_path


@pytest.mark.slow
def test_a_service_recorded_as_mock_replays_mock_with_no_flags_and_the_hint_keeps_it_mock(project: Path) -> None:
    # the emulator serves OpenAI only: a real parser would fail the recording
    with emulator() as srv:
        recorded = tvdb(project, "run", "quick.yaml", "--mode", "real", "--service", "parser=mock", "--record",
                        "--cassette", "tapes/qs.yaml", "--json", OPENAI_BASE_URL=srv.openai_base_url,
                        OPENAI_API_KEY=CANARY)
    assert recorded.returncode == 0, recorded.stderr[-3000:]
    meta = yaml.safe_load((project / "tapes" / "qs.yaml").read_text())["metadata"]["tvdb"]
    assert (meta["mode"], meta["services"]) == ("real", {"parser": "mock", "embedder": "real"})

    # offline, no keys, no flags: the parser stays mock, the embedder is answered from the cassette
    replayed = tvdb(project, "replay", "tapes/qs.yaml", "--json", OPENAI_BASE_URL="http://127.0.0.1:9/v1",
                    LLAMA_CLOUD_BASE_URL="http://127.0.0.1:9")
    assert replayed.returncode == 0, replayed.stderr[-3000:] + replayed.stdout[-3000:]
    result = json.loads(replayed.stdout)
    assert result["passed"] is True and result["cost_usd"] == 0
    assert result["requests"] == {"embed/replay": 1, "parse/mock": 4, "query/replay": 1}
    assert (result["replay"]["replayed_calls"], result["replay"]["missed_calls"]) == (2, 0)
    parse = next(p for p in result["provenance"] if p["stage"] == "parse")
    assert (parse["implementation"], parse["reason"]) == ("mock", "set by the cassette: parser was mock when it "
                                                                   "was recorded")

    # a changed document misses: the hint repeats --service parser=mock, and nothing claims a replay
    (project / "docs" / "release-notes.txt").write_text("Entirely new release notes.\n")
    missed = tvdb(project, "replay", "tapes/qs.yaml", "--no-progress", "--format", "plain")
    assert missed.returncode == 1
    assert RERECORD in missed.stdout
    assert "--mode real --record" not in missed.stdout  # the old hint, which would have parsed for real
    assert "Replayed 0 of 1 calls, avoided $0; 1 missed the cassette (see the failed documents) · from " \
           "tapes/qs.yaml" in missed.stdout
    assert CANARY not in (project / "tapes" / "qs.yaml").read_text()


def test_the_recorded_modes_are_read_strictly_and_an_old_cassette_has_none() -> None:
    assert recorded_modes(None) == (None, {})
    assert recorded_modes({"scenario": "old"}) == (None, {})  # recorded before tvdb stored them
    assert recorded_modes({"mode": "real", "services": {"parser": "mock", "embedder": "real"}}) == (
        "real", {"parser": "mock", "embedder": "real"})
    # a cassette is data: unknown services and modes are ignored, never configuration
    assert recorded_modes({"mode": "turbo", "services": {"parser": "free", "ocr": "mock", "embedder": "mock"}}) == (
        None, {"embedder": "mock"})
    assert recorded_modes({"services": ["parser"]}) == (None, {})
    # a list or a mapping where a mode goes is ignored too (it was looked up in a set: TypeError, exit 70)
    assert recorded_modes({"services": {"parser": ["mock"], "embedder": {"mode": "mock"}}}) == (None, {})


def test_replay_settings_keep_a_recorded_mock_service_mock_and_leave_old_cassettes_as_before(tmp_path: Path) -> None:
    settings = Settings.model_validate({"mode": "mock"})
    new = Tape(path=tmp_path / "x.yaml", record_mode="none",
               recorded={"mode": "real", "services": {"parser": "mock", "embedder": "real"}})
    played = replay_settings(settings, new)
    assert played.mode is Mode.REAL
    assert service_mode(played, "parser") == (Mode.MOCK, "set by the cassette: parser was mock when it was recorded")
    assert service_mode(played, "embedder") == (Mode.REAL, "set by tvdb replay")
    # a scenario in real mode that says nothing of its parser: the cassette still keeps it mock
    real = replay_settings(Settings.model_validate({"mode": "real"}), new)
    assert service_mode(real, "parser")[0] is Mode.MOCK and service_mode(real, "embedder")[0] is Mode.REAL
    old = replay_settings(settings, Tape(path=tmp_path / "x.yaml", record_mode="none", recorded={}))
    assert (service_mode(old, "parser"), service_mode(old, "embedder")) == (
        (Mode.REAL, "set by tvdb replay"), (Mode.REAL, "set by tvdb replay"))


def test_a_cassette_whose_metadata_says_every_service_was_mock_is_refused(tmp_path: Path) -> None:
    # no recording is mock-only: an edited file, which would replay nothing and pass
    edited = Tape(path=tmp_path / "x.yaml", record_mode="none",
                  recorded={"mode": "real", "services": {"parser": "mock", "embedder": "mock"}})
    with pytest.raises(CassetteError) as refused:
        replay_settings(Settings.model_validate({"mode": "mock"}), edited)
    assert str(refused.value) == (
        f"{tmp_path / 'x.yaml'}: its metadata says every service was mock when it was recorded, which no "
        "recording is (a mock-only run records nothing); the file was edited: restore it or record it again")


def test_a_tape_reads_its_cassettes_metadata_once_and_a_missing_one_is_left_to_the_replay(tmp_path: Path) -> None:
    cassette = tmp_path / "c.yaml"
    cassette.write_text("interactions: []\nmetadata:\n  tvdb:\n    mode: real\n    services: {parser: mock}\n"
                        "version: 1\n")
    read = with_recorded(Tape(path=cassette, record_mode="none"))
    assert read.recorded == {"mode": "real", "services": {"parser": "mock"}}
    assert with_recorded(read) is read
    assert with_recorded(Tape(path=tmp_path / "gone.yaml", record_mode="none")).recorded == {}
    recording = Tape(path=cassette, record_mode="all", fresh=True)
    assert with_recorded(recording) is recording  # a recording writes the metadata, it does not read it


def test_a_hint_repeats_every_service_that_ran_in_another_mode(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    assert record_hint("s.yaml", mode="real", services={"parser": "mock", "embedder": "real"}) == (
        "record one with `tvdb run s.yaml --mode real --service parser=mock --record` "
        "(real mode: it spends money once)")
    assert record_hint("s.yaml", mode="mock", services={"parser": "mock", "embedder": "real"}) == (
        "record one with `tvdb run s.yaml --mode mock --service embedder=real --record` "
        "(real mode: it spends money once)")
    assert record_hint("s.yaml", tmp_path / "my tapes" / "t.yaml", verb="re-record it") == (
        "re-record it with `tvdb run s.yaml --mode real --record --cassette 'my tapes/t.yaml'` "
        "(real mode: it spends money once)")
    # the scenario's path is quoted too: pasting the hint never runs what a folder name holds
    assert record_hint("my dir $(touch PWNED) it's/s.yaml") == (
        "record one with `tvdb run 'my dir $(touch PWNED) it'\"'\"'s/s.yaml' --mode real --record` "
        "(real mode: it spends money once)")


def test_a_tracked_cassette_without_the_field_still_replays(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                           capsys: pytest.CaptureFixture[str]) -> None:
    cassette = REPO / "cassettes" / "real-embeddings-emulated.yaml"
    assert "services" not in yaml.safe_load(cassette.read_text())["metadata"]["tvdb"]  # recorded before the field
    for name in ("OPENAI_BASE_URL", "OPENAI_API_KEY", "LLAMA_CLOUD_API_KEY", "LLAMA_CLOUD_BASE_URL"):
        monkeypatch.delenv(name, raising=False)
    code, out, err = in_process_cli(monkeypatch, capsys, "--data-dir", str(tmp_path / "data"))(
        "replay", str(cassette), "--json")
    result = json.loads(out)
    assert code == 0 and result["passed"], err
    assert (result["replay"]["replayed_calls"], result["replay"]["missed_calls"]) == (3, 0)  # the 429 too
    # its scenario sets the parser to mock itself (`services:`): that carve-out still holds
    assert result["requests"] == {"embed/replay": 2, "parse/mock": 4, "query/replay": 1}
