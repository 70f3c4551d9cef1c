"""`tvdb run --record` replaces the cassette at its path (by default `cassettes/<scenario name>.yaml`,
where the tracked cassettes live): the summary says so, by path, rather than overwriting silently."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tests.openai_support import CANARY, emulator

REPO = Path(__file__).resolve().parents[1]
SCENARIO = """name: emb
mode: real
services: {parser: mock, embedder: real}
documents: [docs/*]
"""

def tvdb(cwd: Path, *args: str, **env: str) -> subprocess.CompletedProcess[str]:
    full = {k: v for k, v in os.environ.items() if not k.startswith(("OPENAI_", "LLAMA_CLOUD_", "TVDB_"))}
    full.update({"TVDB_DATA_DIR": str(cwd / ".tvdb"), "COLUMNS": "250", "OPENAI_API_KEY": CANARY, **env})
    return subprocess.run([sys.executable, "-m", "tvdb", "--debug", *args], cwd=cwd, env=full, capture_output=True,
                          text=True, timeout=180)


@pytest.mark.slow
def test_a_recording_that_replaces_a_cassette_says_it_overwrote_it(tmp_path: Path) -> None:
    shutil.copytree(REPO / "scenarios" / "quickstart", tmp_path / "docs")
    (tmp_path / "emb.yaml").write_text(SCENARIO)
    with emulator() as srv:
        env = {"OPENAI_BASE_URL": srv.openai_base_url}
        first = tvdb(tmp_path, "run", "emb.yaml", "--record", "--no-progress", "--format", "plain", **env)
        assert first.returncode == 0, first.stderr[-3000:]
        assert "· to cassettes/emb.yaml\n" in first.stdout and "overwrote" not in first.stdout  # a new file
        second = tvdb(tmp_path, "run", "emb.yaml", "--record", "--json", **env)
        assert second.returncode == 0, second.stderr[-3000:]
        assert json.loads(second.stdout)["recording"]["overwrote"] is True
        assert json.loads(second.stdout)["recording"]["written"] is True
        third = tvdb(tmp_path, "run", "emb.yaml", "--record", "--no-progress", "--format", "plain", **env)
        assert "· to cassettes/emb.yaml; overwrote cassettes/emb.yaml (the cassette that was there)" in third.stdout
        # --cassette PATH records elsewhere and leaves the default one alone
        before = (tmp_path / "cassettes" / "emb.yaml").stat().st_ino
        other = tvdb(tmp_path, "run", "emb.yaml", "--record", "--cassette", "tmp/try.yaml", "--json", **env)
        assert json.loads(other.stdout)["recording"]["overwrote"] is False
        assert (tmp_path / "cassettes" / "emb.yaml").stat().st_ino == before


@pytest.mark.slow
def test_a_recording_whose_calls_all_failed_says_it_wrote_no_cassette(tmp_path: Path) -> None:
    # every embedding request is cut off before an answer (5 attempts: the first and 4 retries), so
    # vcrpy has no interaction to store and writes no file: "Recorded 5 calls … to P" was untrue
    shutil.copytree(REPO / "scenarios" / "quickstart", tmp_path / "docs")
    (tmp_path / "emb.yaml").write_text(SCENARIO)
    reason = ("the run's 5 calls got no answer to record (each failed before the service replied: see the "
              "failed documents), so no cassette was written to tmp/try.yaml; fix what stopped them and "
              "record again")
    with emulator(faults=[{"service": "openai", "kind": "disconnect"}]) as srv:
        env = {"OPENAI_BASE_URL": srv.openai_base_url}
        as_json = tvdb(tmp_path, "run", "emb.yaml", "--record", "--cassette", "tmp/try.yaml", "--json", **env)
        assert as_json.returncode == 1, as_json.stderr[-3000:]
        assert json.loads(as_json.stdout)["recording"] == {
            "cassette": "tmp/try.yaml", "record_mode": "fresh", "recorded_calls": 0, "recorded_cost_usd": 0.0,
            "missed_calls": 0, "written": False, "not_written": reason, "overwrote": False}
        plain = tvdb(tmp_path, "run", "emb.yaml", "--record", "--cassette", "tmp/try.yaml", "--no-progress",
                     "--format", "plain", **env)
    assert plain.returncode == 1, plain.stderr[-3000:]
    assert f"\nNothing recorded: {reason}\n" in plain.stdout and "Recorded " not in plain.stdout
    assert not (tmp_path / "tmp" / "try.yaml").exists()


def test_a_recording_counts_only_the_calls_that_got_an_answer(tmp_path: Path) -> None:
    # the first embedding attempt is cut off, its retry answered: the cassette holds one call, not two
    shutil.copytree(REPO / "scenarios" / "quickstart", tmp_path / "docs")
    (tmp_path / "emb.yaml").write_text(SCENARIO)
    with emulator(faults=[{"service": "openai", "kind": "disconnect", "nth": 1}]) as srv:
        done = tvdb(tmp_path, "run", "emb.yaml", "--record", "--cassette", "c.yaml", "--json",
                    OPENAI_BASE_URL=srv.openai_base_url)
    assert done.returncode == 0, done.stderr[-3000:]
    out = json.loads(done.stdout)
    assert out["requests"] == {"embed/real": 2, "parse/mock": 4}
    recording = out["recording"]
    assert (recording["recorded_calls"], recording["written"]) == (1, True)
    # both attempts count as spent (the cut one may have been billed); only the answered one is in the file
    assert (recording["recorded_cost_usd"], out["cost_usd"]) == (1.406e-05, 2.812e-05)


def test_a_recording_that_sent_nothing_says_the_cassette_there_is_unchanged(tmp_path: Path) -> None:
    from tvdb.recording.session import Tape, file_identity, not_written_reason

    there = tmp_path / "c.yaml"
    there.write_text("interactions: []\n")
    tape = Tape(path=there, record_mode="new_episodes", existing=file_identity(there))
    assert not_written_reason(tape, 0) == f"the run sent no request to record, so {there} is unchanged"
    missing = Tape(path=tmp_path / "none.yaml", record_mode="all", fresh=True)
    assert not_written_reason(missing, 0) == (f"the run sent no request, so no cassette was written to "
                                              f"{tmp_path / 'none.yaml'}")
    assert not_written_reason(missing, 1).startswith("the run's 1 call got no answer to record")


def test_run_help_names_the_cassette_after_the_scenarios_name(monkeypatch: pytest.MonkeyPatch,
                                                                capsys: pytest.CaptureFixture[str]) -> None:
    from tests.cli_support import in_process_cli

    monkeypatch.setenv("COLUMNS", "120")
    _, out, _ = in_process_cli(monkeypatch, capsys)("run", "--help")
    assert "then: tvdb replay cassettes/x.yaml" not in out  # the file name is not the cassette's name
    assert "--record    # writes cassettes/NAME.yaml, NAME =" in out
    assert "# the scenario's `name:`, not its file name" in out
    assert "tvdb replay cassettes/NAME.yaml" in out


@pytest.mark.parametrize("kind", ["directory", "dangling symlink", "fifo"])
def test_a_cassette_path_that_cannot_be_written_is_refused_before_anything_is_sent(tmp_path: Path,
                                                                                    kind: str) -> None:
    shutil.copytree(REPO / "scenarios" / "quickstart", tmp_path / "docs")
    (tmp_path / "emb.yaml").write_text(SCENARIO)
    target = tmp_path / "target"
    if kind == "directory":
        target.mkdir()
        why = f"it is a directory: name a file in it, e.g. --cassette {target / 'emb.yaml'}"
    elif kind == "dangling symlink":
        target.symlink_to(tmp_path / "nowhere")
        why = "it is a symlink to nothing (dangling, or a loop): give the path of a file"
    else:
        os.mkfifo(target)
        why = "it is not a regular file (a FIFO, a socket or a device): give the path of a file"
    with emulator() as srv:
        done = tvdb(tmp_path, "run", "emb.yaml", "--record", "--cassette", str(target), "--json",
                    OPENAI_BASE_URL=srv.openai_base_url)
        assert srv.count() == 0  # refused before the run: nothing spent on a recording that cannot be saved
    assert done.returncode == 2, done.stderr[-3000:]
    assert json.loads(done.stdout)["error"]["message"] == f"cannot record to {target}: {why}"
