"""A replay miss for a changed document names the recorded upload of the same file as the closest
one, not whichever upload happened to be recorded first (all uploads share their option parts)."""

from __future__ import annotations

from tvdb.recording.keys import RequestShape, difference, request_shape, similarity

BOUNDARY = "b0undary"
CTYPE = f"multipart/form-data; boundary={BOUNDARY}"


def _upload(filename: str, content: bytes) -> bytes:
    options = b'{"tier": "cost_effective", "version": "latest"}'
    return (f"--{BOUNDARY}\r\nContent-Disposition: form-data; name=\"configuration\"\r\n\r\n".encode() + options
            + f"\r\n--{BOUNDARY}\r\nContent-Disposition: form-data; name=\"file\"; filename=\"{filename}\"\r\n"
              "Content-Type: application/pdf\r\n\r\n".encode() + content + f"\r\n--{BOUNDARY}--\r\n".encode())


def _shape(filename: str, content: bytes) -> RequestShape:
    return request_shape("POST", "https://api.cloud.llamaindex.ai/api/v2/parse/upload",
                         _upload(filename, content), CTYPE)


def test_the_closest_recorded_upload_is_the_same_file_name() -> None:
    recorded = [_shape("a.pdf", b"%PDF a"), _shape("b.pdf", b"%PDF b"), _shape("c.pdf", b"%PDF c")]
    asked = _shape("b.pdf", b"%PDF b, edited since the recording")
    best = max(range(len(recorded)), key=lambda j: similarity(asked, recorded[j]))
    assert best == 1
    [line] = difference(asked, recorded[1])
    assert line.startswith("part 'file': file 'b.pdf', 34 bytes, sha256 ")
    assert ", recorded file 'b.pdf', 6 bytes, sha256 " in line


def test_equal_option_parts_still_count_when_no_file_name_matches() -> None:
    other = request_shape("POST", "https://api.cloud.llamaindex.ai/api/v2/parse/upload",
                          _upload("a.pdf", b"x").replace(b"cost_effective", b"agentic"), CTYPE)
    recorded = [other, _shape("a.pdf", b"y")]
    asked = _shape("new.pdf", b"z")
    assert max(range(2), key=lambda j: similarity(asked, recorded[j])) == 1  # same options as the ask
