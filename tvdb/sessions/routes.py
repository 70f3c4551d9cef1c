"""Which HTTP requests a session serves: recognised by host and path, everything else is not tvdb's.

    OpenAI      POST  <OPENAI_BASE_URL>/embeddings              (default https://api.openai.com/v1)
    LlamaParse  *     <LLAMA_CLOUD_BASE_URL>/api/v2/parse…      (default https://api.cloud.llamaindex.ai)
                *     <LLAMA_CLOUD_BASE_URL>/api/v1/beta/files…

Sources: https://platform.openai.com/docs/api-reference/embeddings/create and
https://developers.llamaindex.ai/llamaparse/parse/guides/api-reference/ (contracts.md §1.1, §2.3).
Pure functions of (method, URL): no I/O, no HTTP library.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Literal
from urllib.parse import urlsplit

OPENAI_DEFAULT = "https://api.openai.com/v1"
LLAMA_CLOUD_DEFAULT = "https://api.cloud.llamaindex.ai"
Kind = Literal["embeddings", "parse_upload", "parse_create", "parse_job", "parse_other", "files"]
_JOB = re.compile(r"/api/v2/parse/(?!versions$)([A-Za-z0-9_-]+)(/[a-z]+)?$")
_DEFAULT_PORTS = {"http": 80, "https": 443}


@dataclass(frozen=True, slots=True)
class Endpoint:
    """A request a session serves: `service` is the ledger name ("openai" | "llamaparse"); `job_id` is
    the parse job a status/cancel/delete request is about (None otherwise)."""

    service: Literal["openai", "llamaparse"]
    kind: Kind
    job_id: str | None = None


def _origin(url: str) -> tuple[str, str, int, str]:
    parts = urlsplit(url)
    scheme = (parts.scheme or "https").lower()
    port = parts.port or _DEFAULT_PORTS.get(scheme, 0)
    return scheme, (parts.hostname or "").lower(), port, parts.path.rstrip("/")


@dataclass(frozen=True, slots=True)
class Routes:
    """The two services' base URLs (None: the public default)."""

    openai_base_url: str | None = None
    llama_cloud_base_url: str | None = None

    def classify(self, method: str, url: str) -> Endpoint | None:
        """The endpoint `method url` is, or None when the session must not touch it."""
        scheme, host, port, path = _origin(url)
        o_scheme, o_host, o_port, o_path = _origin(self.openai_base_url or OPENAI_DEFAULT)
        if (scheme, host, port) == (o_scheme, o_host, o_port) and method == "POST" \
                and path == f"{o_path}/embeddings":
            return Endpoint("openai", "embeddings")
        l_scheme, l_host, l_port, l_path = _origin(self.llama_cloud_base_url or LLAMA_CLOUD_DEFAULT)
        if (scheme, host, port) != (l_scheme, l_host, l_port) or not path.startswith(l_path):
            return None
        path = path[len(l_path):] or "/"
        if path == "/api/v1/beta/files" or path.startswith("/api/v1/beta/files/"):
            return Endpoint("llamaparse", "files")
        if path == "/api/v2/parse/upload" and method == "POST":
            return Endpoint("llamaparse", "parse_upload")
        if path == "/api/v2/parse" and method == "POST":
            return Endpoint("llamaparse", "parse_create")
        job = _JOB.match(path)
        if job is not None:
            return Endpoint("llamaparse", "parse_job" if method == "GET" and not job[2] else "parse_other", job[1])
        if path == "/api/v2/parse" or path.startswith("/api/v2/parse/"):
            return Endpoint("llamaparse", "parse_other")
        return None
