"""How a live answer differs from the recorded one: pure functions of two responses, for `tvdb cassette drift`.

    status     the HTTP status code
    headers    response header *names* added or removed, minus VOLATILE ones (per-request values,
               transport and CDN headers); the media type of `content-type`
    schema     every JSON path with its JSON type (`data[].embedding: array`, `usage.prompt_tokens:
               integer`): a path added, removed or of another type
    usage      `usage.prompt_tokens` and `usage.total_tokens` equal (what a call is billed by)
    vectors    each `data[i].embedding` (a float list or base64 little-endian float32, contracts.md
               §1.2) against the recorded one: cosine similarity at least `min_cosine`, same length

Each check gives reasons, short sentences for a CI log; none carries a header value (it may be
a secret) or a vector.
"""

from __future__ import annotations

import base64
import binascii
import math
from collections.abc import Iterable, Mapping
from typing import Any

# Headers whose presence or value changes per request, per edge node or per transport: comparing
# them would report drift every night. Everything else (openai-model, openai-version, a new
# header the API starts sending) is compared by name.
VOLATILE = frozenset({
    "date", "age", "x-request-id", "request-id", "openai-processing-ms", "retry-after", "retry-after-ms",
    "content-length", "content-encoding", "transfer-encoding", "connection", "keep-alive", "set-cookie",
    "cf-ray", "cf-cache-status", "alt-svc", "server", "via", "x-envoy-upstream-service-time",
    "strict-transport-security", "x-tvdb-replayed", "vary", "etag", "openai-organization", "openai-project",
})
# access-control-*: CORS, the edge's configuration rather than the API's
VOLATILE_PREFIXES = ("x-ratelimit-", "x-cloud-trace", "x-amzn-", "x-amz-", "cf-", "access-control-")
MAX_DEPTH = 32  # a schema deeper than this is cut (a hostile body cannot recurse us to death)


def header_names(headers: Mapping[str, Any] | Iterable[tuple[str, str]]) -> dict[str, str]:
    """Lower-cased name → first value (str), for a vcrpy mapping of lists or (name, value) pairs."""
    pairs = headers.items() if isinstance(headers, Mapping) else headers
    out: dict[str, str] = {}
    for name, value in pairs:
        first = value[0] if isinstance(value, list) and value else value
        out.setdefault(str(name).lower(), "" if isinstance(first, list) else str(first))
    return out


def _volatile(name: str) -> bool:
    return name in VOLATILE or name.startswith(VOLATILE_PREFIXES)


def header_reasons(recorded: Mapping[str, str], live: Mapping[str, str]) -> list[str]:
    """Headers added/removed (names only) and a changed media type."""
    old = {n for n in recorded if not _volatile(n)}
    new = {n for n in live if not _volatile(n)}
    reasons = [f"header added: {n}" for n in sorted(new - old)]
    reasons += [f"header removed: {n}" for n in sorted(old - new)]
    media = [h.get("content-type", "").split(";")[0].strip().lower() for h in (recorded, live)]
    if media[0] and media[1] and media[0] != media[1]:
        reasons.append(f"content-type {media[0]} → {media[1]}")
    return reasons


def json_type(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, int):
        return "integer"
    if isinstance(value, float):
        return "number"
    if isinstance(value, str):
        return "string"
    if isinstance(value, list):
        return "array"
    return "object" if isinstance(value, dict) else type(value).__name__


def schema(value: Any, path: str = "", depth: int = 0) -> dict[str, set[str]]:
    """JSON path → the JSON types seen there; list items merge under `path[]`."""
    out: dict[str, set[str]] = {}
    if path:
        out.setdefault(path, set()).add(json_type(value))
    if depth >= MAX_DEPTH:
        return out
    children: Iterable[tuple[str, Any]] = ()
    if isinstance(value, dict):
        children = ((f"{path}.{k}" if path else str(k), v) for k, v in value.items())
    elif isinstance(value, list):
        if value and all(isinstance(v, int | float) and not isinstance(v, bool) for v in value):
            children = ((f"{path}[]", value[0]),)  # a vector: one number stands for all
        else:
            children = ((f"{path}[]", v) for v in value)
    for child_path, child in children:
        for p, types in schema(child, child_path, depth + 1).items():
            out.setdefault(p, set()).update(types)
    return out


