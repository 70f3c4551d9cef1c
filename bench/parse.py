"""Parse throughput: tvdb's LlamaParse client (polling, and with webhooks) against the official SDK's parse().

    python bench/parse.py          (no arguments; offline; about four minutes)

Starts the LlamaParse emulator in this process, each job taking 1.5 s (PENDING, then done), and
parses 200 documents — the corpus's readable PDF/DOCX/HTML/Markdown files cycled, and generated
one-to-three-page PDFs (scripts/make_quickstart_pdf.py's writer) — 8 at a time, three ways:

- the official `llama-cloud` SDK: `AsyncLlamaCloud.parsing.parse(..., expand=["markdown"])` with
  its own polling (1 s, +1 s per poll, at most 5 s) under an 8-slot semaphore; skipped with a
  message when not installed (`pip install -e '.[bench]'`);
- tvdb: `LlamaParseClient.parse` with its defaults (poll 1 s, +1 s, at most 5 s), 8 at a time;
- tvdb with webhooks: the same client waiting on an in-process `WebhookReceiver` the emulator
  delivers signed `parse.success` events to.

Each run gets a fresh server; wall time and status requests (`GET /api/v2/parse/{id}` without
`expand`, counted by the server; the result request is one per job for every client) per job are
printed. It ends with exactly three lines: `tvdb parse wall/SDK wall = X.XX`, `tvdb status requests
per job = N` (polling) and `tvdb status requests per job (webhook) = N`.

Measured on the 2-core development machine under load (Python 3.11, llama-cloud 2.19.0): SDK
94.9 s and 1.92 status requests per job; tvdb polling 87.8 s and 2.00; tvdb with webhooks 48.7 s
and 0.00 (floor 37.5 s): `tvdb parse wall/SDK wall = 0.93`.
"""

from __future__ import annotations

import asyncio
import importlib.util
import logging
import sys
import time
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from tvdb.clock import SystemClock  # noqa: E402
from tvdb.config import Settings  # noqa: E402
from tvdb.domain import ParseRequest  # noqa: E402
from tvdb.emulator.llamaparse import LlamaParseEmulator  # noqa: E402
from tvdb.emulator.server import EmulatorServer  # noqa: E402
from tvdb.emulator.webhooks import WebhookDispatcher  # noqa: E402
from tvdb.pipeline.detect import detect_media_type  # noqa: E402
from tvdb.services.remote.llamaparse_client import build_llamaparse_client  # noqa: E402
from tvdb.webhooks.receiver import WebhookReceiver  # noqa: E402

DOCS = 200
CONCURRENCY = 8
JOB_S = 1.5
KEY = "llx-bench-fake-0123456789abcdef"
CORPUS = REPO.parent / "shared" / "corpus" / "documents"
READABLE = ("agstat.pdf", "docx-tables.docx", "example-10k-1p.html", "handbook-1p.docx", "korean-text-with-tables.pdf",
            "minimal-document.pdf", "multilang.pdf", "pdflatex-4-pages.pdf", "umlauts-non-utf8.md")


def documents() -> list[tuple[str, bytes, str]]:
    spec = importlib.util.spec_from_file_location("make_pdf", REPO / "scripts" / "make_quickstart_pdf.py")
    assert spec is not None and spec.loader is not None
    maker = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(maker)
    corpus = [(n, (CORPUS / n).read_bytes()) for n in READABLE if (CORPUS / n).exists()]
    out: list[tuple[str, bytes, str]] = []
    for i in range(DOCS):
        if i % 2 and corpus:
            name, data = corpus[i % len(corpus)]
            name = f"{i:03d}-{name}"
        else:
            pages = [[f"Generated document {i}, page {p}: tide sensors, calibration offsets and alarms."]
                     for p in range(1, 2 + i % 3)]
            name, data = f"{i:03d}-generated.pdf", maker.build(pages)
        out.append((name, data, detect_media_type(data, name)))
    return out


def server() -> tuple[EmulatorServer, LlamaParseEmulator]:
    service = LlamaParseEmulator(queue_s=JOB_S, per_page_s=0.0)
    srv = EmulatorServer([service])
    service.on_job = WebhookDispatcher(service, srv.stopping).start_job
    return srv.start(), service


async def run_tvdb(docs: list[tuple[str, bytes, str]], webhook: bool) -> tuple[float, float]:
    srv, _ = server()
    receiver = WebhookReceiver("bench-secret").start() if webhook else None
    settings = Settings.model_validate({"llama_cloud_api_key": KEY, "llama_cloud_base_url": srv.base_url,
                                        "parse": {"concurrency": CONCURRENCY}})
    client = build_llamaparse_client(settings, SystemClock(), waiter=receiver)
    gate = asyncio.Semaphore(CONCURRENCY)

    async def one(name: str, data: bytes, media_type: str) -> None:
        async with gate:
            await client.parse(ParseRequest(data, name, media_type, "fast"))

    start = time.perf_counter()
    await asyncio.gather(*(one(*d) for d in docs))
    wall = time.perf_counter() - start
    await client.aclose()
    srv.stop()
    return wall, client.status_requests / len(docs)


async def run_sdk(docs: list[tuple[str, bytes, str]]) -> tuple[float, float] | None:
    try:
        from llama_cloud import AsyncLlamaCloud
    except ImportError:
        print("llama-cloud is not installed (pip install -e '.[bench]'): SDK run skipped")
        return None
    srv, _ = server()
    client = AsyncLlamaCloud(api_key=KEY, base_url=srv.base_url, max_retries=0)
    gate = asyncio.Semaphore(CONCURRENCY)

    async def one(name: str, data: bytes, media_type: str) -> Any:
        async with gate:
            return await client.parsing.parse(tier="fast", version="latest", upload_file=(name, data, media_type),
                                              expand=["markdown"])

    start = time.perf_counter()
    await asyncio.gather(*(one(*d) for d in docs))
    wall = time.perf_counter() - start
    polls = sum(n for k, n in srv.counts.items() if k.startswith("GET /api/v2/parse/")) - len(docs)
    await client.close()
    srv.stop()
    return wall, polls / len(docs)


def main() -> None:
    logging.basicConfig(level=logging.WARNING)
    docs = documents()
    print(f"{len(docs)} documents, {CONCURRENCY} at a time, {JOB_S:g} s per job on the emulator")
    sdk = asyncio.run(run_sdk(docs))
    polling = asyncio.run(run_tvdb(docs, webhook=False))
    hooked = asyncio.run(run_tvdb(docs, webhook=True))
    floor = DOCS / CONCURRENCY * JOB_S
    if sdk is not None:
        print(f"llama-cloud SDK parse():   {sdk[0]:6.1f} s  {sdk[1]:.2f} status requests per job")
    print(f"tvdb (polling):            {polling[0]:6.1f} s  {polling[1]:.2f} status requests per job")
    print(f"tvdb (webhooks):           {hooked[0]:6.1f} s  {hooked[1]:.2f} status requests per job")
    print(f"floor (jobs / concurrency x job time): {floor:.1f} s")
    if sdk is not None:
        print(f"tvdb parse wall/SDK wall = {polling[0] / sdk[0]:.2f}")
    print(f"tvdb status requests per job = {polling[1]:.2f}")
    print(f"tvdb status requests per job (webhook) = {hooked[1]:.2f}")


if __name__ == "__main__":
    main()
