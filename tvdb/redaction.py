"""The one redaction helper: text and URLs made safe to print, log and store.

    redact("openai HTTP 401: Incorrect API key provided: sk-proj-****8X9A.", [key])
        → "openai HTTP 401: Incorrect API key provided: sk-***."
    redact_url("https://example.com/v1?api-key=sk-abc…&api-version=2024-02-01")
        → "https://example.com/v1?api-key=***&api-version=2024-02-01"
    redact_url("https://hooks.example.com/services/T0001/B0002/Xy7…token")
        → "https://hooks.example.com/services/T0001/B0002/***"
    endpoint_url("https://user:pw@gw.example.com:8443/v1/models?api-key=sk-abc…")
        → "https://gw.example.com:8443/v1/models"

What counts as a secret: every value passed in `secrets`; anything key-shaped (`sk-…`, `llx-…`,
Slack `xox?-…`); a provider's masked echo of a key (`sk-proj-****8X9A`, `DEAD****BEEF`: the visible
characters are a fragment of the key); in a URL, the user-info, the fragment, the value of every
query parameter whose name says credential (key, token, secret, signature, password, auth, …) and
every query value or path segment that looks like a token (16+ token characters mixing at least two
letters and two digits: hex, base64, UUIDs). Over-redacting a harmless segment costs a `***` in a
message; under-redacting costs a key. Stdlib only, no I/O.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Iterable
from urllib.parse import urlsplit

MASK = "***"
_KEY_SHAPED = re.compile(r"\b(sk|llx|xox[a-z])-[A-Za-z0-9_\-]{12,}")
# a key echoed with its middle starred out: the visible ends are still part of the key
_MASKED_KEY = re.compile(r"\b((?:sk|llx)-)?[A-Za-z0-9_\-]*\*{3,}[A-Za-z0-9_\-*]*")
_URL = re.compile(r"""\b[a-zA-Z][a-zA-Z0-9+.\-]*://[^\s'"<>`]+""")
_SECRET_PARAM = re.compile(r"key|token|secret|sig|password|passwd|pwd|auth|credential|session|code", re.I)
_TOKEN_CHARS = re.compile(r"[A-Za-z0-9_\-.~+/=%]{16,}")


def looks_like_token(value: str) -> bool:
    """A value that may be a credential: key-shaped, or 16+ token characters with ≥ 2 letters and ≥ 2 digits."""
    if _KEY_SHAPED.search(value):
        return True
    if not _TOKEN_CHARS.fullmatch(value):
        return False
    return sum(c.isdigit() for c in value) >= 2 and sum(c.isalpha() for c in value) >= 2


def redact_url(url: str) -> str:
    """`url` with its user-info, fragment, credential query values and token-like path segments
    replaced by `***`; scheme, host, port, the other segments and parameter names are kept."""
    try:
        parts = urlsplit(url)
    except ValueError:  # e.g. an invalid IPv6 host: nothing in it can be trusted to be harmless
        return MASK
    netloc = parts.netloc
    if "@" in netloc:
        netloc = MASK + "@" + netloc.rsplit("@", 1)[1]
    path = "/".join(MASK if looks_like_token(seg) else seg for seg in parts.path.split("/"))
    out = f"{parts.scheme}://{netloc}{path}" if parts.scheme else f"{netloc}{path}"
    if parts.query:
        params = []
        for item in parts.query.split("&"):
            name, eq, value = item.partition("=")
            secret = _SECRET_PARAM.search(name) or looks_like_token(value) or looks_like_token(name)
            params.append(f"{MASK if looks_like_token(name) else name}{eq}{MASK if secret and value else value}")
        out += "?" + "&".join(params)
    if parts.fragment:
        out += "#" + MASK
    return out


def endpoint_url(url: str) -> str:
    """Where a request went, for a message that says which URL was tried: scheme, host, port and
    path only. The user-info, query and fragment are dropped whole rather than masked, because a
    gateway may carry its token in any query parameter and the endpoint is what a reader needs;
    a token-like path segment is still masked as `redact_url` does."""
    try:
        parts = urlsplit(url)
        port = parts.port  # parsed to reject a malformed port before it is echoed
    except ValueError:
        return MASK
    host = parts.hostname or ""
    if ":" in host:  # an IPv6 literal loses its brackets in `hostname`
        host = f"[{host}]"
    netloc = host + (f":{port}" if port is not None else "")
    return redact_url(f"{parts.scheme}://{netloc}{parts.path}" if parts.scheme else f"{netloc}{parts.path}")


def redact(text: str, secrets: Iterable[str | None] = ()) -> str:
    """`text` with every given secret, every key-shaped string, every masked echo of a key and the
    secrets of every URL in it replaced by `***`."""
    for secret in secrets:
        if secret:
            text = text.replace(secret, MASK)
    text = _URL.sub(lambda m: redact_url(m.group(0)), text)
    text = _MASKED_KEY.sub(lambda m: (m.group(1) or "") + MASK, text)
    return mask_keys(text)


def has_key(text: str) -> bool:
    """Whether `text` holds a key-shaped string (`sk-…`, `llx-…`)."""
    return _KEY_SHAPED.search(text) is not None


def mask_keys(text: str) -> str:
    """`text` with every key-shaped string (`sk-…`, `llx-…`) masked, and nothing else changed: for
    messages that show a URL on purpose (an example of the form to write)."""
    return _KEY_SHAPED.sub(lambda m: f"{m.group(1)}-{MASK}", text)


class RedactingFilter(logging.Filter):
    """A logging filter that redacts every record's message (`--debug` logs HTTP request URLs)."""

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        clean = redact(message)
        if clean != message:
            record.msg, record.args = clean, ()
        return True
