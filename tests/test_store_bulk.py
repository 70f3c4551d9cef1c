"""The vector store's bulk writes and reads: chunks and vectors with one executemany each, read
back bit for bit, in job then chunk order, and a damaged blob still reported (NaN-padded) — on both
engines (PostgreSQL keeps vectors as bytea)."""

from __future__ import annotations

import numpy as np

from tvdb.domain import Chunk, EmbeddingSpace, Implementation
from tvdb.pipeline.store import insert_chunks, insert_vectors, load_index, spaces_by_job
from tvdb.storage.base import Database, savepoint, transaction

MODEL = "text-embedding-3-small"


def _store(db: Database) -> tuple[Database, np.ndarray]:
    rng = np.random.default_rng(3)
    vectors = rng.standard_normal((5, 8)).astype(np.float32)
    with transaction(db):
        insert_chunks(db, "job-b", [Chunk(0, "b zero", 2, (1,)), Chunk(1, "b one", 2, (1, 2))])
        insert_chunks(db, "job-a", [Chunk(i, f"a {i}", 2, (1,)) for i in range(3)])
        # big-endian float64 input is stored as little-endian float32 (the wire layout)
        insert_vectors(db, [(f"job-a:{i}", "job-a") for i in range(3)], vectors[:3].astype(">f8"), MODEL,
                       Implementation.MOCK)
        insert_vectors(db, [("job-b:1", "job-b"), ("job-b:0", "job-b")], vectors[[4, 3]], MODEL,
                       Implementation.REAL)
    return db, vectors


def test_vectors_round_trip_bit_for_bit_in_job_then_chunk_order(any_db: Database) -> None:
    db, vectors = _store(any_db)
    index = load_index(db, ["job-a", "job-b"], 8)
    assert index.matrix.dtype == np.float32
    assert np.array_equal(index.matrix, vectors)
    assert [(h.job_id, h.chunk_index, h.text) for h in index.hits] == [
        ("job-a", 0, "a 0"), ("job-a", 1, "a 1"), ("job-a", 2, "a 2"), ("job-b", 0, "b zero"), ("job-b", 1, "b one")]
    mock, real = EmbeddingSpace(Implementation.MOCK, MODEL, 8), EmbeddingSpace(Implementation.REAL, MODEL, 8)
    assert index.spaces == [mock, real]
    rows = db.execute("SELECT chunk_id, token_count, pages FROM chunks ORDER BY chunk_id").fetchall()
    assert rows[3:] == [("job-b:0", 2, "[1]"), ("job-b:1", 2, "[1, 2]")]


def test_spaces_per_job_come_from_the_space_index_alone(any_db: Database) -> None:
    db, _ = _store(any_db)
    mock, real = EmbeddingSpace(Implementation.MOCK, MODEL, 8), EmbeddingSpace(Implementation.REAL, MODEL, 8)
    assert spaces_by_job(db, ["job-a", "job-b", "job-none"]) == {"job-a": {mock: 3}, "job-b": {real: 2}}
    if db.engine == "sqlite":  # the validate stage and the one-space check read no 6 KiB vector row
        plan = db.execute("EXPLAIN QUERY PLAN SELECT job_id, implementation, model, dimensions, COUNT(*) "
                          "FROM vectors WHERE job_id IN (?) GROUP BY 1, 2, 3, 4", ["job-a"]).fetchall()
        assert [row[-1] for row in plan] == ["SEARCH vectors USING COVERING INDEX idx_vectors_space (job_id=?)"]


def test_a_blob_of_another_size_is_kept_nan_padded_for_validation(any_db: Database) -> None:
    db, vectors = _store(any_db)
    db.execute("UPDATE vectors SET vector = ? WHERE chunk_id = 'job-a:1'", [b"\x00" * 12])
    matrix = load_index(db, ["job-a"], 8).matrix
    assert matrix.shape == (3, 8)
    assert np.array_equal(matrix[[0, 2]], vectors[[0, 2]])
    assert np.array_equal(matrix[1, :3], [0, 0, 0]) and np.isnan(matrix[1, 3:]).all()


def test_a_savepoint_undoes_only_its_own_writes(any_db: Database) -> None:
    db = any_db
    with transaction(db):
        insert_chunks(db, "kept", [Chunk(0, "kept", 1, (1,))])
        try:
            with savepoint(db):
                insert_chunks(db, "undone", [Chunk(0, "undone", 1, (1,))])
                raise RuntimeError("a document fails half-way")
        except RuntimeError:
            pass
    assert [r[0] for r in db.execute("SELECT job_id FROM chunks").fetchall()] == ["kept"]
