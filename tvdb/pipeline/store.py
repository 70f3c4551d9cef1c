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


def _rows(db: sqlite_utils.Database, job_ids: Sequence[str]) -> list[dict[str, object]]:
    marks = ", ".join("?" for _ in job_ids)
    return list(db.query(
        f"SELECT v.job_id, c.idx, c.text, v.vector, v.dimensions FROM vectors v JOIN chunks c USING (chunk_id) "
        f"WHERE v.job_id IN ({marks}) ORDER BY v.job_id, c.idx", list(job_ids),
    ))


def load_matrix(db: sqlite_utils.Database, job_ids: Sequence[str], dimensions: int) -> npt.NDArray[np.float32]:
    """The stored vectors of `job_ids`, shape (n, dimensions), in job then chunk order.

    A blob of another size decodes to its own length, so validation can report the wrong dimension.
    """
    import numpy as np

    from tvdb.vectors import decode_vector

    rows = _rows(db, job_ids) if job_ids else []
    if not rows:
        return np.zeros((0, dimensions), dtype=np.float32)
    decoded = [decode_vector(bytes(r["vector"]), len(bytes(r["vector"])) // 4) for r in rows]  # type: ignore[arg-type]
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
    from tvdb.vectors import decode_vector, top_k

    import numpy as np

    rows = _rows(db, job_ids) if job_ids else []
    if not rows:
        return []
    matrix = np.vstack([decode_vector(bytes(r["vector"]), int(r["dimensions"])) for r in rows])  # type: ignore[arg-type, call-overload]
    return [Hit(str(rows[i]["job_id"]), int(rows[i]["idx"]), score, str(rows[i]["text"]))  # type: ignore[call-overload]
            for i, score in top_k(query, matrix, k)]
