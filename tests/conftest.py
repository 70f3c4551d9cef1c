"""Shared fixtures. Tests are hermetic: no network, an isolated data dir, tiktoken from the offline cache."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

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
