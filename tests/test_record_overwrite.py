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
        third = tvdb(tmp_path, "run", "emb.yaml", "--record", "--no-progress", "--format", "plain", **env)
        assert "· to cassettes/emb.yaml; overwrote cassettes/emb.yaml (the cassette that was there)" in third.stdout
        # --cassette PATH records elsewhere and leaves the default one alone
        before = (tmp_path / "cassettes" / "emb.yaml").stat().st_ino
        other = tvdb(tmp_path, "run", "emb.yaml", "--record", "--cassette", "tmp/try.yaml", "--json", **env)
        assert json.loads(other.stdout)["recording"]["overwrote"] is False
        assert (tmp_path / "cassettes" / "emb.yaml").stat().st_ino == before


def test_run_help_names_the_cassette_after_the_scenarios_name(monkeypatch: pytest.MonkeyPatch,
                                                                capsys: pytest.CaptureFixture[str]) -> None:
    from tests.cli_support import in_process_cli

    monkeypatch.setenv("COLUMNS", "120")
    _, out, _ = in_process_cli(monkeypatch, capsys)("run", "--help")
    assert "then: tvdb replay cassettes/x.yaml" not in out  # the file name is not the cassette's name
    assert "--record    # writes cassettes/NAME.yaml, NAME =" in out
    assert "# the scenario's `name:`, not its file name" in out
    assert "tvdb replay cassettes/NAME.yaml" in out
