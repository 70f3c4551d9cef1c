"""Vector storage format and search: little-endian float32 blobs, and top-k cosine similarity.

A vector of d dimensions is stored as 4·d bytes of IEEE-754 float32, little-endian (the same layout
as the OpenAI API's base64 `encoding_format`), whatever the machine's byte order.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import numpy.typing as npt

from tvdb.errors import VectorValidationError

_WIRE = np.dtype("<f4")


def encode_vector(vector: npt.ArrayLike) -> bytes:
    """The blob of a 1-D vector: 4 bytes per value, float32 little-endian. ValueError if not 1-D."""
    array = np.asarray(vector)
    if array.ndim != 1:
        raise ValueError(f"encode_vector takes one 1-D vector, got shape {array.shape}")
    return array.astype(_WIRE, copy=False).tobytes()


def decode_vector(blob: bytes, dimensions: int) -> npt.NDArray[np.float32]:
    """The float32 vector (native byte order, writable) stored in `blob`.

    Raises VectorValidationError when the blob does not hold exactly `dimensions` float32 values.
    """
    if len(blob) != 4 * dimensions:
        raise VectorValidationError(
            f"a stored vector of {dimensions} dimensions takes {4 * dimensions} bytes, got {len(blob)}"
        )
    return np.frombuffer(blob, dtype=_WIRE).astype(np.float32)


def decode_vectors(blobs: Sequence[bytes], dimensions: int) -> npt.NDArray[np.float32]:
    """A (len(blobs), dimensions) float32 matrix of stored vectors; errors as `decode_vector`."""
    matrix = np.empty((len(blobs), dimensions), dtype=np.float32)
    for row, blob in enumerate(blobs):
        matrix[row] = decode_vector(blob, dimensions)
    return matrix


def top_k(query: npt.ArrayLike, matrix: npt.ArrayLike, k: int) -> list[tuple[int, float]]:
    """The k rows of `matrix` most cosine-similar to `query`, best first: [(row, cosine), ...].

    Rows need not be unit vectors (each is divided by its norm). Rows that are all zeros or hold a
    NaN/inf have no defined cosine and are never returned; ties go to the lower row. Returns fewer
    than k pairs when fewer rows qualify, and [] when k ≤ 0. Raises ValueError on a shape mismatch
    or a query whose norm is zero or not finite.
    """
    m = np.asarray(matrix)
    if m.dtype not in (np.float32, np.float64):
        m = m.astype(np.float64)
    q = np.asarray(query, dtype=m.dtype)  # float32 stays float32: no copy of a large matrix
    if q.ndim != 1:
        raise ValueError(f"query must be a 1-D vector, got shape {q.shape}")
    if m.ndim != 2 or m.shape[1] != q.shape[0]:
        raise ValueError(f"matrix must have shape (rows, {q.shape[0]}), got {m.shape}")
    q_norm = float(np.linalg.norm(q.astype(np.float64)))
    if not np.isfinite(q_norm) or q_norm == 0.0:
        raise ValueError("the query vector has a zero or non-finite norm")
    if k <= 0 or m.shape[0] == 0:
        return []
    with np.errstate(invalid="ignore", divide="ignore", over="ignore"):
        # einsum scores each row on its own; a BLAS gemv (`m @ q`) blocks rows in its kernels, so a
        # row's last bit would depend on the rows around it and a block-wise scan (tvdb.pipeline.search)
        # would not equal the whole-matrix search
        norms = np.sqrt(np.einsum("ij,ij->i", m, m, dtype=np.float64))
        scores = np.einsum("ij,j->i", m, q).astype(np.float64) / (norms * q_norm)
    valid = np.flatnonzero(np.isfinite(scores) & (norms > 0.0))
    # Sort by descending score, then ascending row, so ties are deterministic.
    order = np.lexsort((valid, -scores[valid]))[:k]
    return [(int(valid[i]), float(scores[valid[i]])) for i in order]


# The validate stage's check (tvdb.pipeline.validate), kept in this leaf so that the embedding
# service can check a response's vectors without importing the pipeline.
# Embedding vectors must have the right shape, finite values and unit norm: OpenAI's text-embedding-3
# and ada-002 vectors are L2-normalised (https://platform.openai.com/docs/guides/embeddings), and so
# are HashEmbedder's; a vector that is not is a sign of a malformed response (a base64 string stored
# as text, a truncated body, a NaN).

def validate_vectors(
    vectors: npt.ArrayLike,
    *,
    dimensions: int,
    norm_tolerance: float = 1e-3,
    expected_rows: int | None = None,
) -> None:
    """Check a batch of vectors: a 2-D real float array of shape (rows, `dimensions`), every value
    finite, every row's L2 norm within `norm_tolerance` of 1, and `expected_rows` rows when given.

    Raises VectorValidationError naming the problem and, per row, the first bad row (0-based).
    """
    array = np.asarray(vectors)
    if array.dtype.kind != "f":
        raise VectorValidationError(
            f"vectors must be floating point, got dtype {array.dtype} (a base64 string or text where "
            "numbers were expected?)"
        )
    if array.ndim != 2:
        raise VectorValidationError(
            f"vectors must be a 2-D array (rows, {dimensions}), got shape {array.shape}"
        )
    if expected_rows is not None and array.shape[0] != expected_rows:
        raise VectorValidationError(f"expected {expected_rows} vectors, got {array.shape[0]}")
    if array.shape[1] != dimensions:
        raise VectorValidationError(
            f"vectors have dimension {array.shape[1]}, expected {dimensions} (shape {array.shape})"
        )
    norms = _row_norms(array)
    if norms is None:  # a NaN or an inf somewhere (or float64 squares past its range): find it
        finite = np.isfinite(array).all(axis=1)
        if not finite.all():
            row = int(np.flatnonzero(~finite)[0])
            column = int(np.flatnonzero(~np.isfinite(array[row]))[0])
            raise VectorValidationError(
                f"vector {row} has a non-finite value ({float(array[row, column])} at index {column})"
            )
        with np.errstate(over="ignore"):  # a square past float64's range is the norm inf reported below
            norms = np.linalg.norm(array.astype(np.float64, copy=False), axis=1)
    off = np.abs(norms - 1.0) > norm_tolerance
    if off.any():
        row = int(np.flatnonzero(off)[0])
        raise VectorValidationError(
            f"vector {row} has L2 norm {norms[row]:.6g}, expected 1 ± {norm_tolerance:g} "
            f"({int(off.sum())} of {len(norms)} vectors off)"
        )


def _row_norms(array: npt.NDArray[np.floating]) -> npt.NDArray[np.float64] | None:
    """Each row's L2 norm in float64 from one pass over the batch, or None when a row's sum of squares
    is not finite (or the dtype is wider than float64, which einsum will not cast down).

    einsum accumulates the squares in float64 as it reads the float32 values, so neither a float64
    copy of the batch nor an `isfinite` mask of it is made (both cost more than the sum for a
    2,048 × 1,536 response). A NaN or an inf in a row makes that row's sum non-finite, and the square
    of a finite float32 cannot overflow float64: a finite sum proves the row finite, so the separate
    finiteness scan is needed only when a batch is bad.
    """
    if array.dtype.itemsize > 8:
        return None
    squares = np.einsum("ij,ij->i", array, array, dtype=np.float64)
    if not np.isfinite(squares).all():
        return None
    result: npt.NDArray[np.float64] = np.sqrt(squares)
    return result
