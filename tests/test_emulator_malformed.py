"""The emulator answers malformed requests as the real API does (contracts.md §1.3, §1.5): a 400 with the
error envelope, never a 500, a traceback or a dropped connection — through the official SDK and raw
httpx2 — and token-array inputs (which the API accepts) get the vectors of the text they encode."""

from __future__ import annotations

import json
import socket
from collections.abc import Iterator

import numpy as np
import openai
import pytest

from tests.openai_support import KEY, MODEL, emulator
from tvdb.emulator import bodies
from tvdb.emulator.openai import BAD_JSON_MESSAGE
from tvdb.emulator.server import MAX_BODY_BYTES, EmulatorServer
from tvdb.http import Client
from tvdb.services.local.embedder import HashEmbedder
from tvdb.tokens import get_encoding

INVALID_INPUT = {"message": bodies.INVALID_INPUT_MESSAGE, "type": "invalid_request_error", "param": None,
                 "code": None}


@pytest.fixture(scope="module")
def server() -> Iterator[EmulatorServer]:
    with emulator() as s:
        yield s


@pytest.fixture
def client(server: EmulatorServer) -> Iterator[openai.OpenAI]:
    with openai.OpenAI(api_key=KEY, base_url=server.openai_base_url, max_retries=0) as c:
        yield c


def _raw(server: EmulatorServer, body: bytes) -> tuple[int, dict[str, object]]:
    with Client(base_url=server.openai_base_url, timeout=10) as http:
        r = http.post("/embeddings", content=body,
                      headers={"authorization": f"Bearer {KEY}", "content-type": "application/json"})
    return r.status_code, r.json()


def _error(client: openai.OpenAI, **kwargs: object) -> openai.BadRequestError:
    with pytest.raises(openai.BadRequestError) as info:
        client.embeddings.create(model=MODEL, **kwargs)  # type: ignore[call-overload]
    return info.value


@pytest.mark.parametrize("value, got", [(True, "a boolean"), (False, "a boolean"), (1.5, "a number"),
                                        ("256", "a string"), ([8], "an array")])
def test_dimensions_of_the_wrong_type_is_a_400_invalid_type(client: openai.OpenAI, value: object, got: str) -> None:
    e = _error(client, input="tide", dimensions=value)
    assert (e.status_code, e.code, e.type, e.param) == (400, "invalid_type", "invalid_request_error", "dimensions")
    assert e.body == {"message": f"Invalid type for 'dimensions': expected an integer, but got {got} instead.",
                      "type": "invalid_request_error", "param": "dimensions", "code": "invalid_type"}


@pytest.mark.parametrize("value", [[[-1]], [-1], [[1, -5]], [[10**9]], [[2**64]], [[100256]], [True], [[True]],
                                   [[1.0]], [[]], [], [[1], "ok", [None]], {"a": 1}, None, 5])
def test_bad_token_arrays_and_inputs_are_the_real_invalid_input_400(client: openai.OpenAI, value: object) -> None:
    e = _error(client, input=value)
    assert (e.status_code, e.body) == (400, INVALID_INPUT)


def test_deeply_nested_json_is_a_400_not_a_recursion_error(server: EmulatorServer) -> None:
    deep = b'{"model":"' + MODEL.encode() + b'","input":' + b"[" * 200_000 + b"]" * 200_000 + b"}"
    status, body = _raw(server, deep)
    assert (status, body["error"]) == (400, {"message": BAD_JSON_MESSAGE, "type": "invalid_request_error",
                                             "param": None, "code": None})
    status, body = _raw(server, b'{"model":"' + MODEL.encode() + b'","input":' + b"[" * 500 + b"]" * 500 + b"}")
    assert (status, body["error"]) == (400, INVALID_INPUT)  # parsed, but no valid input


@pytest.mark.parametrize("body", [b"not json", b"\xff\xfe", b"[1, 2]", b"", b'"text"'])
def test_non_json_bodies_are_the_real_400(server: EmulatorServer, body: bytes) -> None:
    status, answer = _raw(server, body)
    assert (status, answer["error"]["message"]) == (400, BAD_JSON_MESSAGE)  # type: ignore[index]


