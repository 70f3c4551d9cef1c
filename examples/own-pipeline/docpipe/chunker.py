"""Our own chunker: paragraphs packed into chunks of at most `max_words` words, with overlap."""

from __future__ import annotations

import re


def chunk(text: str, max_words: int = 80, overlap_words: int = 10) -> list[str]:
    """Whole paragraphs per chunk where they fit; a paragraph longer than a chunk is split by words.
    Each chunk after the first starts with the last `overlap_words` words of the one before."""
    if not 0 <= overlap_words < max_words:
        raise ValueError("overlap_words must be at least 0 and less than max_words")
    chunks: list[list[str]] = []
    current: list[str] = []
    fresh = 0  # words in `current` that no earlier chunk holds

    def flush() -> None:
        nonlocal current, fresh
        chunks.append(current)
        current, fresh = (current[-overlap_words:] if overlap_words else []), 0

    for paragraph in re.split(r"\n\s*\n", text):
        words = paragraph.split()
        while words:
            room = max_words - len(current)
            if len(words) <= room:
                current, fresh, words = current + words, fresh + len(words), []
            elif fresh and len(words) <= max_words - overlap_words:
                flush()  # the paragraph fits whole in the next chunk
            else:
                current, fresh, words = current + words[:room], fresh + room, words[room:]
                flush()
    if fresh:
        chunks.append(current)
    return [" ".join(c) for c in chunks]
