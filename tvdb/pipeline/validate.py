"""The validate stage: embedding vectors must have the right shape, finite values and unit norm.

OpenAI's text-embedding-3 and ada-002 vectors are L2-normalised
(https://platform.openai.com/docs/guides/embeddings), and so are HashEmbedder's; a vector that is
not is a sign of a malformed response (a base64 string stored as text, a truncated body, a NaN).
"""

from __future__ import annotations

import numpy as np
import numpy.typing as npt

from tvdb.errors import VectorValidationError


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
    finite = np.isfinite(array).all(axis=1)
    if not finite.all():
        row = int(np.flatnonzero(~finite)[0])
        column = int(np.flatnonzero(~np.isfinite(array[row]))[0])
        raise VectorValidationError(
            f"vector {row} has a non-finite value ({float(array[row, column])} at index {column})"
        )
    norms = np.linalg.norm(array.astype(np.float64, copy=False), axis=1)
    off = np.abs(norms - 1.0) > norm_tolerance
    if off.any():
        row = int(np.flatnonzero(off)[0])
        raise VectorValidationError(
            f"vector {row} has L2 norm {norms[row]:.6g}, expected 1 ± {norm_tolerance:g} "
            f"({int(off.sum())} of {len(norms)} vectors off)"
        )
