"""A configured key pasted where it does not belong — a scenario's name, a retrieval query, a value
the validation echoes — is masked everywhere tvdb writes: the terminal (tables, JSON, errors), the
database, the HTML report. Canary keys from the environment and from tvdb.yaml."""

from __future__ import annotations

import io
import json
import shutil
from pathlib import Path

import pytest

from tests.cli_support import Cli, in_process_cli
from tests.test_cli_run import QUICKSTART
from tvdb.cli.output import MaskingStream

CANARY = "sk-canary-masking-7f3e9a1c5b2d4e6f8a0b"
YAML_CANARY = "llx-canary-from-yaml-c0ffee1234567890"


@pytest.fixture
def cli(monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], tmp_path: Path) -> Cli:
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("TVDB_DATA_DIR", raising=False)
    monkeypatch.setenv("OPENAI_API_KEY", CANARY)
    shutil.copy(QUICKSTART.parent / "quickstart" / "support.html", tmp_path / "support.html")
    return in_process_cli(monkeypatch, capsys)


def _scenario(tmp: Path, secret: str) -> Path:
    path = tmp / "leaky.yaml"
    path.write_text(f'name: "nightly {secret}"\ndescription: "pasted {secret} by mistake"\n'
                    "documents: [support.html]\nexpectations:\n  retrieval:\n"
                    f'    - {{query: "reset {secret} now", document: support.html, top_k: 3}}\n')
    return path


def _everything(tmp: Path) -> bytes:
    return b"".join(p.read_bytes() for p in tmp.rglob("*") if p.is_file() and p.name != "leaky.yaml")


def test_a_key_pasted_into_a_scenario_is_masked_in_output_storage_and_reports(cli: Cli, tmp_path: Path) -> None:
    path = _scenario(tmp_path, CANARY)
    code, out, err = cli("run", str(path), "--no-progress")
    assert code == 0, err
    assert CANARY not in out + err and "scenario nightly *** · mode mock" in out and "query 'reset *** now'" in out
    code, out, err = cli("run", str(path), "--no-progress", "--json", "--fresh")
    result = json.loads(out)
    assert code == 0 and result["scenario"] == "nightly ***" and CANARY not in out + err
    for command in (["runs"], ["runs", "show", result["run_id"]], ["logs", "--run", result["run_id"]],
                    ["cost", "report", "--by", "scenario"], ["report", "--html", "r.html"]):
        code, out, err = cli(*command)
        assert code == 0 and CANARY not in out + err, command
    assert CANARY.encode() not in _everything(tmp_path)  # database, report, uploads


def test_a_key_from_tvdb_yaml_is_masked_too(cli: Cli, tmp_path: Path) -> None:
    (tmp_path / "tvdb.yaml").write_text(f"llama_cloud_api_key: {YAML_CANARY}\n")
    code, out, err = cli("run", str(_scenario(tmp_path, YAML_CANARY)), "--no-progress")
    assert code == 0, err
    assert YAML_CANARY not in out + err and "nightly ***" in out
    assert YAML_CANARY.encode() not in _everything(tmp_path).replace(
        (tmp_path / "tvdb.yaml").read_bytes(), b"")


def test_a_value_the_validation_echoes_is_masked(cli: Cli, tmp_path: Path) -> None:
    (tmp_path / "bad.yaml").write_text(f"name: x\ndocuments: [support.html]\nmode: {CANARY}\n")
    code, out, err = cli("run", "bad.yaml", "--json")
    assert code == 2 and CANARY not in out + err
    assert json.loads(out)["error"]["file"].endswith("bad.yaml")  # still one readable JSON object


def test_the_stream_masks_longest_first_and_ignores_short_values() -> None:
    from tvdb.cli.output import register_secrets

    secrets: set[str] = set()
    register_secrets(secrets, ["abc", "sk-abcdefgh", "sk-abcdefgh-longer", None])
    assert secrets == {"sk-abcdefgh", "sk-abcdefgh-longer"}  # "abc" would mask ordinary words
    buf = io.StringIO()
    MaskingStream(buf, secrets).write("a sk-abcdefgh-longer b sk-abcdefgh abc\n")
    assert buf.getvalue() == "a *** b *** abc\n"
