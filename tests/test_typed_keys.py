"""A key typed where tvdb does not expect one (a flag's value, a run id, a scenario name) is never
printed back, and an interrupted cassette run says to run it again rather than to resume it."""

from __future__ import annotations

import shutil
from pathlib import Path

from tests.test_cli_run import tvdb

REPO = Path(__file__).resolve().parents[1]
KEY = "sk-proj-CANARYzz0123456789abcdefCANARY"


def test_a_key_given_as_a_flag_value_or_a_run_id_is_masked_in_usage_errors(tmp_path: Path) -> None:
    for args in (["run", "s.yaml", "--mode", KEY], ["runs", KEY], ["resume", KEY], ["logs", KEY]):
        done = tvdb(args, tmp_path)
        assert done.returncode == 2, (args, done.stderr)
        assert "CANARY" not in done.stdout + done.stderr, args
        assert "sk-***" in done.stderr, (args, done.stderr)


def test_a_scenario_named_like_a_key_is_refused_before_anything_is_stored(tmp_path: Path) -> None:
    (tmp_path / "a.md").write_text("hello", encoding="utf-8")
    (tmp_path / "s.yaml").write_text(f"name: {KEY}\nmode: mock\ndocuments: [a.md]\n", encoding="utf-8")
    done = tvdb(["run", "s.yaml", "--json"], tmp_path)
    assert done.returncode == 2
    assert "CANARY" not in done.stdout + done.stderr
    assert "shaped like an API key, and the name becomes the cassette file" in done.stdout
    assert not (tmp_path / ".tvdb" / "tvdb.db").exists() or "CANARY" not in (
        tmp_path / ".tvdb" / "tvdb.db").read_bytes().decode("latin-1")


def test_an_interrupted_replay_says_to_run_it_again(tmp_path: Path) -> None:
    shutil.copytree(REPO / "scenarios", tmp_path / "scenarios")
    shutil.copytree(REPO / "cassettes", tmp_path / "cassettes")
    done = tvdb(["replay", "cassettes/real-embeddings-emulated.yaml"], tmp_path,
                TVDB_CRASH_AFTER_STAGE="parse:INT")
    assert done.returncode == 130, done.stderr
    assert "a cassette run is not resumed half way" in done.stderr
    assert "Run it again:\n  tvdb replay cassettes/real-embeddings-emulated.yaml" in done.stderr
    assert " resume " not in done.stderr
