"""`tvdb cassette check` refuses what a replay would refuse — a YAML alias bomb, nesting past 64
levels, a truncated file, a structure that is not vcrpy's, an oversized file — with a message that
names the file (and line) and exit 1, instead of passing a file it only scanned for keys."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from tests.cli_support import Cli, in_process_cli
from tests.conftest import CASSETTES  # TVDB_SHARED_DIR, else ../shared
from tvdb.errors import CassetteError
from tvdb.recording.store import read_cassette

GOOD = CASSETTES / \
    "dd-trace-py__embedding_b64.yaml"
BOMB = "version: 1\na: &a [x, x, x, x, x, x, x, x, x, x]\n" + "".join(
    f"{chr(98 + i)}: &{chr(98 + i)} [*{chr(97 + i)}, *{chr(97 + i)}, *{chr(97 + i)}, *{chr(97 + i)}, "
    f"*{chr(97 + i)}, *{chr(97 + i)}, *{chr(97 + i)}, *{chr(97 + i)}, *{chr(97 + i)}, *{chr(97 + i)}]\n"
    for i in range(8)) + "interactions: []\n"


@pytest.fixture
def cli(monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], tmp_path: Path) -> Cli:
    monkeypatch.chdir(tmp_path)
    return in_process_cli(monkeypatch, capsys)


def _truncated(tmp: Path) -> Path:
    text = GOOD.read_text()
    path = tmp / "truncated.yaml"
    path.write_text(text[: len(text) // 2])
    return path


CASES = {
    "bomb.yaml": (BOMB, "refused: aliases expand to more than 100,000 values"),
    "deep.yaml": ("version: 1\ninteractions:\n" + "- " * 80 + "x\n", "refused: nested more than 64 levels deep"),
    "shape.yaml": ("version: 1\ninteractions: {a: 1}\n", "not a vcrpy cassette (no `interactions` list)"),
    "status.yaml": ("version: 1\ninteractions:\n- request: {method: POST, uri: 'https://x/v1'}\n"
                    "  response: {status: {code: lots}}\n", "interaction 1: response status code 'lots' is not"),
    "tag.yaml": ("version: 1\ninteractions:\n- !!python/object/apply:os.system ['true']\n", ":3: refused:"),
    "version.yaml": ("version: 7\ninteractions: []\n", "cassette format version 7"),
}


@pytest.mark.parametrize("name", sorted(CASES))
def test_check_refuses_a_hostile_or_malformed_cassette(cli: Cli, tmp_path: Path, name: str) -> None:
    text, message = CASES[name]
    path = tmp_path / name
    path.write_text(text)
    code, out, _ = cli("cassette", "check", str(path))
    assert code == 1 and message in out and str(path) in out, out
    assert "file(s) refused (not a loadable cassette)" in out
    code, out, _ = cli("cassette", "check", str(path), "--json")
    finding = json.loads(out)["findings"][0]
    assert code == 1 and finding["kind"] == "refused" and message in finding["excerpt"]
    with pytest.raises(CassetteError, match="refused|not a vcrpy|status code|format version|not valid YAML"):
        read_cassette(path)  # a replay refuses it the same way, before anything is constructed


def test_a_truncated_cassette_is_refused(cli: Cli, tmp_path: Path) -> None:
    path = _truncated(tmp_path)
    code, out, _ = cli("cassette", "check", str(path))
    assert code == 1 and f"{path}:" in out and "refused (not a loadable cassette)" in out
    assert "not valid YAML" in out or "has no request" in out


def test_an_oversized_cassette_is_refused_without_being_read(cli: Cli, tmp_path: Path,
                                                            monkeypatch: pytest.MonkeyPatch) -> None:
    import tvdb.recording.store as store

    monkeypatch.setattr(store, "MAX_CASSETTE_BYTES", 1024)
    path = tmp_path / "big.yaml"
    shutil.copy(GOOD, path)
    code, out, _ = cli("cassette", "check", str(path))
    assert code == 1 and f"{path}: refused: {path.stat().st_size:,} bytes is over the 0 MiB" in out


def test_a_good_cassette_still_passes_and_an_honest_alias_is_fine(cli: Cli, tmp_path: Path) -> None:
    code, out, _ = cli("cassette", "check", str(GOOD))
    assert code == 0, out
    shared = tmp_path / "aliased.yaml"  # a dumper writes an anchor for a repeated object: not a bomb
    shared.write_text("version: 1\ninteractions:\n- request: {method: GET, uri: 'https://x/v1', headers: &h {a: [b]}}\n"
                      "  response: {status: {code: 200, message: OK}, headers: *h, body: {string: ''}}\n")
    code, out, _ = cli("cassette", "check", str(shared))
    assert code == 0, out
