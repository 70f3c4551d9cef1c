"""A malformed TVDB_DATABASE_URL is exit 2 with a fix, and the message never quotes the password."""

from __future__ import annotations

import pytest

from tests.cli_support import in_process_cli

PASSWORD = "hunter2CANARYpw"


@pytest.mark.parametrize("url", [
    f"mysql://u:{PASSWORD}@h/db", f"u:{PASSWORD}@h/db", f"garbage {PASSWORD}",
    f"postgresql://u:{PASSWORD}@[::1/db", f"postgresql://u:{PASSWORD}@host:99999/db",
    f"postgresql://u:{PASSWORD}@host:abc/db",
])
def test_a_malformed_database_url_is_a_usage_error_that_hides_the_password(
        url: str, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.setenv("TVDB_DATABASE_URL", url)
    for args in (("runs", "list"), ("runs", "list", "--json")):
        code, out, err = in_process_cli(monkeypatch, capsys)(*args)
        assert code == 2, out + err
        assert PASSWORD not in out + err
        assert "TVDB_DATABASE_URL=**** (environment)" in out + err
        assert "postgresql://user:password@host:5432/tvdb" in out + err
