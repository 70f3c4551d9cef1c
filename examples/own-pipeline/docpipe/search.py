"""Search the store: embed the question with the same model, return the closest documents."""

from __future__ import annotations

from docpipe.config import Config
from docpipe.ingest import embed
from docpipe.store import get_store


def query(text: str, top_k: int) -> list[str]:
    """tvdb's scenario hook `search: docpipe.search:query`: the paths of the documents of the `top_k`
    closest chunks, best first (a document appears once per chunk that matched)."""
    config = Config.from_env()
    vector = embed([text], config)[0]
    return [document for document, _, _ in get_store(config.db).search(vector, top_k)]
