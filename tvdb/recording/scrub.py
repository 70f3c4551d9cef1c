"""Secrets out of recorded traffic, before anything reaches disk.

Requests **and** responses lose these headers whatever their case: authorization, api-key,
x-api-key, openai-organization, openai-project, cookie, set-cookie. Then every stored URL, header
value and body (text or bytes, multipart parts included) has these replaced by `<SCRUBBED>`:
the configured secrets themselves (plain, URL-encoded and base64), key-shaped strings (`sk-…`,
`llx-…`, `whsec_…`, bearer tokens), the values of secret-named URL query parameters (`api_key`,
`token`, `signature`, …) and of secret-named JSON fields (`webhook_signing_secret`, `*_token`, …),
and the path of a `webhook_url` (webhook URLs carry their token in the path or query).

The same scrub runs on the request tvdb is about to match, so a key in a query string scrubs to the
same placeholder on both sides and still matches. That is why this is not `tvdb.redaction.redact`
(the helper for messages and logs): it masks every token-like path segment, which would turn every
parse job id in a status-poll URL into `***` and make the polls of two jobs indistinguishable.
"""

from __future__ import annotations

import base64
import re
from collections.abc import Iterable
from typing import Any
from urllib.parse import quote, quote_plus

PLACEHOLDER = "<SCRUBBED>"
DROPPED_HEADERS = frozenset({
    "authorization", "api-key", "x-api-key", "openai-organization", "openai-project", "cookie", "set-cookie",
    "proxy-authorization", "lc-signature",
})
_SECRET_NAME = r"(?:api[_-]?key|apikey|key|token|access[_-]?token|[a-z_]*_token|secret|[a-z_]*_secret|password|" \
               r"signature|sig|auth|credential|client[_-]?secret)"
# a value may already hold the placeholder (`sk-<SCRUBBED>` from KEY_SHAPES): it is part of the value,
# else the value ends at its `<` and the placeholder is written twice (`api-key=<SCRUBBED><SCRUBBED>`)
_QUERY = re.compile(r"([?&;]" + _SECRET_NAME + r"=)((?:<SCRUBBED>|[^&#\s\"'<>\\])+)", re.I)
_JSON_FIELD = re.compile(r'("' + _SECRET_NAME + r'"\s*:\s*")((?:[^"\\]|\\.)*)(")', re.I)
# substrings without which no rule below can apply: a few fast `in` tests spare most values and
# bodies the regular expressions
_HINTS = ("sk-", "llx-", "whsec_", "xox", "bearer", "webhook", "key", "token", "secret", "password", "sig",
          "auth", "credential")
_WEBHOOK_URL = re.compile(r'("webhook_url"\s*:\s*"https?://[^/"]+)(/[^"]*)(")', re.I)
KEY_SHAPES = (
    re.compile(r"\bsk-[A-Za-z0-9_\-]{8,}"),
    re.compile(r"\bllx-[A-Za-z0-9_\-]{8,}"),
    re.compile(r"\bwhsec_[A-Za-z0-9+/=_\-]{8,}"),
    re.compile(r"\bxox[a-z]-[A-Za-z0-9\-]{8,}"),  # Slack tokens
    re.compile(r"(?i)\bbearer\s+(?!<)[A-Za-z0-9._~+/\-]{8,}=*"),
)


def secret_forms(secret: str) -> set[str]:
    """A secret as it may appear on the wire: plain, URL-encoded, and base64 at every byte offset."""
    forms = {secret, quote(secret, safe=""), quote_plus(secret)}
    raw = secret.encode()
    for pad in range(3):
        encoded = base64.b64encode(b"\0" * pad + raw).decode()
        # drop the characters that also depend on the padding or on what follows the secret
        start = (pad * 8 + 5) // 6
        end = (len(raw) + pad) * 8 // 6
        inner = encoded[start:end]
        if len(inner) >= 12:
            forms.add(inner)
    return {f for f in forms if len(f) >= 6}


class Scrubber:
    """Replaces secrets in URLs, header values and bodies; `secrets` are the configured keys."""

    def __init__(self, secrets: Iterable[str | None] = ()) -> None:
        forms: set[str] = set()
        for s in secrets:
            if s and len(s) >= 6:
                forms |= secret_forms(s)
        # longest first, so a secret is never half replaced by a shorter form of itself
        self._literal = re.compile("|".join(re.escape(f) for f in sorted(forms, key=len, reverse=True))) \
            if forms else None

    def text(self, value: str) -> str:
        if self._literal is not None:
            value = self._literal.sub(PLACEHOLDER, value)
        low = value.lower()
        if not any(hint in low for hint in _HINTS):
            return value
        for shape in KEY_SHAPES:
            value = shape.sub(_keep_prefix, value)
        value = _QUERY.sub(lambda m: m.group(1) + PLACEHOLDER, value)
        value = _JSON_FIELD.sub(lambda m: m.group(1) + PLACEHOLDER + m.group(3), value)
        return _WEBHOOK_URL.sub(lambda m: m.group(1) + "/" + PLACEHOLDER + m.group(3), value)

    def body(self, body: Any) -> Any:
        """A str or bytes body scrubbed (bytes via latin-1, which round-trips every byte)."""
        if isinstance(body, str):
            return self.text(body)
        if isinstance(body, bytes | bytearray):
            return self.text(bytes(body).decode("latin-1")).encode("latin-1")
        return body

    def request(self, request: Any, *, header_values: bool = True) -> Any:
        """A vcrpy Request with secret headers dropped and URI, header values and body scrubbed.

        `header_values=False` leaves the other headers' values alone: what replay matching needs
        (headers are never part of a key), since every write scrubs them all again."""
        for name in [n for n in request.headers if n.lower() in DROPPED_HEADERS]:
            del request.headers[name]
        for name in list(request.headers) if header_values else ():
            value = request.headers[name]
            request.headers[name] = ([self.text(str(v)) for v in value] if isinstance(value, list)
                                     else self.text(str(value)))
        request.uri = self.text(request.uri)
        body = request.body
        if isinstance(body, str | bytes):
            request.body = self.body(body)
        return request

    def match_request(self, request: Any) -> Any:
        """The scrub vcrpy runs on every request it records or matches (see `request`)."""
        return self.request(request, header_values=False)

    def response(self, response: dict[str, Any]) -> dict[str, Any]:
        """A vcrpy response dict with secret headers dropped, values and body scrubbed, and
        content-length made true to the stored body."""
        headers = {k: v for k, v in (response.get("headers") or {}).items() if k.lower() not in DROPPED_HEADERS}
        headers = {k: [self.text(str(x)) for x in (v if isinstance(v, list) else [v])] for k, v in headers.items()}
        body = response.get("body")
        if isinstance(body, dict) and "string" in body:
            new = self.body(body["string"])
            response["body"] = {**body, "string": new}
            size = len(new.encode() if isinstance(new, str) else new)
            for k in headers:
                if k.lower() == "content-length":
                    headers[k] = [str(size)]
        response["headers"] = headers
        return response


def _keep_prefix(match: re.Match[str]) -> str:
    text = match.group(0)
    if text.lower().startswith("bearer"):
        return "Bearer " + PLACEHOLDER
    return text.split("-", 1)[0] + "-" + PLACEHOLDER if "-" in text[:4] else text.split("_", 1)[0] + "_" + PLACEHOLDER
