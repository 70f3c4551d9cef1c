"""The block-wise scan answers exactly what the whole matrix would: the same top-k rows with the
same scores (ties to the lower row), per embedding space, and the same vector checks, for any
block size, including zero, NaN and damaged rows; the stored scans on both engines."""

from __future__ import annotations

import math

import numpy as np
import numpy.typing as npt
from hypothesis import given, settings
from hypothesis import strategies as st

from tvdb.domain import Chunk, EmbeddingSpace, Implementation
from tvdb.pipeline.search import TopK, VectorStats, feed
from tvdb.pipeline.store import VectorBlock, insert_chunks, insert_vectors, load_index, scan_vectors
from tvdb.storage.base import Database, transaction
from tvdb.vectors import top_k

MODEL = "text-embedding-3-small"
MOCK, REAL = EmbeddingSpace(Implementation.MOCK, MODEL, 4), EmbeddingSpace(Implementation.REAL, MODEL, 4)


def _blocks(matrix: npt.NDArray[np.float32], spaces: list[EmbeddingSpace], size: int) -> list[VectorBlock]:
    out = []
    for first in range(0, len(matrix), size):
        rows = range(first, min(first + size, len(matrix)))
        out.append(VectorBlock(first, tuple(f"job:{r}" for r in rows), tuple("job" for _ in rows),
                               tuple(spaces[r] for r in rows), tuple(4 for _ in rows), matrix[first:rows.stop]))
    return out


# small integers make exact ties and zero rows likely; NaN rows are never returned
values = st.sampled_from([0.0, 0.0, 1.0, -1.0, 2.0, 0.5, math.nan])


@settings(max_examples=300, deadline=None)
@given(
    rows=st.lists(st.tuples(st.lists(values, min_size=4, max_size=4), st.booleans()), max_size=40),
    query=st.lists(st.sampled_from([1.0, -1.0, 0.5, 2.0]), min_size=4, max_size=4),
    k=st.integers(0, 12),
    size=st.integers(1, 9),
)
def test_block_wise_top_k_equals_the_whole_matrix_search(
    rows: list[tuple[list[float], bool]], query: list[float], k: int, size: int
) -> None:
    matrix = np.array([r for r, _ in rows], dtype=np.float32).reshape(len(rows), 4)
    spaces = [MOCK if mock else REAL for _, mock in rows]
    q = np.array(query, dtype=np.float32)
    for space in (MOCK, REAL):
        top = TopK(q, k, space)
        feed(_blocks(matrix, spaces, size), top)
        mine = np.flatnonzero([s == space for s in spaces])
        whole = [(int(mine[i]), score) for i, score in top_k(q, matrix[mine], k)] if mine.size else []
        assert [(f.row, f.score) for f in top.best] == whole
        assert top.compared == mine.size


@settings(max_examples=200, deadline=None)
@given(rows=st.lists(st.lists(values, min_size=4, max_size=4), max_size=30), size=st.integers(1, 7))
def test_vector_stats_equal_the_whole_matrix_checks(rows: list[list[float]], size: int) -> None:
    matrix = np.array(rows, dtype=np.float32).reshape(len(rows), 4)
    stats = VectorStats(4)
    feed(_blocks(matrix, [MOCK] * len(rows), size), stats)
    assert stats.rows == len(rows) and stats.width_or_default == 4
    assert stats.nonfinite == int((~np.isfinite(matrix)).any(axis=1).sum())
    norms = np.linalg.norm(matrix, axis=1)
    worst = float(np.max(np.abs(norms - 1))) if len(rows) else 0.0
    assert stats.worst_norm_error == worst or (math.isnan(worst) and math.isnan(stats.worst_norm_error))


def test_the_scan_reads_every_stored_vector_in_blocks_as_the_index_does(any_db: Database) -> None:
    db = any_db
    rng = np.random.default_rng(5)
    vectors = rng.standard_normal((7, 4)).astype(np.float32)
    with transaction(db):
        insert_chunks(db, "job-b", [Chunk(i, f"b {i}", 2, (1,)) for i in range(3)])
        insert_chunks(db, "job-a", [Chunk(i, f"a {i}", 2, (1,)) for i in range(4)])
        insert_vectors(db, [(f"job-a:{i}", "job-a") for i in range(4)], vectors[:4], MODEL, Implementation.MOCK)
        insert_vectors(db, [(f"job-b:{i}", "job-b") for i in range(3)], vectors[4:], MODEL, Implementation.REAL)
    index = load_index(db, ["job-b", "job-a"], 4)
    for block_rows in (1, 2, 3, 100):
        blocks = list(scan_vectors(db, ["job-b", "job-a"], 4, block_rows))
        assert max(len(b.chunk_ids) for b in blocks) <= block_rows
        assert np.array_equal(np.concatenate([b.matrix for b in blocks]), index.matrix)
        assert [c for b in blocks for c in b.chunk_ids] == [*(f"job-a:{i}" for i in range(4)),
                                                            *(f"job-b:{i}" for i in range(3))]
        for space in (MOCK, REAL):
            top = TopK(vectors[5], 3, space)
            feed(scan_vectors(db, ["job-a", "job-b"], 4, block_rows), top)
            want = index.search(vectors[5], 3, space)
            assert [(f.job_id, f.chunk_index, f.score) for f in top.best] == [
                (h.job_id, h.chunk_index, h.score) for h in want]


def test_a_damaged_blob_is_a_nan_row_that_the_checks_report(any_db: Database) -> None:
    db = any_db
    with transaction(db):
        insert_chunks(db, "job", [Chunk(i, f"t {i}", 2, (1,)) for i in range(3)])
        insert_vectors(db, [(f"job:{i}", "job") for i in range(3)], np.eye(3, 4, dtype=np.float32), MODEL,
                       Implementation.MOCK)
    db.execute("UPDATE vectors SET vector = ? WHERE chunk_id = 'job:1'", [b"\x00" * 24])  # 6 dimensions
    stats = VectorStats(4)
    top = TopK(np.array([0, 1, 0, 0], dtype=np.float32), 3, MOCK)
    feed(scan_vectors(db, ["job"], 4, 2), stats, top)
    assert (stats.rows, stats.width, stats.nonfinite) == (3, 6, 1)
    assert math.isnan(stats.worst_norm_error)
    assert [f.chunk_id for f in top.best] == ["job:0", "job:2"]  # the damaged row is never a hit
