"""Canonical match keys: what makes two requests "the same" for replay, computed once per request.

A key is (method, path, query, body fields). Scheme, host and port are left out, so a cassette
recorded against the emulator on a random port, or against the real API, replays anywhere. Headers
are never part of a key (they vary by machine and SDK version, contracts.md §1.1).

Body fields, by content:
- JSON: one field per top-level key, its value as canonical JSON (sorted keys, no whitespace). For
  OpenAI embeddings a string `input` is the one-element list the API treats it as, and
  `encoding_format` is left out (tvdb's decoder reads base64 and float lists alike), so cassettes
  recorded by other clients replay through tvdb's embedder.
- multipart/form-data: one field per part name; the random boundary is ignored; a file part is
  its filename, size and SHA-256, a text part its (canonical JSON) text.
- In JSON (bodies and parts) a `webhook_url` counts by its path and query only: the receiver of a
  `parse.webhook` run listens on a random port.
- form-urlencoded: one field per parameter, sorted; anything else: the SHA-256 of the bytes.

`difference(a, b)` says, without header values, how a request differs from a recorded one.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import parse_qsl, urlsplit

_BOUNDARY = re.compile(r'boundary="?([^";,]+)"?', re.I)
_DISPOSITION = re.compile(rb'([a-zA-Z*]+)="((?:[^"\\]|\\.)*)"')


@dataclass(frozen=True, slots=True)
class RequestShape:
    """The parts of a request that replay matches on; `key` is hashable and equal for equal shapes."""

    method: str
    path: str
    query: tuple[tuple[str, str], ...]
    kind: str  # json | multipart | form | raw | empty
    fields: tuple[tuple[str, str], ...]

    @property
    def key(self) -> tuple[str, str, tuple[tuple[str, str], ...], tuple[tuple[str, str], ...]]:
        return (self.method, self.path, self.query, self.fields)

    def describe(self) -> str:
        query = "?" + "&".join(f"{k}={v}" for k, v in self.query) if self.query else ""
        return f"{self.method} {self.path}{query}"


def _as_bytes(body: Any) -> bytes:
    if body is None:
        return b""
    if isinstance(body, str):
        return body.encode("utf-8")
    if isinstance(body, bytes | bytearray | memoryview):
        return bytes(body)
    if isinstance(body, list):  # vcrpy keeps an iterator body as a list of chunks
        return b"".join(_as_bytes(part) for part in body)
    read = getattr(body, "read", None)
    if callable(read):
        data = read()
        seek = getattr(body, "seek", None)
        if callable(seek):
            seek(0)
        return _as_bytes(data)
    return str(body).encode("utf-8")


def canonical_json(value: Any) -> str:
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False)


def _portable(value: Any) -> Any:
    """`value` with every `webhook_url` reduced to its path and query: a run's webhook receiver
    listens on a random loopback port, like the emulator the cassette was recorded against."""
    if isinstance(value, dict):
        out = {k: _portable(v) for k, v in value.items()}
        url = out.get("webhook_url")
        if isinstance(url, str):
            parts = urlsplit(url)
            out["webhook_url"] = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
        return out
    if isinstance(value, list):
        return [_portable(v) for v in value]
    return value


def _json_fields(path: str, payload: Any) -> tuple[tuple[str, str], ...]:
    payload = _portable(payload)
    if not isinstance(payload, dict):
        return (("", canonical_json(payload)),)
    if path.endswith("/embeddings"):
        payload = dict(payload)
        if isinstance(payload.get("input"), str):
            payload["input"] = [payload["input"]]
        payload.pop("encoding_format", None)
    return tuple(sorted((str(k), canonical_json(v)) for k, v in payload.items()))


def _part_value(name: str, filename: str | None, content: bytes) -> str:
    if filename is not None:
        digest = hashlib.sha256(content).hexdigest()
        return f"file {filename!r}, {len(content)} bytes, sha256 {digest}"
    text = content.decode("utf-8", errors="replace")
    try:
        return canonical_json(_portable(json.loads(text)))
    except ValueError:
        return text


def multipart_fields(body: bytes, content_type: str) -> tuple[tuple[str, str], ...] | None:
    """Parts by name (sorted), or None when the body is not multipart with that boundary."""
    match = _BOUNDARY.search(content_type)
    if match:
        boundary = match.group(1).encode()
    else:  # a cassette whose headers were trimmed: the first line is the delimiter
        first = body.split(b"\r\n", 1)[0]
        if not first.startswith(b"--") or len(first) < 4:
            return None
        boundary = first[2:]
    delimiter = b"--" + boundary
    chunks = body.split(delimiter)
    if len(chunks) < 3:
        return None
    fields: list[tuple[str, str]] = []
    for chunk in chunks[1:-1]:
        chunk = chunk[2:] if chunk.startswith(b"\r\n") else chunk
        head, sep, content = chunk.partition(b"\r\n\r\n")
        if not sep:
            return None
        content = content[:-2] if content.endswith(b"\r\n") else content
        params: dict[str, str] = {}
        for line in head.split(b"\r\n"):
            if line.lower().startswith(b"content-disposition:"):
                params = {k.decode().lower(): v.decode("utf-8", "replace") for k, v in _DISPOSITION.findall(line)}
        name = params.get("name", "")
        fields.append((name, _part_value(name, params.get("filename"), content)))
    return tuple(sorted(fields))


def request_shape(method: str, uri: str, body: Any, content_type: str | None) -> RequestShape:
    """The shape of one request; `content_type` is the request's Content-Type header (or None)."""
    parts = urlsplit(uri)
    query = tuple(sorted(parse_qsl(parts.query, keep_blank_values=True)))
    path = parts.path or "/"
    data = _as_bytes(body)
    ctype = (content_type or "").lower()
    if not data:
        return RequestShape(method.upper(), path, query, "empty", ())
    if "multipart/" in ctype or data.startswith(b"--"):
        fields = multipart_fields(data, content_type or "")
        if fields is not None:
            return RequestShape(method.upper(), path, query, "multipart", fields)
    if "json" in ctype or data[:1] in (b"{", b"["):
        try:
            return RequestShape(method.upper(), path, query, "json", _json_fields(path, json.loads(data)))
        except ValueError:
            pass
    if "x-www-form-urlencoded" in ctype:
        pairs = parse_qsl(data.decode("utf-8", "replace"), keep_blank_values=True)
        return RequestShape(method.upper(), path, query, "form", tuple(sorted(pairs)))
    return RequestShape(method.upper(), path, query, "raw", (("", "sha256 " + hashlib.sha256(data).hexdigest()),))


