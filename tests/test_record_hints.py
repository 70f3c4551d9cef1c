"""Every "record one" / "re-record it" hint is a command that works as written: a scenario records
with `--mode real` (a mock scenario's `--record` is refused), a custom cassette keeps `--cassette`, and
a session (or the pytest fixture) is told its own record switch."""

from __future__ import annotations

from pathlib import Path

import pytest

from tvdb.errors import CassetteError
from tvdb.recording.session import Tape, record_hint


def test_a_scenarios_hint_records_in_real_mode_and_keeps_a_custom_cassette(tmp_path: Path,
                                                                           monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    assert record_hint("scenarios/x.yaml") == (
        "record one with `tvdb run scenarios/x.yaml --mode real --record` (real mode: it spends money once)")
    assert record_hint("s.yaml", tmp_path / "tapes" / "t.yaml", verb="re-record it") == (
        "re-record it with `tvdb run s.yaml --mode real --record --cassette tapes/t.yaml` "
        "(real mode: it spends money once)")


def test_a_sessions_missing_cassette_names_the_record_mode_and_the_pytest_switch(tmp_path: Path) -> None:
    import tvdb

    with pytest.raises(CassetteError) as caught, tvdb.session(mode="replay", cassette=tmp_path / "none.yaml",
                                                              cwd=tmp_path):
        pass
    message = str(caught.value)
    assert message.endswith("no such cassette; record one with tvdb.session(mode=\"record\", cassette=...) or, "
                            "under pytest, --tvdb-record (real mode: it spends money once)")
    assert Tape(path=tmp_path / "x.yaml", record_mode="none").scenario_path is None
