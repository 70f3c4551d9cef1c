"""A key typed where tvdb does not expect one (a flag's value, a run id, a scenario name) is never
printed back or made a file name, and an interrupted cassette run says to run it again rather than to resume it."""

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


def test_a_scenario_named_with_a_key_records_only_to_a_cassette_path_given(tmp_path: Path) -> None:
    # its name is shown masked (tests/test_secret_masking.py), but the default cassette file would be
    # named after it: the key would reach the cassette folder (a repository) and the run's rows
    (tmp_path / "a.md").write_text("hello", encoding="utf-8")
    (tmp_path / "s.yaml").write_text(f"name: nightly {KEY}\nmode: mock\nservices: {{embedder: real}}\n"
                                     "documents: [a.md]\n", encoding="utf-8")
    done = tvdb(["run", "s.yaml", "--record"], tmp_path, OPENAI_API_KEY="sk-test-not-used-0123456789")
    assert done.returncode == 2
    assert "CANARY" not in done.stdout + done.stderr
    assert ("the scenario's name holds a key (it is shown masked), and a cassette is named after the "
            "scenario: rename the scenario, or pass --cassette PATH") in done.stderr
    assert not (tmp_path / "cassettes").exists()
    db = tmp_path / ".tvdb" / "tvdb.db"
    assert not db.exists() or b"CANARY" not in db.read_bytes()


def test_an_interrupted_replay_says_to_run_it_again(tmp_path: Path) -> None:
    shutil.copytree(REPO / "scenarios", tmp_path / "scenarios")
    shutil.copytree(REPO / "cassettes", tmp_path / "cassettes")
    done = tvdb(["replay", "cassettes/real-embeddings-emulated.yaml"], tmp_path,
                TVDB_CRASH_AFTER_STAGE="parse:INT")
    assert done.returncode == 130, done.stderr
    assert "a cassette run is not resumed half way" in done.stderr
    assert "Run it again:\n  tvdb replay cassettes/real-embeddings-emulated.yaml" in done.stderr
    assert " resume " not in done.stderr