def _types(types: set[str]) -> str:
    return "|".join(sorted(types))


def schema_reasons(recorded: Any, live: Any) -> list[str]:
    """Fields added, removed or of another JSON type, by path (`data[].embedding`)."""
    old, new = schema(recorded), schema(live)
    reasons = [f"field added: {p}" for p in sorted(set(new) - set(old))]
    reasons += [f"field removed: {p}" for p in sorted(set(old) - set(new))]
    reasons += [f"type changed: {p}: {_types(old[p])} → {_types(new[p])}"
                for p in sorted(set(old) & set(new)) if old[p] != new[p]]
    return reasons


def usage_reasons(recorded: Any, live: Any) -> list[str]:
    """`usage.prompt_tokens` / `usage.total_tokens` differing (the units a call is billed in)."""
    reasons = []
    old = recorded.get("usage") if isinstance(recorded, dict) else None
    new = live.get("usage") if isinstance(live, dict) else None
    if not isinstance(old, dict) or not isinstance(new, dict):
        return []  # a missing `usage` is a schema change, reported there
    for name in ("prompt_tokens", "total_tokens"):
        if name in old and name in new and old[name] != new[name]:
            reasons.append(f"usage.{name} {old[name]!r} → {new[name]!r}")
    return reasons


def vector(value: Any) -> list[float] | None:
    """An embedding as floats: a JSON number list, or base64 little-endian float32; None if neither."""
    if isinstance(value, list) and all(isinstance(v, int | float) and not isinstance(v, bool) for v in value):
        return [float(v) for v in value]
    if isinstance(value, str):
        import numpy as np

        try:
            raw = base64.b64decode(value, validate=True)
        except (binascii.Error, ValueError):
            return None
        if len(raw) % 4:
            return None
        return [float(x) for x in np.frombuffer(raw, dtype="<f4")]
    return None


def cosine(a: list[float], b: list[float]) -> float:
    """Cosine similarity of two equal-length vectors (0.0 when either is all zeros or not finite)."""
    import numpy as np

    x, y = np.asarray(a, dtype=np.float64), np.asarray(b, dtype=np.float64)
    norm = float(np.linalg.norm(x) * np.linalg.norm(y))
    value = float(np.dot(x, y) / norm) if norm else 0.0
    return value if math.isfinite(value) else 0.0


def _embeddings(body: Any) -> dict[int, Any]:
    data = body.get("data") if isinstance(body, dict) else None
    if not isinstance(data, list):
        return {}
    out = {}
    for position, item in enumerate(data):
        if isinstance(item, dict) and "embedding" in item:
            index = item.get("index")
            out[index if isinstance(index, int) and not isinstance(index, bool) else position] = item["embedding"]
    return out


def vector_reasons(recorded: Any, live: Any, min_cosine: float) -> tuple[list[str], float | None]:
    """Reasons and the lowest cosine over the answer's vectors (None: no vectors to compare)."""
    old, new = _embeddings(recorded), _embeddings(live)
    reasons: list[str] = []
    lowest: float | None = None
    for index in sorted(set(old) & set(new)):
        a, b = vector(old[index]), vector(new[index])
        if a is None or b is None:
            continue  # an embedding of another type is a schema change, reported there
        if len(a) != len(b):
            reasons.append(f"data[{index}].embedding length {len(a)} → {len(b)}")
            continue
        c = cosine(a, b)
        lowest = c if lowest is None else min(lowest, c)
        if c < min_cosine:
            reasons.append(f"data[{index}].embedding cosine {c:.4f} < {min_cosine:g}")
    if len(old) != len(new):
        reasons.append(f"{len(old)} embeddings recorded, {len(new)} now")
    return reasons, lowest