def content_type_of(headers: Mapping[str, Any]) -> str | None:
    """The Content-Type of a vcrpy request's headers (any case; a value or a list of values)."""
    for name, value in headers.items():
        if name.lower() == "content-type":
            if isinstance(value, list | tuple):
                return str(value[0]) if value else None
            return str(value)
    return None


_FILE_PART = re.compile(r"file ('(?:[^'\\]|\\.)*'|\"(?:[^\"\\]|\\.)*\"), \d+ bytes, sha256 [0-9a-f]+")


def _file_names(shape: RequestShape) -> set[tuple[str, str]]:
    """(part name, file name) of each multipart file part: an upload whose bytes changed still
    names the same file, so it is the closest recorded upload of that file."""
    return {(k, m.group(1)) for k, v in shape.fields if (m := _FILE_PART.fullmatch(v))}


def similarity(a: RequestShape, b: RequestShape) -> tuple[int, int, int, int, int]:
    """Higher is closer: same method and path first, then equal query items, then the same
    uploaded file names (a changed document's upload), then equal body fields."""
    return (int(a.method == b.method and a.path == b.path), int(a.method == b.method),
            len(set(a.query) & set(b.query)), len(_file_names(a) & _file_names(b)),
            len(set(a.fields) & set(b.fields)))


def _clip(text: str, limit: int = 80) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _list_difference(name: str, mine: str, theirs: str) -> str | None:
    try:
        a, b = json.loads(mine), json.loads(theirs)
    except ValueError:
        return None
    if not (isinstance(a, list) and isinstance(b, list)):
        return None
    if len(a) != len(b):
        return f"{name}: {len(a)} items, recorded {len(b)}"
    for i, (x, y) in enumerate(zip(a, b, strict=True)):
        if x != y:
            if isinstance(x, str) and isinstance(y, str):
                xw, yw = x.split(), y.split()
                at = next((j for j, (p, q) in enumerate(zip(xw, yw, strict=False)) if p != q), min(len(xw), len(yw)))
                return (f"{name}[{i}] differs at word {at + 1}: {_clip(' '.join(xw[at:at + 8]))!r}, "
                        f"recorded {_clip(' '.join(yw[at:at + 8]))!r}")
            return f"{name}[{i}]: {_clip(canonical_json(x))}, recorded {_clip(canonical_json(y))}"
    return None


def difference(mine: RequestShape, recorded: RequestShape) -> list[str]:
    """What differs, one line per item: method, path, query items, body fields or multipart parts."""
    out: list[str] = []
    if mine.method != recorded.method:
        out.append(f"method {mine.method}, recorded {recorded.method}")
    if mine.path != recorded.path:
        out.append(f"path {mine.path}, recorded {recorded.path}")
    if mine.query != recorded.query:
        q1, q2 = dict(mine.query), dict(recorded.query)
        for k in sorted(set(q1) | set(q2)):
            if q1.get(k) != q2.get(k):
                out.append(f"query {k}: {_clip(str(q1.get(k)))}, recorded {_clip(str(q2.get(k)))}")
    what = "part" if "multipart" in (mine.kind, recorded.kind) else "body field"
    f1, f2 = dict(mine.fields), dict(recorded.fields)
    for k in sorted(set(f1) | set(f2)):
        a, b = f1.get(k), f2.get(k)
        if a == b:
            continue
        label = f"{what} {k!r}" if k else "body"
        if a is None or b is None:
            out.append(f"{label}: {'missing' if a is None else 'not recorded'}")
            continue
        listed = _list_difference(label, a, b)
        out.append(listed or f"{label}: {_clip(a)}, recorded {_clip(b)}")
    return out
