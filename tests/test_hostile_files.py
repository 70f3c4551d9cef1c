"""Hostile configuration files: YAML nested hundreds of levels deep (scenario, tvdb.yaml, emulator
config) and a `.env` with a byte that is not UTF-8 are usage errors (exit 2) naming the file and the
line, with one JSON object under --json — never a RecursionError or UnicodeDecodeError (exit 70)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.cli_support import Cli, in_process_cli
from tvdb.config import read_dotenv, resolve_settings
from tvdb.emulator.config import load_emulator_config
from tvdb.errors import ConfigError, ScenarioError
from tvdb.scenarios.loader import load_scenario
from tvdb.yamlfile import MAX_DEPTH

DEPTHS = [MAX_DEPTH + 1, 400, 1500]


@pytest.fixture
def cli(monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], tmp_path: Path) -> Cli:
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("TVDB_DATA_DIR", str(tmp_path / ".tvdb"))

    return in_process_cli(monkeypatch, capsys)


def _flow(depth: int) -> str:
    return "[" * depth + "]" * depth


def _block(depth: int, indent: int = 1) -> str:
    """`depth` nested block mappings starting on line 1 of the returned text, each on its own line."""
    return "".join("  " * (indent + i) + f"k{i}:\n" for i in range(depth)) + "  " * (indent + depth) + "v\n"


@pytest.mark.parametrize("depth", DEPTHS)
def test_a_deeply_nested_scenario_names_file_and_line(tmp_path: Path, depth: int) -> None:
    path = tmp_path / "s.yaml"
    path.write_text("name: s\ndocuments: [a.md]\nfaults:\n  - " + _flow(depth) + "\n")
    with pytest.raises(ScenarioError, match="nested more than 64 levels") as info:
        load_scenario(path)
    assert (info.value.path, info.value.line) == (path, 4)
    path.write_text("name: s\ndocuments: [a.md]\nparse:\n" + _block(depth))
    with pytest.raises(ScenarioError, match="nested more than 64 levels") as info:
        load_scenario(path)
    # k0 (level 2) is on line 4: the error points at k62, the key whose value would be level 65
    assert info.value.line == 4 + MAX_DEPTH - 2


def test_nesting_up_to_the_limit_is_fine(tmp_path: Path) -> None:
    path = tmp_path / "s.yaml"
    # the top-level mapping and the faults list are two levels; the fault's own value fills the rest
    path.write_text("name: s\ndocuments: [a.md]\nfaults:\n  - " + _flow(MAX_DEPTH - 2) + "\n")
    (tmp_path / "a.md").write_text("x")
    with pytest.raises(ScenarioError, match=r"faults\[0\]: must be a mapping \(`key: value` lines"):
        load_scenario(path)  # parsed fine; refused by the schema, as any other wrong type


@pytest.mark.parametrize("depth", DEPTHS)
def test_a_deeply_nested_tvdb_yaml_and_emulator_config_name_file_and_line(tmp_path: Path, depth: int) -> None:
    (tmp_path / "tvdb.yaml").write_text("mode: mock\nprices:\n" + _block(depth))
    with pytest.raises(ConfigError, match=r"tvdb\.yaml:65: invalid YAML: nested more than 64 levels deep"):
        resolve_settings(cwd=tmp_path, environ={})
    (tmp_path / "emu.yaml").write_text("rpm: 5\nfaults: " + _flow(depth) + "\n")
    with pytest.raises(ConfigError, match=r"emu\.yaml:2: invalid YAML: nested more than 64 levels deep"):
        load_emulator_config(tmp_path / "emu.yaml")


def test_deep_yaml_through_the_cli_is_exit_2_with_one_json_object(cli: Cli, tmp_path: Path) -> None:
    (tmp_path / "s.yaml").write_text("name: s\ndocuments: [a.md]\nfaults:\n  - " + _flow(3000) + "\n")
    code, out, err = cli("run", "s.yaml", "--json")
    assert code == 2
    data = json.loads(out)
    assert data["exit_code"] == 2 and data["error"]["line"] == 4
    assert data["error"]["file"] == str(tmp_path / "s.yaml")
    assert "RecursionError" not in out + err and "nested more than 64 levels" in err
    (tmp_path / "tvdb.yaml").write_text("prices: " + _flow(3000) + "\n")
    code, out, err = cli("runs", "--json")
    assert code == 2
    assert json.loads(out)["error"]["message"].endswith("tvdb.yaml:1: invalid YAML: nested more than 64 "
                                                        "levels deep; refusing (flatten the structure)")
    (tmp_path / "tvdb.yaml").unlink()
    (tmp_path / "emu.yaml").write_text("faults:\n" + _block(3000, indent=0))
    code, out, err = cli("emulate", "--config", "emu.yaml", "--port", "0")
    assert code == 2 and "emu.yaml:65: invalid YAML: nested more than 64 levels deep" in err


@pytest.mark.parametrize("where", ["comment", "value", "key"])
def test_a_dotenv_with_a_non_utf8_byte_names_dotenv_and_line(tmp_path: Path, where: str) -> None:
    line2 = {"comment": b"# caf\xe9 notes", "value": b"TVDB_MODE=m\xffck", "key": b"TVDB_\xc0MODE=mock"}[where]
    (tmp_path / ".env").write_bytes(b"TVDB_CHUNKING_MAX_TOKENS=300\n" + line2 + b"\nTVDB_MODE=mock\n")
    with pytest.raises(ConfigError, match=r"\.env:2: the \.env file is not UTF-8 text \(byte 0x") as info:
        resolve_settings(cwd=tmp_path, environ={})
    assert str(tmp_path / ".env") in str(info.value)


def test_a_utf8_dotenv_still_works_and_the_process_environment_wins(tmp_path: Path) -> None:
    (tmp_path / ".env").write_text("# café\nTVDB_CHUNKING_MAX_TOKENS=300\nTVDB_MODE=real\n", encoding="utf-8")
    assert read_dotenv(tmp_path / ".env") == {"TVDB_CHUNKING_MAX_TOKENS": "300", "TVDB_MODE": "real"}
    settings = resolve_settings(cwd=tmp_path, environ={"TVDB_MODE": "mock"})
    assert (settings.chunking.max_tokens, settings.mode.value) == (300, "mock")


def test_a_dotenv_that_is_not_a_file_is_a_config_error(tmp_path: Path) -> None:
    import os

    os.mkfifo(tmp_path / "fifo")
    (tmp_path / ".env").symlink_to(tmp_path / "fifo")
    with pytest.raises(ConfigError, match=r"\.env: cannot read the \.env file: is a FIFO"):
        read_dotenv(tmp_path / ".env")  # and does not hang waiting for a writer


@pytest.mark.parametrize("command", [["runs"], ["runs", "--json"], ["cost", "report"], ["alerts", "list"],
                                     ["run", "s.yaml", "--json"]])
def test_every_command_refuses_a_non_utf8_dotenv_with_exit_2(cli: Cli, tmp_path: Path,
                                                              command: list[str]) -> None:
    (tmp_path / "a.md").write_text("harbour sensors")
    (tmp_path / "s.yaml").write_text("name: s\ndocuments: [a.md]\n")
    (tmp_path / ".env").write_bytes(b"# \xff\n")
    code, out, err = cli(*command)
    assert code == 2, out + err
    assert ".env:1: the .env file is not UTF-8 text (byte 0xff at column 3)" in err
    assert "internal error" not in err
    if "--json" in command:
        assert json.loads(out)["exit_code"] == 2


def test_a_control_character_is_refused_at_its_line_in_a_scenario_and_in_tvdb_yaml(tmp_path: Path) -> None:
    path = tmp_path / "s.yaml"
    path.write_text("name: s\ndocuments: [a.md]\nsettings:\n  mode: \"\x00\"\n")
    with pytest.raises(ScenarioError) as refused:
        load_scenario(path)
    assert refused.value.line == 4
    assert "invalid YAML: the control character #x0000 is not allowed in YAML: remove it" in str(refused.value)
    (tmp_path / "tvdb.yaml").write_text("mode: mock\n\x07\n")
    with pytest.raises(ConfigError, match=r"tvdb\.yaml:2: invalid YAML: the control character #x0007 is not allowed"):
        resolve_settings(cwd=tmp_path, environ={})
    cr = tmp_path / "cr.yaml"  # a carriage return alone is a line break in YAML too
    cr.write_text("name: c\rmode: mock\rdocuments: [a.md]\r# \x01\r", newline="")
    with pytest.raises(ScenarioError) as at_four:
        load_scenario(cr)
    assert at_four.value.line == 4
