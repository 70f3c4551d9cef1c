"""The one-pass base64 decode of an embeddings response gives the same bits as decoding it item by item."""

from __future__ import annotations

import json
from typing import Any

import numpy as np

from tests.openai_support import KEY, MODEL, emulator
from tvdb.errors import MalformedResponseError
from tvdb.http import Client
from tvdb.services.local.embedder import HashEmbedder
from tvdb.services.remote.openai_embedder import _decode, _decode_contiguous


def _malformed(why: str) -> MalformedResponseError:
    return MalformedResponseError(why, service="openai")


def _data(server: Any, texts: list[str], fmt: str) -> list[Any]:
    with Client() as client:
        response = client.post(f"{server.openai_base_url}/embeddings", headers={"Authorization": f"Bearer {KEY}"},
                               json={"model": MODEL, "input": texts, "encoding_format": fmt})
    assert response.status_code == 200
    data: list[Any] = json.loads(response.content)["data"]
    return data


def test_one_pass_decode_is_bit_identical_to_item_by_item_on_the_emulators_output() -> None:
    texts = [f"chunk {i}: budgets, vectors and pipelines " * (1 + i % 7) for i in range(300)]
    with emulator() as server:
        b64 = _data(server, texts, "base64")
        floats = _data(server, texts, "float")
    fast = _decode_contiguous(b64, len(texts))
    assert fast is not None and fast.shape == (300, 1536) and fast.dtype == np.float32
    # out of index order the one-pass case does not apply: each item is decoded on its own
    assert _decode_contiguous(b64[::-1], len(texts)) is None
    one_by_one = _decode(b64[::-1], len(texts), _malformed)
    assert fast.tobytes() == one_by_one.tobytes()
    assert _decode(b64, len(texts), _malformed).tobytes() == fast.tobytes()  # the path embed() takes
    # the float format carries the same float32 values (JSON keeps them exactly)
    assert np.asarray([d["embedding"] for d in floats], dtype=np.float32).tobytes() == fast.tobytes()


def test_padded_rows_are_decoded_one_by_one_with_the_same_values() -> None:
    """512 dimensions: 2,048 bytes a row end in base64 padding, so rows cannot be joined into one
    base64 text; the one-pass case steps aside and each row is decoded on its own."""
    texts = [f"short text {i}" for i in range(5)]
    with emulator() as server:
        with Client() as client:
            response = client.post(f"{server.openai_base_url}/embeddings", headers={"Authorization": f"Bearer {KEY}"},
                                   json={"model": MODEL, "input": texts, "dimensions": 512,
                                         "encoding_format": "base64"})
    data = json.loads(response.content)["data"]
    assert data[0]["embedding"].endswith("=")
    assert _decode_contiguous(data, 5) is None
    decoded = _decode(data, 5, _malformed)
    assert decoded.shape == (5, 512) and decoded.dtype == np.float32
    assert np.array_equal(decoded, HashEmbedder().embed_texts(texts, 512))
