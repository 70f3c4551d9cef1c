"""Ingest one document: parse with LlamaParse, chunk, embed with OpenAI, store."""

from __future__ import annotations

import mimetypes
from pathlib import Path
from typing import TYPE_CHECKING

from llama_cloud import LlamaCloud
from openai import OpenAI

from docpipe.chunker import chunk
from docpipe.config import Config
from docpipe.store import get_store

if TYPE_CHECKING:
    from tvdb import PipelineDocument


def parse(name: str, content: bytes, config: Config) -> str:
    """The document's text as Markdown, page by page (LlamaParse Parse API v2)."""
    client = LlamaCloud()  # LLAMA_CLOUD_API_KEY, LLAMA_CLOUD_BASE_URL from the environment
    media_type = mimetypes.guess_type(name)[0] or "application/octet-stream"
    result = client.parsing.parse(tier=config.tier, version="latest", upload_file=(name, content, media_type),
                                  expand=["markdown"], polling_interval=config.poll_interval_s)
    pages = result.markdown.pages if result.markdown is not None else []
    return "\n\n".join(getattr(page, "markdown", "") for page in pages)


def embed(texts: list[str], config: Config) -> list[list[float]]:
    """One vector per text (OpenAI embeddings; the SDK sends base64 and decodes it)."""
    client = OpenAI()  # OPENAI_API_KEY, OPENAI_BASE_URL from the environment
    response = client.embeddings.create(model=config.embedding_model, input=texts, dimensions=config.dimensions)
    return [item.embedding for item in sorted(response.data, key=lambda d: d.index)]


def ingest(path: Path, content: bytes, config: Config | None = None) -> int:
    """Parse, chunk, embed and store one document; returns the number of chunks stored."""
    config = config or Config.from_env()
    text = parse(path.name, content, config)
    chunks = chunk(text, config.chunk_words, config.overlap_words)
    if not chunks:
        raise ValueError(f"{path.name}: no text to index")
    get_store(config.db).replace(str(path), chunks, embed(chunks, config))
    return len(chunks)


def run(doc: PipelineDocument) -> int:
    """tvdb's scenario hook: `pipeline: docpipe.ingest:run`."""
    return ingest(doc.path, doc.content)
