"""Shared fixtures. Tests are hermetic: no network, an isolated data dir, tiktoken from the offline cache."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.pg_server import PgServer, ServerMissing, running_server

REPO = Path(__file__).resolve().parents[1]


def _shared_dir() -> Path:
    env = os.environ.get("TVDB_SHARED_DIR")
    return Path(env) if env else REPO.parent / "shared"


SHARED = _shared_dir()
CORPUS = SHARED / "corpus"
DOCUMENTS = CORPUS / "documents"
CASSETTES = CORPUS / "cassettes"

# tiktoken reads this on first use; CI sets it too, but a plain `pytest` must also work offline.
os.environ.setdefault("TIKTOKEN_CACHE_DIR", str(SHARED / "tiktoken_cache"))


@pytest.fixture
def documents_dir() -> Path:
    if not DOCUMENTS.is_dir():
        pytest.fail(f"the shared corpus is missing: {DOCUMENTS} (set TVDB_SHARED_DIR)")
    return DOCUMENTS


@pytest.fixture
def cassettes_dir() -> Path:
    if not CASSETTES.is_dir():
        pytest.fail(f"the shared cassettes are missing: {CASSETTES} (set TVDB_SHARED_DIR)")
    return CASSETTES


@pytest.fixture(autouse=True)
def _isolated_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """No test sees a developer's keys or writes into the repository's data dir."""
    for var in list(os.environ):
        if var.startswith("TVDB_") and var != "TVDB_SHARED_DIR":
            monkeypatch.delenv(var, raising=False)
    for var in ("OPENAI_API_KEY", "OPENAI_BASE_URL", "LLAMA_CLOUD_API_KEY", "LLAMA_CLOUD_BASE_URL"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv("TVDB_DATA_DIR", str(tmp_path / ".tvdb"))


@pytest.fixture(scope="session")
def pg_server() -> Iterator[PgServer]:
    """One throwaway PostgreSQL server for the whole session (tests/pg_server.py). A missing
    server fails the test: CI installs it (.ci/run), so no PostgreSQL test is ever skipped."""
    try:
        with running_server() as server:
            yield server
    except ServerMissing as exc:
        pytest.fail(str(exc))


@pytest.fixture
def pg_url(pg_server: PgServer) -> Iterator[str]:
    """The URL (password included) of a fresh, empty database on the session's server."""
    url = pg_server.fresh_database()
    yield url
    pg_server.drop_database(url)
