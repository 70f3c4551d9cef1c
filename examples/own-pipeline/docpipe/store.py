"""A vector store in SQLite: one row per chunk, the vector as float32 bytes; cosine search in numpy."""

from __future__ import annotations

import sqlite3
import threading
from collections.abc import Sequence

import numpy as np

_STORES: dict[str, VectorStore] = {}
_LOCK = threading.Lock()


class VectorStore:
    def __init__(self, path: str = ":memory:") -> None:
        self._db = sqlite3.connect(path, check_same_thread=False)  # guarded by self._lock
        self._lock = threading.Lock()
        with self._lock, self._db:
            self._db.execute("CREATE TABLE IF NOT EXISTS chunks (document TEXT, idx INTEGER, text TEXT, "
                             "vector BLOB, PRIMARY KEY (document, idx))")

    def replace(self, document: str, texts: Sequence[str], vectors: Sequence[Sequence[float]]) -> None:
        """Store `document`'s chunks, replacing what it had (ingesting a document again is idempotent)."""
        rows = [(document, i, t, np.asarray(v, dtype=np.float32).tobytes())
                for i, (t, v) in enumerate(zip(texts, vectors, strict=True))]
        with self._lock, self._db:
            self._db.execute("DELETE FROM chunks WHERE document = ?", [document])
            self._db.executemany("INSERT INTO chunks VALUES (?, ?, ?, ?)", rows)

    def search(self, vector: Sequence[float], top_k: int) -> list[tuple[str, int, float]]:
        """(document, chunk index, cosine similarity) of the `top_k` closest chunks, best first."""
        with self._lock:
            rows = self._db.execute("SELECT document, idx, vector FROM chunks").fetchall()
        if not rows:
            return []
        matrix = np.stack([np.frombuffer(r[2], dtype=np.float32) for r in rows])
        query = np.asarray(vector, dtype=np.float32)
        scores = matrix @ query / (np.linalg.norm(matrix, axis=1) * np.linalg.norm(query) + 1e-12)
        best = np.argsort(-scores)[:top_k]
        return [(rows[i][0], int(rows[i][1]), float(scores[i])) for i in best]

    def vectors(self, document: str) -> list[list[float]]:
        with self._lock:
            rows = self._db.execute("SELECT vector FROM chunks WHERE document = ? ORDER BY idx",
                                    [document]).fetchall()
        return [np.frombuffer(r[0], dtype=np.float32).tolist() for r in rows]

    def documents(self) -> list[str]:
        with self._lock:
            return [r[0] for r in self._db.execute("SELECT DISTINCT document FROM chunks ORDER BY 1")]


def get_store(path: str) -> VectorStore:
    """One store per path in this process (":memory:" too, so ingest and search see the same chunks)."""
    with _LOCK:
        if path not in _STORES:
            _STORES[path] = VectorStore(path)
        return _STORES[path]


def reset_stores() -> None:
    """Forget every store of this process (tests start from empty in-memory stores)."""
    with _LOCK:
        _STORES.clear()
