"""`tvdb doctor` says which URL a probe tried when nothing answered (a refused connection, a
timeout), so a wrong OPENAI_BASE_URL or LLAMA_CLOUD_BASE_URL can be seen; the URL shown never
carries the query (a gateway's token) nor a `user:password@`."""

from __future__ import annotations

import asyncio
import json
import socket
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.openai_support import CANARY
from tvdb.cli.app import app, handle_errors
from tvdb.clock import SystemClock
from tvdb.http import ConnectTimeout, MockTransport, Request, Response
from tvdb.redaction import endpoint_url
from tvdb.services.health import probe_url

Cli = Callable[..., tuple[int, str]]


@pytest.fixture
def cli(monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], tmp_path: Path) -> Cli:
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("COLUMNS", "250")

    def run(*args: str, **env: str) -> tuple[int, str]:
        for name, value in env.items():
            monkeypatch.setenv(name, value)
        monkeypatch.setattr(sys, "argv", ["tvdb", "doctor", *args])
        code = handle_errors(app)
        out, err = capsys.readouterr()
        return code, out + err

    return run


@pytest.fixture
def closed_port() -> int:
    """A loopback port nothing listens on: bound, then released."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
    return port


@pytest.fixture
def silent_port() -> Iterator[int]:
    """A loopback port that accepts connections (the kernel's backlog) and never answers."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        sock.listen(8)
        yield sock.getsockname()[1]


def _embedder(report: dict[str, Any]) -> dict[str, Any]:
    return next(c for c in report["checks"] if c["name"] == "embedder (openai)")


def test_a_refused_probe_names_the_url_tried_without_its_query_in_json_and_text(cli: Cli, closed_port: int) -> None:
    env = {"OPENAI_API_KEY": CANARY, "OPENAI_BASE_URL": f"http://127.0.0.1:{closed_port}/v1?api-key={CANARY}"}
    args = ("--mode", "real", "--service", "parser=mock")
    code, out = cli("--json", *args, **env)
    embedder = _embedder(json.loads(out))
    assert code == 1 and embedder["status"] == "fail"
    assert embedder["detail"] == ("mode real (set by --mode): unhealthy, connection refused "
                                  f"(tried http://127.0.0.1:{closed_port}/v1/models)")
    code, text = cli(*args, "--format", "plain", **env)
    assert code == 1
    assert f"unhealthy, connection refused (tried http://127.0.0.1:{closed_port}/v1/models)" in text
    assert CANARY not in out + text and "api-key" not in out + text


def test_a_timed_out_probe_names_the_url_tried(cli: Cli, silent_port: int, tmp_path: Path) -> None:
    (tmp_path / "tvdb.yaml").write_text("router:\n  probe_timeout_s: 0.1\n")
    code, out = cli("--json", "--mode", "hybrid", "--service", "parser=mock", OPENAI_API_KEY=CANARY,
                    OPENAI_BASE_URL=f"http://127.0.0.1:{silent_port}/gateway/v1?token={CANARY}&region=eu")
    embedder = _embedder(json.loads(out))
    assert code == 0 and embedder["status"] == "warn"
    assert embedder["detail"] == ("mode hybrid (set by --mode): unhealthy, read timeout "
                                  f"(tried http://127.0.0.1:{silent_port}/gateway/v1/models)")
    assert CANARY not in out


def test_the_probe_reports_a_connect_timeout_with_the_url_but_no_userinfo_or_query() -> None:
    def never(request: Request) -> Response:
        raise ConnectTimeout("timed out", request=request)

    url = f"https://user:{CANARY}@gw.example.com:8443/openai/v1/models?api-key={CANARY}#{CANARY}"
    health = asyncio.run(probe_url(url, CANARY, connect_timeout_s=0.1, clock=SystemClock(),
                                   transport=MockTransport(never)))
    assert (health.healthy, health.detail) == (False, "connect timeout")
    assert health.tried == "https://gw.example.com:8443/openai/v1/models"


def test_an_answered_probe_has_no_tried_url() -> None:
    health = asyncio.run(probe_url("http://127.0.0.1:1/v1/models?api-key=x", CANARY, connect_timeout_s=0.1,
                                   clock=SystemClock(), transport=MockTransport(lambda _: Response(503))))
    assert (health.healthy, health.detail, health.tried) == (False, "HTTP 503", None)


@pytest.mark.parametrize(("url", "shown"), [
    (f"https://{CANARY}:{CANARY}@api.example.com/v1?key={CANARY}", "https://api.example.com/v1"),
    ("http://[::1]:8080/api/v2/parse?page_size=1", "http://[::1]:8080/api/v2/parse"),
    ("https://gw.example.com/t/abcdef0123456789abcd/v1", "https://gw.example.com/t/***/v1"),  # a token in the path
    ("http://host:99999/v1", "***"),  # a malformed port: nothing of it is echoed
])
def test_endpoint_url_keeps_scheme_host_port_and_path_only(url: str, shown: str) -> None:
    assert endpoint_url(url) == shown
