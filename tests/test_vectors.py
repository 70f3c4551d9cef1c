"""Vector blobs (little-endian float32), top-k cosine search, and the validate stage."""

from __future__ import annotations

import base64

import numpy as np
import pytest

from tvdb.errors import VectorValidationError
from tvdb.vectors import decode_vector, decode_vectors, encode_vector, top_k, validate_vectors


def unit_rows(rows: int, dimensions: int, seed: int = 0) -> np.ndarray:
    matrix = np.random.default_rng(seed).normal(size=(rows, dimensions))
    unit: np.ndarray = (matrix / np.linalg.norm(matrix, axis=1, keepdims=True)).astype(np.float32)
    return unit


# --- blobs -------------------------------------------------------------------------------------


def test_blob_is_little_endian_float32() -> None:
    assert encode_vector([1.0, -2.0]) == b"\x00\x00\x80\x3f\x00\x00\x00\xc0"
    assert len(encode_vector(np.zeros(1536, dtype=np.float32))) == 6144


def test_blob_matches_the_openai_base64_layout() -> None:
    """The API's base64 `encoding_format` is the same bytes: a decoded payload is a valid blob."""
    vector = unit_rows(1, 512)[0]
    payload = base64.b64encode(vector.astype("<f4").tobytes()).decode()
    assert decode_vector(base64.b64decode(payload), 512).tolist() == vector.tolist()


def test_round_trip_is_exact_and_float64_is_stored_as_float32() -> None:
    vector = unit_rows(1, 1536)[0]
    decoded = decode_vector(encode_vector(vector), 1536)
    assert decoded.dtype == np.float32 and decoded.flags.writeable
    assert np.array_equal(decoded, vector)
    as_double = np.array([0.1, 0.2], dtype=np.float64)
    assert np.array_equal(decode_vector(encode_vector(as_double), 2), as_double.astype(np.float32))


def test_big_endian_input_is_stored_little_endian() -> None:
    big = np.array([1.0, 0.5], dtype=">f4")
    assert encode_vector(big) == encode_vector(np.array([1.0, 0.5], dtype=np.float32))


def test_wrong_blob_length_is_a_validation_error() -> None:
    with pytest.raises(VectorValidationError, match="512 dimensions takes 2048 bytes, got 2044"):
        decode_vector(b"\x00" * 2044, 512)


def test_only_one_dimensional_vectors_are_encoded() -> None:
    with pytest.raises(ValueError, match="1-D"):
        encode_vector(np.zeros((2, 3)))


def test_decode_vectors_builds_a_matrix() -> None:
    matrix = unit_rows(5, 16)
    decoded = decode_vectors([encode_vector(row) for row in matrix], 16)
    assert decoded.shape == (5, 16) and np.array_equal(decoded, matrix)
    assert decode_vectors([], 16).shape == (0, 16)


# --- top-k ---------------------------------------------------------------------------------------


def test_top_k_ranks_by_cosine_best_first() -> None:
    matrix = unit_rows(50, 32, seed=1)
    query = matrix[17] + 0.05 * matrix[3]
    result = top_k(query, matrix, 3)
    assert [row for row, _ in result][0] == 17
    expected = matrix.astype(np.float64) @ query / np.linalg.norm(query)
    assert [row for row, _ in result] == list(np.argsort(-expected)[:3])
    assert result[0][1] == pytest.approx(expected[17], abs=1e-6)
    assert all(a[1] >= b[1] for a, b in zip(result, result[1:], strict=False))


def test_top_k_does_not_need_unit_rows() -> None:
    matrix = unit_rows(20, 8, seed=2)
    scaled = matrix * np.arange(1, 21, dtype=np.float32)[:, None]
    query = matrix[5]
    assert [r for r, _ in top_k(query * 7, scaled, 5)] == [r for r, _ in top_k(query, matrix, 5)]
    assert top_k(query * 7, scaled, 1)[0][1] == pytest.approx(1.0, abs=1e-6)


def test_top_k_skips_rows_without_a_cosine_and_breaks_ties_by_row() -> None:
    matrix = np.array(
        [[0.0, 0.0], [1.0, 0.0], [np.nan, 1.0], [1.0, 0.0], [np.inf, 0.0], [0.0, 1.0]], dtype=np.float32
    )
    assert top_k([1.0, 0.0], matrix, 10) == [(1, 1.0), (3, 1.0), (5, 0.0)]


