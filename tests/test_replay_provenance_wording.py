"""A replayed `pipeline:` run says once, and plainly, why each call was answered from the cassette."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.cli_support import in_process_cli

CASSETTE = Path(__file__).resolve().parents[1] / "examples" / "own-pipeline" / "cassettes" / "own-pipeline.yaml"


def test_a_hook_replay_reason_names_the_cassette_once(monkeypatch: pytest.MonkeyPatch,
                                                       capsys: pytest.CaptureFixture[str]) -> None:
    code, out, err = in_process_cli(monkeypatch, capsys)("replay", str(CASSETTE), "--json")
    result = json.loads(out)
    assert code == 0 and result["passed"], err
    reasons = {p["reason"] for p in result["provenance"]}
    assert reasons == {"set by tvdb replay (answered from the cassette)"}
    assert "the cassette answers" not in out + err
