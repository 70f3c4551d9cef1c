"""An internal error (exit 70) prints its message redacted: a bug's message may quote a key or a token."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.cli_support import in_process_cli

ENV_KEY = "sk-CANARY" + "Env3Kd8Lm2Np7Qr"
LITERAL = "sk-CANARY" + "Lit5Xy9Zw1Vu6Ts"


def _explode(*args: object, **kwargs: object) -> None:
    raise RuntimeError(f"boom with {ENV_KEY} and {LITERAL} at https://gw.example/v1?api-key=abc123def456")


@pytest.mark.parametrize("as_json", [False, True])
def test_an_internal_error_message_never_carries_a_key(
        as_json: bool, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.setenv("OPENAI_API_KEY", ENV_KEY)
    monkeypatch.setattr("tvdb.scenarios.loader.load_scenario", _explode)
    (tmp_path / "s.yaml").write_text("name: s\ndocuments: [a.txt]\n")
    code, out, err = in_process_cli(monkeypatch, capsys)("run", str(tmp_path / "s.yaml"), *(["--json"] * as_json))
    assert code == 70
    assert ENV_KEY not in out + err and LITERAL not in out + err and "abc123def456" not in out + err
    assert "internal error: RuntimeError: boom with *** and sk-*** at https://gw.example/v1?api-key=***" in err
    if as_json:
        error = json.loads(out)["error"]
        assert error == {"type": "RuntimeError",
                         "message": "boom with *** and sk-*** at https://gw.example/v1?api-key=***"}
