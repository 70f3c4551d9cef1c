"""Answers over a run's stored vectors without holding them: block-wise top-k search and the vector
checks, both fed one `VectorBlock` at a time by `tvdb.pipeline.store.scan_vectors`.

A block's top k (tvdb.vectors.top_k: by cosine, ties to the lower row) merged with the best k so
far, by the same order over the scan's row numbers, is exactly the whole-matrix top k: a row
outside its block's top k has k better rows before it. Scores are per row (einsum), so a row
scores the same in any block (tests/test_block_search.py checks both against the full matrix).
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from tvdb.domain import EmbeddingSpace

if TYPE_CHECKING:
    import numpy as np
    import numpy.typing as npt

    from tvdb.pipeline.store import VectorBlock


@dataclass(frozen=True, slots=True)
class Found:
    """One hit of a block-wise search: row `row` of the scan, chunk `chunk_id` of `job_id`."""

    row: int
    score: float
    chunk_id: str
    job_id: str

    @property
    def chunk_index(self) -> int:
        return int(self.chunk_id.rpartition(":")[2])


@dataclass
class TopK:
    """The best `k` rows of `space` for `query` (shape (dimensions,), embedded in that space) over
    the blocks fed so far, best first. Vectors of other spaces are never compared with it."""

    query: npt.NDArray[np.float32]
    k: int
    space: EmbeddingSpace
    best: list[Found] = field(default_factory=list)
    compared: int = 0  # rows of `space` seen
    error: Exception | None = None  # why this search could not go on (the others do)

    def add(self, block: VectorBlock) -> None:
        import numpy as np

        from tvdb.vectors import top_k

        rows = np.flatnonzero(np.fromiter((s == self.space for s in block.spaces), dtype=bool,
                                          count=len(block.spaces)))
        self.compared += int(rows.size)
        if not rows.size or self.k <= 0:
            return
        mine = block.matrix if rows.size == len(block.spaces) else block.matrix[rows]  # one space: no copy
        found = [Found(block.first + int(rows[i]), score, block.chunk_ids[int(rows[i])], block.job_ids[int(rows[i])])
                 for i, score in top_k(self.query, mine, self.k)]
        self.best = sorted([*self.best, *found], key=lambda f: (-f.score, f.row))[: self.k]


@dataclass
class VectorStats:
    """What the `vectors:` expectations check, accumulated block by block: how many vectors, their
    dimension (the widest stored blob's, so a damaged one shows), how many hold NaN/inf, and the
    largest |norm − 1| (NaN once any row has no finite norm)."""

    dimensions: int
    rows: int = 0
    width: int = 0
    nonfinite: int = 0
    worst_norm_error: float = 0.0

    def add(self, block: VectorBlock) -> None:
        import numpy as np

        m = block.matrix
        self.rows += m.shape[0]
        self.width = max(self.width, *block.widths)
        self.nonfinite += int((~np.isfinite(m)).any(axis=1).sum())
        norms = np.linalg.norm(m, axis=1)
        worst = float(np.max(np.abs(norms - 1))) if norms.size else 0.0
        if math.isnan(worst) or math.isnan(self.worst_norm_error):  # as np.max over the whole matrix
            self.worst_norm_error = math.nan
        else:
            self.worst_norm_error = max(self.worst_norm_error, worst)

    @property
    def width_or_default(self) -> int:
        return self.width if self.rows else self.dimensions


def feed(blocks: Iterable[VectorBlock], *consumers: TopK | VectorStats) -> None:
    """One pass over the scan: every block to every consumer, then the block is dropped."""
    for block in blocks:
        for consumer in consumers:
            if isinstance(consumer, VectorStats):
                consumer.add(block)
            elif consumer.error is None:
                try:
                    consumer.add(block)
                except Exception as exc:  # noqa: BLE001 — one query's verdict, not the others'
                    consumer.error = exc
