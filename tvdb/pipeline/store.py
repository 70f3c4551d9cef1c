"""The vector store: float32 vectors in SQLite (`vectors` table), and top-k cosine search.

Vectors are written by the embed stage as each request returns (so a resumed run never pays for
them twice) and become searchable when their job is `complete`.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

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


@dataclass(frozen=True, slots=True)
class _Row:
    job_id: str
    idx: int
    text: str
    blob: bytes


def _rows(db: sqlite_utils.Database, job_ids: Sequence[str]) -> list[_Row]:
    if not job_ids:
        return []
    marks = ", ".join("?" for _ in job_ids)
    cur = db.execute(
        f"SELECT v.job_id, c.idx, c.text, v.vector FROM vectors v JOIN chunks c USING (chunk_id) "
        f"WHERE v.job_id IN ({marks}) ORDER BY v.job_id, c.idx", list(job_ids),
    )
    return [_Row(str(j), int(i), str(t), bytes(b)) for j, i, t, b in cur.fetchall()]


def load_matrix(db: sqlite_utils.Database, job_ids: Sequence[str], dimensions: int) -> npt.NDArray[np.float32]:
    """The stored vectors of `job_ids`, shape (n, dimensions), in job then chunk order.

    A blob of another size decodes to its own length, so validation can report the wrong dimension.
    """
    import numpy as np

    from tvdb.vectors import decode_vector

    rows = _rows(db, job_ids)
    if not rows:
        return np.zeros((0, dimensions), dtype=np.float32)
    decoded = [decode_vector(r.blob, len(r.blob) // 4) for r in rows]
    if any(d.shape[0] != dimensions for d in decoded):
        width = max(d.shape[0] for d in decoded)
        out = np.full((len(decoded), width), np.nan, dtype=np.float32)
        for i, d in enumerate(decoded):
            out[i, : d.shape[0]] = d
        return out
    return np.vstack(decoded).astype(np.float32, copy=False)


def search(
    db: sqlite_utils.Database, job_ids: Sequence[str], query: npt.NDArray[np.float32], k: int
) -> list[Hit]:
    """Top-k chunks of `job_ids` by cosine similarity to `query` (shape (dimensions,))."""
    import numpy as np

    from tvdb.vectors import decode_vector, top_k

    rows = _rows(db, job_ids)
    if not rows:
        return []
    matrix = np.vstack([decode_vector(r.blob, len(r.blob) // 4) for r in rows])
    return [Hit(rows[i].job_id, rows[i].idx, score, rows[i].text) for i, score in top_k(query, matrix, k)]
