"""Shared fixtures. Tests are hermetic: no network, an isolated data dir, tiktoken from the offline cache."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest
from hypothesis import HealthCheck, settings

from tests.engines import open_target
from tests.pg_server import PgServer, ServerMissing, running_server
from tvdb.storage import Database

REPO = Path(__file__).resolve().parents[1]


def _shared_dir() -> Path:
    env = os.environ.get("TVDB_SHARED_DIR")
    return Path(env) if env else REPO.parent / "shared"


SHARED = _shared_dir()
CORPUS = SHARED / "corpus"
DOCUMENTS = CORPUS / "documents"
CASSETTES = CORPUS / "cassettes"

# Property tests check results, never speed: on a loaded 2-core CI machine input generation can be
# slow, and Hypothesis's timing health check and per-example deadline would fail a correct test.
settings.register_profile("tvdb", deadline=None, suppress_health_check=[HealthCheck.too_slow])
settings.load_profile("tvdb")

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


@pytest.fixture(scope="session")
def pg_template(pg_server: PgServer) -> str:
    """A database with the current schema, which each `pg_url` copies (faster than migrating each)."""
    from tvdb.db import open_pg

    url = pg_server.fresh_database()
    open_pg(url).close()
    return url.rsplit("/", 1)[1]


@pytest.fixture
def pg_empty_url(pg_server: PgServer) -> Iterator[str]:
    """The URL (password included) of a fresh, empty database on the session's server."""
    url = pg_server.fresh_database()
    yield url
    pg_server.drop_database(url)


@pytest.fixture
def pg_url(pg_server: PgServer, pg_template: str) -> Iterator[str]:
    """The URL (password included) of a fresh database with the current schema."""
    url = pg_server.fresh_database(template=pg_template)
    yield url
    pg_server.drop_database(url)


ENGINES = ("sqlite", "postgresql")


@pytest.fixture(params=ENGINES)
def engine(request: pytest.FixtureRequest) -> str:
    """Each test that takes it runs once per storage engine (the ledger promises hold on both)."""
    return str(request.param)


@pytest.fixture
def db_target(engine: str, request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """Where the test's database lives: a SQLite file path, or the URL of a fresh PostgreSQL database
    (open it with `tests.engines.open_target`, also in a child process)."""
    if engine == "sqlite":
        return str(tmp_path / "tvdb.db")
    return str(request.getfixturevalue("pg_url"))


@pytest.fixture
def any_db(db_target: str) -> Iterator[Database]:
    """A fresh tvdb database with the current schema, on the test's engine."""
    db = open_target(db_target)
    yield db
    db.close()


@pytest.fixture
def storage_env(engine: str, request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> str | None:
    """For CLI and runner tests: on PostgreSQL, TVDB_DATABASE_URL names a fresh database (and no
    SQLite file may appear); on SQLite, the data dir's file as before. Returns the URL or None."""
    if engine == "sqlite":
        return None
    url = str(request.getfixturevalue("pg_url"))
    monkeypatch.setenv("TVDB_DATABASE_URL", url)
    return url