def test_top_k_edge_cases() -> None:
    matrix = unit_rows(3, 4)
    assert top_k(matrix[0], matrix, 0) == []
    assert len(top_k(matrix[0], matrix, 99)) == 3
    assert top_k(matrix[0], np.zeros((0, 4), dtype=np.float32), 5) == []
    with pytest.raises(ValueError, match="zero or non-finite norm"):
        top_k(np.zeros(4), matrix, 1)
    with pytest.raises(ValueError, match=r"shape \(rows, 5\)"):
        top_k(np.ones(5), matrix, 1)


# --- validation ----------------------------------------------------------------------------------


def test_valid_vectors_pass() -> None:
    validate_vectors(unit_rows(10, 1536), dimensions=1536, expected_rows=10)
    validate_vectors(unit_rows(3, 8).astype(np.float64), dimensions=8)


def test_wrong_dimension_is_named() -> None:
    with pytest.raises(VectorValidationError, match="dimension 512, expected 1536"):
        validate_vectors(unit_rows(2, 512), dimensions=1536)


def test_wrong_row_count_and_shape() -> None:
    with pytest.raises(VectorValidationError, match="expected 3 vectors, got 2"):
        validate_vectors(unit_rows(2, 8), dimensions=8, expected_rows=3)
    with pytest.raises(VectorValidationError, match="2-D"):
        validate_vectors(unit_rows(1, 8)[0], dimensions=8)


def test_a_base64_string_is_never_accepted_as_a_vector() -> None:
    """C01: a base64 payload stored as text instead of decoded floats must fail validation."""
    payload = base64.b64encode(unit_rows(1, 512)[0].tobytes()).decode()
    with pytest.raises(VectorValidationError, match="floating point"):
        validate_vectors(np.array([[payload]]), dimensions=512)
    with pytest.raises(VectorValidationError, match="floating point"):
        validate_vectors(np.array([[payload]], dtype=object), dimensions=1)


@pytest.mark.parametrize(("bad", "shown"), [(np.nan, "nan"), (np.inf, "inf"), (-np.inf, "-inf")])
def test_non_finite_values_name_the_first_bad_row(bad: float, shown: str) -> None:
    vectors = unit_rows(6, 16)
    vectors[4, 9] = bad
    vectors[5, 0] = bad
    with pytest.raises(VectorValidationError, match=rf"vector 4 has a non-finite value \({shown} at index 9\)"):
        validate_vectors(vectors, dimensions=16)


def test_norm_off_names_the_first_bad_row_and_respects_the_tolerance() -> None:
    vectors = unit_rows(5, 16)
    vectors[2] *= 1.01
    vectors[3] *= 0.5
    with pytest.raises(VectorValidationError, match=r"vector 2 has L2 norm 1\.01.*2 of 5 vectors off"):
        validate_vectors(vectors, dimensions=16)
    vectors[3] /= 0.5
    validate_vectors(vectors, dimensions=16, norm_tolerance=0.02)
    with pytest.raises(VectorValidationError, match="vector 0 has L2 norm 0"):
        validate_vectors(np.zeros((1, 4), dtype=np.float32), dimensions=4)


def test_one_pass_norms_agree_with_the_float64_reference() -> None:
    """validate_vectors' norms (one einsum pass) match numpy's float64 norms; bad batches still name
    their first bad value, also in float16 and float64 batches."""
    from tvdb.vectors import _row_norms

    rng = np.random.default_rng(8)
    batch = (rng.standard_normal((64, 1536)) * rng.uniform(0.5, 2.0, (64, 1))).astype(np.float32)
    norms = _row_norms(batch)
    assert norms is not None and norms.dtype == np.float64
    assert np.allclose(norms, np.linalg.norm(batch.astype(np.float64), axis=1), rtol=1e-12, atol=0)
    half = unit_rows(3, 8).astype(np.float16)
    half[1, 2] = np.nan
    with pytest.raises(VectorValidationError, match=r"vector 1 has a non-finite value \(nan at index 2\)"):
        validate_vectors(half, dimensions=8)
    validate_vectors(unit_rows(3, 8).astype(np.longdouble), dimensions=8)  # too wide for the one pass
    huge = unit_rows(3, 8).astype(np.float64)
    huge[2, 0] = 1e200  # finite, but its square is not: the slow path tells the two apart
    assert _row_norms(huge) is None
    with pytest.raises(VectorValidationError, match=r"vector 2 has L2 norm inf"):
        validate_vectors(huge, dimensions=8)