def _raw_socket(server: EmulatorServer, content_length: bytes, body: bytes = b"{}") -> bytes:
    with socket.create_connection((server.host, server.port), timeout=5) as sock:
        sock.sendall(b"POST /v1/embeddings HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer " + KEY.encode()
                     + b"\r\nContent-Length: " + content_length + b"\r\n\r\n" + body)
        chunks = []
        while chunk := sock.recv(65536):  # the server closes the connection after the answer
            chunks.append(chunk)
    return b"".join(chunks)


@pytest.mark.parametrize("value, message", [
    (b"-5", "Invalid Content-Length header '-5': expected a non-negative number of bytes."),
    (b"abc", "Invalid Content-Length header 'abc': expected a non-negative number of bytes."),
    (b"1e3", "Invalid Content-Length header '1e3': expected a non-negative number of bytes."),
    (b"99999999999999999999999", "Request body of 99,999,999,999,999,999,999,999 bytes (Content-Length) is "
                                 f"over the limit of {MAX_BODY_BYTES:,} bytes."),
    (str(MAX_BODY_BYTES + 1).encode(), f"Request body of {MAX_BODY_BYTES + 1:,} bytes (Content-Length) is "
                                       f"over the limit of {MAX_BODY_BYTES:,} bytes."),
])
def test_a_bad_or_huge_content_length_is_a_400_and_the_connection_closes(server: EmulatorServer, value: bytes,
                                                                         message: str) -> None:
    answer = _raw_socket(server, value)
    head, _, body = answer.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 400 ")
    assert b"connection: close" in head.lower()
    assert json.loads(body) == {"error": {"message": message, "type": "invalid_request_error", "param": None,
                                          "code": None}}


def test_the_server_still_answers_after_malformed_requests(server: EmulatorServer, client: openai.OpenAI) -> None:
    _raw_socket(server, b"-5")
    _raw(server, b"[" * 100_000)
    assert len(client.embeddings.create(model=MODEL, input="tide").data[0].embedding) == 1536


@pytest.mark.parametrize("text", ["hello world", "The tide gauge reads 3.2 m at 06:00.", "naïve café ☕", "  ",
                                  "\n\n", " "])
def test_token_arrays_get_the_vectors_of_the_text_they_encode(client: openai.OpenAI, text: str) -> None:
    tokens = get_encoding().encode(text)
    as_text = client.embeddings.create(model=MODEL, input=[text])
    as_tokens = client.embeddings.create(model=MODEL, input=[tokens])
    as_one_array = client.embeddings.create(model=MODEL, input=tokens)
    vectors = [np.array(r.data[0].embedding, dtype=np.float32) for r in (as_text, as_tokens, as_one_array)]
    assert np.linalg.norm(vectors[0]) == pytest.approx(1.0, abs=1e-5)  # a proper unit vector, never zeros
    assert np.array_equal(vectors[0], vectors[1]) and np.array_equal(vectors[0], vectors[2])
    if text.strip():
        assert np.array_equal(vectors[0], HashEmbedder().embed_texts([text], 1536)[0])
    assert as_tokens.usage.prompt_tokens == len(tokens) == as_text.usage.prompt_tokens


def test_whitespace_inputs_of_different_kinds_get_different_vectors(client: openai.OpenAI) -> None:
    got = client.embeddings.create(model=MODEL, input=[" ", "\n", "  ", [220], [198]])
    rows = np.array([d.embedding for d in got.data], dtype=np.float32)
    assert len({row.tobytes() for row in rows[:3]}) == 3
    assert np.array_equal(rows[0], rows[3]) and np.array_equal(rows[1], rows[4])  # [220] is " ", [198] "\n"


def test_mixed_token_arrays_and_texts_in_one_request(server: EmulatorServer) -> None:
    tokens = get_encoding().encode("harbour sensors")
    status, body = _raw(server, json.dumps({"model": MODEL, "input": ["tide", tokens],
                                            "encoding_format": "float"}).encode())
    assert status == 200
    data = body["data"]
    assert isinstance(data, list) and len(data) == 2
    expected = HashEmbedder().embed_texts(["tide", "harbour sensors"], 1536)
    assert np.allclose(np.array([d["embedding"] for d in data], dtype=np.float32), expected)
    total = len(get_encoding().encode("tide")) + len(tokens)
    assert body["usage"] == {"prompt_tokens": total, "total_tokens": total}
