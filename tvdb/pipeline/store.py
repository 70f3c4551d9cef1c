"""The vector store: float32 vectors in SQLite (`vectors` table), and top-k cosine search.

Vectors are written by the embed stage as each request returns (so a resumed run never pays for
them twice) and become searchable when their job is `complete`.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import sqlite_utils

if TYPE_CHECKING:
    import numpy as np
    import numpy.typing as npt


@dataclass(frozen=True, slots=True)
class Hit:
    job_id: str
    chunk_index: int
    score: float
    text: str


def insert_vectors(
    db: sqlite_utils.Database, chunk_ids: Sequence[tuple[str, str]], vectors: npt.NDArray[np.float32], model: str
) -> None:
    """Store one vector per (chunk_id, job_id); `vectors` has shape (len(chunk_ids), dimensions)."""
    from tvdb.vectors import encode_vector

    dims = int(vectors.shape[1]) if vectors.ndim == 2 else 0
    db.table("vectors").insert_all(
        ({"chunk_id": cid, "job_id": jid, "model": model, "dimensions": dims, "vector": encode_vector(v)}
         for (cid, jid), v in zip(chunk_ids, vectors, strict=True)),
        replace=True,
    )


def _blobs(db: sqlite_utils.Database, job_ids: Sequence[str], columns: str) -> list[tuple[Any, ...]]:
    if not job_ids:
        return []
    marks = ", ".join("?" for _ in job_ids)
    return db.execute(
        f"SELECT {columns}, v.vector FROM vectors v JOIN chunks c USING (chunk_id) "
        f"WHERE v.job_id IN ({marks}) ORDER BY v.job_id, c.idx", list(job_ids),
    ).fetchall()


def _matrix(blobs: Sequence[bytes], dimensions: int) -> npt.NDArray[np.float32]:
    """Rows of the stored blobs. A blob of another size keeps its own length (NaN-padded), so that
    validation can report the wrong dimension instead of failing to decode."""
    import numpy as np

    from tvdb.vectors import decode_vector, decode_vectors

    if not blobs:
        return np.zeros((0, dimensions), dtype=np.float32)
    if all(len(b) == 4 * dimensions for b in blobs):
        return decode_vectors(blobs, dimensions)
    decoded = [decode_vector(b, len(b) // 4) for b in blobs]
    out = np.full((len(decoded), max(d.shape[0] for d in decoded)), np.nan, dtype=np.float32)
    for i, d in enumerate(decoded):
        out[i, : d.shape[0]] = d
    return out


def load_matrix(db: sqlite_utils.Database, job_ids: Sequence[str], dimensions: int) -> npt.NDArray[np.float32]:
    """The stored vectors of `job_ids`, shape (n, dimensions), in job then chunk order."""
    return _matrix([bytes(r[-1]) for r in _blobs(db, job_ids, "v.job_id")], dimensions)


@dataclass(frozen=True)
class VectorIndex:
    """The vectors of some jobs loaded once, with their chunks, for checks and top-k search."""

    hits: tuple[Hit, ...]  # one per row, score 0
    matrix: npt.NDArray[np.float32]

    def search(self, query: npt.NDArray[np.float32], k: int) -> list[Hit]:
        """Top-k chunks by cosine similarity to `query` (shape (dimensions,)), best first."""
        from dataclasses import replace

        from tvdb.vectors import top_k

        if not self.hits:
            return []
        return [replace(self.hits[i], score=score) for i, score in top_k(query, self.matrix, k)]


def load_index(db: sqlite_utils.Database, job_ids: Sequence[str], dimensions: int) -> VectorIndex:
    rows = _blobs(db, job_ids, "v.job_id, c.idx, c.text")
    hits = tuple(Hit(str(r[0]), int(r[1]), 0.0, str(r[2])) for r in rows)
    return VectorIndex(hits, _matrix([bytes(r[3]) for r in rows], dimensions))
