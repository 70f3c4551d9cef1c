"""When tiktoken's vocabulary is missing, the hint names the absolute folder tiktoken looked in, even for a
relative TIKTOKEN_CACHE_DIR (tiktoken resolves it from the current directory)."""

from __future__ import annotations

import json
import tempfile
from pathlib import Path

import pytest

from tests.test_cli_run import QUICKSTART, tvdb
from tvdb.tokens import cache_dir_description


def test_a_relative_cache_dir_is_shown_with_the_absolute_folder(tmp_path: Path) -> None:
    (tmp_path / "empty-cache").mkdir()
    run = tvdb(["run", str(QUICKSTART), "--json"], tmp_path, TIKTOKEN_CACHE_DIR="empty-cache",
               HTTPS_PROXY="http://127.0.0.1:9")
    assert run.returncode == 2, run.stdout + run.stderr
    message = json.loads(run.stdout)["error"]["message"]
    assert ("(TIKTOKEN_CACHE_DIR is empty-cache, a relative path, so tiktoken looks in "
            f"{tmp_path.resolve() / 'empty-cache'}), e.g. export") in message


def test_the_description_for_absolute_unset_and_relative(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("TIKTOKEN_CACHE_DIR", "/srv/cache")
    assert cache_dir_description() == "TIKTOKEN_CACHE_DIR is /srv/cache"
    monkeypatch.setenv("TIKTOKEN_CACHE_DIR", "../cache")
    assert cache_dir_description() == (f"TIKTOKEN_CACHE_DIR is ../cache, a relative path, so tiktoken looks in "
                                       f"{tmp_path.resolve().parent / 'cache'}")
    monkeypatch.delenv("TIKTOKEN_CACHE_DIR")
    monkeypatch.delenv("DATA_GYM_CACHE_DIR", raising=False)
    assert cache_dir_description() == ("TIKTOKEN_CACHE_DIR is unset, so tiktoken looks in "
                                       f"{Path(tempfile.gettempdir()).absolute() / 'data-gym-cache'}")
