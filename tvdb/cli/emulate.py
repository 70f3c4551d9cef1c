"""`tvdb emulate`: serve wire-exact fakes of the paid APIs on 127.0.0.1 until Ctrl-C."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

from tvdb.bounds import MAX_COUNT, MAX_LATENCY_MS, MAX_PORT

if TYPE_CHECKING:
    from tvdb.emulator.server import SeenRequest


def register(app: typer.Typer) -> None:
    app.command("emulate")(emulate)  # short help: tvdb.cli.lazy.COMMANDS


def emulate(
    port: Annotated[
        int, typer.Option("--port", "-p", help="Port to listen on (0: any free port).", min=0, max=MAX_PORT)
    ] = 8089,
    host: Annotated[str, typer.Option("--host", help="Address to bind (keep it on loopback).")] = "127.0.0.1",
    latency_ms: Annotated[
        float | None,
        typer.Option("--latency-ms", help="Delay added to every response, in ms.", min=0, max=MAX_LATENCY_MS),
    ] = None,
    rpm: Annotated[
        int | None, typer.Option("--rpm", help="Requests per minute before a 429.", min=1, max=MAX_COUNT)
    ] = None,
    tpm: Annotated[
        int | None, typer.Option("--tpm", help="Tokens per minute before a 429.", min=1, max=MAX_COUNT)
    ] = None,
    config: Annotated[
        Path | None,
        typer.Option("--config", help="YAML with rpm/tpm/latency_ms/gzip and a `faults:` list (scenario format)."),
    ] = None,
    quiet: Annotated[
        bool, typer.Option("--quiet", "-q", help="Do not log each request (method, path, status, latency).")
    ] = False,
) -> None:
    """Serve the OpenAI embeddings API (POST /v1/embeddings) and LlamaParse v2 (/api/v2/parse…) as the
    real ones answer, until Ctrl-C.

    Any `sk-…` key (OpenAI) and `llx-…` key (LlamaCloud) is accepted. Point tvdb and the SDKs at it
    with the printed OPENAI_BASE_URL and LLAMA_CLOUD_BASE_URL.
    """
    from tvdb.cli.output import make_console
    from tvdb.emulator.config import EmulatorConfig, build_server, load_emulator_config
    from tvdb.errors import ConfigError
    from tvdb.tokens import get_encoding
    from tvdb.words import counted

    cfg = load_emulator_config(config) if config is not None else EmulatorConfig()
    get_encoding()  # fail now, with the fix, rather than answer every request with a 500
    overrides = {k: v for k, v in {"rpm": rpm, "tpm": tpm, "latency_ms": latency_ms}.items() if v is not None}
    if overrides:
        cfg = cfg.model_copy(update=overrides)
    try:
        server = build_server(cfg, host=host, port=port)
    except (OSError, OverflowError) as exc:
        reason = getattr(exc, "strerror", None) or str(exc)
        raise ConfigError(f"cannot listen on {host}:{port}: {reason}; pick another with --port "
                          "(--port 0 takes any free port)") from None
    console = make_console()
    console.soft_wrap = True
    limits = ", ".join(f"{k} {v}" for k, v in (("rpm", cfg.rpm), ("tpm", cfg.tpm)) if v) or "no rate limits"
    console.print(f"tvdb emulator: OpenAI embeddings at {server.openai_base_url} "
                  f"({limits}, latency {cfg.latency_ms:g} ms, {counted(len(cfg.faults), 'fault')})")
    console.print(f"export OPENAI_BASE_URL={server.openai_base_url}")
    console.print(f"export LLAMA_CLOUD_BASE_URL={server.llama_cloud_base_url}")
    console.print(f"tvdb emulator: LlamaParse v2 at {server.llama_cloud_base_url}/api/v2/parse "
                  f"({cfg.parse_per_page_ms:g} ms per page, {cfg.parse_queue_ms:g} ms queued)")
    console.print("Any sk-… (OpenAI) and llx-… (LlamaCloud) key is accepted. Ctrl-C to stop.")
    if not quiet:
        server.on_request = request_logger(console)
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        console.print("stopped")


def request_logger(console: Any) -> Callable[[SeenRequest], None]:
    """One line per answered request: `POST /v1/embeddings 200 152 ms · 3 inputs, 1,234 tokens`. Headers and
    the query string are never printed: a key may be in either."""
    from rich.text import Text

    def log(seen: SeenRequest) -> None:
        line = f"{seen.method} {seen.path} {seen.status} {seen.latency_ms:,.0f} ms"
        console.print(Text(line + (f" · {seen.detail}" if seen.detail else "")))
        console.file.flush()  # a piped log (CI, `| tee`) shows each request as it is answered

    return log
