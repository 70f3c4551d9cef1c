"""Embedding throughput, measured fairly: tvdb's real-mode client against the clients users would otherwise pick.

    python bench/embed.py          (no arguments; offline; 10–15 minutes: LlamaIndex's sync
                                    client alone takes ≥ 30 s a run for 20,000 chunks)

The server is `tvdb emulate` in its own process on loopback (150 ms latency per response,
3,000 requests and 100M tokens per minute, memo on and primed: OpenAI's CPU is not on the client's
machine, so a warm emulator costs as little CPU as possible). Every client embeds the same texts,
the first 1,000 and 20,000 chunks (200-token windows cut by tvdb's chunker from a synthetic
English-like document; 4.0M tokens for 20,000), **each run in a fresh process**; the timer runs
from building the client to holding every vector, so **token counting is inside it** for every
client that needs counts (tvdb plans requests by tokens; LangChain sends token arrays). Imports
and reading the texts are outside it. Clients, each with its concurrency (requests in flight):

- LangChain `OpenAIEmbeddings().embed_documents` (1: one request after another);
- LlamaIndex `OpenAIEmbedding().aget_text_embedding_batch` (all 200 at once: its default
  `num_workers=None` gathers every batch), and with `num_workers=4` (4);
- LlamaIndex `get_text_embedding_batch`, the sync call (1);
- tvdb: `embed_batches` over `OpenAIEmbedder` (the official SDK on httpx2) counting the tokens
  itself (in two threads, overlapped with the requests already cut), with the default
  `embedding.concurrency: auto` (4 to start, then what the emulator's `x-ratelimit-remaining-*`
  headers allow, at most 16), and with `embedding.concurrency: 4` (the equal-concurrency row
  against LlamaIndex with 4 workers). One ledger row per request in a scratch SQLite database,
  vector validation, the first request alone. And, for reference only, the pipeline's path: tvdb
  given the chunker's token counts (the pipeline has them; a user of the peers does not).

After one untimed warm-up of each client (which also primes the emulator's memo for every input
form), the clients run RUNS rounds, interleaved (each client once per round) so that a change in
the machine's load hits all alike; the median and the min of the rounds are printed, with the
requests each client sent (read from the emulator's request log) against the lower bound
max(⌈inputs/2048⌉, ⌈tokens/300,000⌉), and a check that every client got the same vectors. The
load average is printed before and after. The last lines are the 20,000-chunk headline:
`tvdb requests/minimum = X.XX` and `real-mode embedding wall / best peer = X.XX` (medians; tvdb
counting its own tokens, against the fastest peer by median).
"""

from __future__ import annotations

import json
import os
import random
import re
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
os.environ.setdefault("TIKTOKEN_CACHE_DIR", str(REPO.parent / "shared" / "tiktoken_cache"))

MODEL = "text-embedding-3-small"
KEY = "sk-fake-bench-not-a-real-key"
SIZES = (1_000, 20_000)
RUNS = int(os.environ.get("BENCH_RUNS", "3"))
EMULATOR_CONFIG = {"latency_ms": 150, "rpm": 3_000, "tpm": 100_000_000, "memo_entries": 30_000}


WORDS = """
the of and to in is that for it as was with be by on not he this are or his from at which but have an
they you were her she there been one all we their has would when if so no will more can who out them
what said up some into time other than then its only could new these two may first any like our over
such man also most made after even did many before must through back where years much your way down
should because each just those people how too little state good very make world still own see men work
long here get both between life being under never day same another know while last might us great old
year off come since against go came right used take three states himself few house use during without
again place around however home small found thought went say part once general high upon school every
don does got united left number course war until always away something fact though water less public put
think almost hand enough far took head yet government system better set told nothing night end why
called didn eyes find going look asked later knew point next program city business give group toward
young days let room president side social given present several order national possible rather second
face per among form important often things looked early white case john become large big need four
within felt along children saw best church ever least power development light thought family interest
want members mind country area others done turned although open god service certain kind problem began
different door thus help sense means whole matter perhaps itself york times law human line above name
example action company hands local show whether five history gave today either act feet across taken
past quite anything seen having death week experience body word half really field am car words already
themselves information tell together college shall money period held keep sure real probably free seems
political cannot behind miss question air office making brought whose special major heard problems ago
became federal moment study available known result street economic boy position reason change south
board individual job areas society west close turn love community true court force full seem wife age
policy voice future wanted pipeline document vector embedding token request budget ledger parse chunk
""".split()


def make_text(n_words: int, seed: int) -> str:
    """Deterministic English-like prose (Zipf-distributed words, sentences, a few numbers)."""
    rng = random.Random(seed)
    weights = [1.0 / (rank + 1) ** 0.8 for rank in range(len(WORDS))]
    sentences, total = [], 0
    while total < n_words:
        words = rng.choices(WORDS, weights, k=rng.randint(8, 16))
        if rng.random() < 0.3:
            words.insert(rng.randrange(len(words)), str(rng.randint(1, 2030)))
        sentences.append(" ".join(words).capitalize() + ".")
        total += len(words)
    return " ".join(sentences)


def make_chunks(n: int, seed: int = 2026) -> tuple[list[str], list[int]]:
    """The first n chunks (200-token windows, tvdb's chunker) of a long synthetic document: their
    texts, and the token counts the chunker computed as it cut them."""
    from tvdb.domain import Page
    from tvdb.pipeline.chunk import chunk_pages

    words_per_page = 2_000
    n_pages = n * 180 // words_per_page + 2  # about 1.2 tokens per word
    pages = [Page(i + 1, make_text(words_per_page, seed * 100_003 + i)) for i in range(n_pages)]
    chunks = chunk_pages(pages, max_tokens=200, overlap_tokens=0, model=MODEL)
    if len(chunks) < n:
        raise AssertionError(f"the synthetic document gave {len(chunks)} chunks, fewer than {n}")
    return [c.text for c in chunks[:n]], [c.token_count for c in chunks[:n]]


# -- the clients, each run in a child process: `python bench/embed.py --client NAME TEXTS URL OUT` --

def client_tvdb(texts: list[str], url: str, concurrency: int | None = None,
                counts: list[int] | None = None) -> Any:
    import asyncio

    from tvdb.clock import SystemClock
    from tvdb.config import Settings
    from tvdb.db import open_db
    from tvdb.ledger.prices import PriceTable
    from tvdb.services.calls import ServiceCaller
    from tvdb.services.embedding import embed_batches
    from tvdb.services.remote.openai_embedder import build_openai_embedder
    from tvdb.services.retry import ServiceRetryPolicy
    from tvdb.tokens import get_encoding

    get_encoding()  # tiktoken's vocabulary loads once per process in any client: outside the timer
    import openai  # noqa: F401  imported outside the timer, as the peers' clients import it
    embedding: dict[str, Any] = {} if concurrency is None else {"concurrency": concurrency}
    settings = Settings.model_validate({"openai_api_key": KEY, "openai_base_url": url, "mode": "real",
                                        "embedding": embedding})
    clock = SystemClock()
    with tempfile.TemporaryDirectory() as tmp:
        db = open_db(Path(tmp) / "bench.db")
        caller = ServiceCaller(db=db, prices=PriceTable.load(), clock=clock, retry=ServiceRetryPolicy(settings.retry))

        async def main() -> Any:
            embedder = build_openai_embedder(settings)
            try:
                return await embed_batches(texts, token_counts=counts, embedder=embedder, caller=caller,
                                           settings=settings, clock=clock)
            finally:
                await embedder.aclose()

        try:
            start = time.perf_counter()
            vectors = asyncio.run(main())
            return time.perf_counter() - start, vectors
        finally:
            db.conn.close()


def client_langchain(texts: list[str], url: str) -> Any:
    import tiktoken
    from langchain_openai import OpenAIEmbeddings

    tiktoken.encoding_for_model(MODEL)  # its vocabulary loads outside the timer, as tvdb's does
    start = time.perf_counter()
    client = OpenAIEmbeddings(model=MODEL, api_key=KEY, base_url=url)  # type: ignore[arg-type]
    vectors = client.embed_documents(texts)
    return time.perf_counter() - start, vectors


def client_llamaindex_async(texts: list[str], url: str, workers: int | None = None) -> Any:
    import asyncio

    from llama_index.embeddings.openai import OpenAIEmbedding

    async def main() -> Any:
        client = OpenAIEmbedding(model=MODEL, api_key=KEY, api_base=url, num_workers=workers)
        try:
            return await client.aget_text_embedding_batch(texts)
        finally:  # close its connections inside the loop (else: "Event loop is closed" at exit)
            if getattr(client, "_aclient", None) is not None:
                await client._aclient.close()

    start = time.perf_counter()
    vectors = asyncio.run(main())
    return time.perf_counter() - start, vectors


def client_llamaindex_sync(texts: list[str], url: str) -> Any:
    from llama_index.embeddings.openai import OpenAIEmbedding

    start = time.perf_counter()
    client = OpenAIEmbedding(model=MODEL, api_key=KEY, api_base=url)
    vectors = client.get_text_embedding_batch(texts)
    return time.perf_counter() - start, vectors


# name: (label, concurrency, module needed, runner(texts, url, counts))
CLIENTS: dict[str, tuple[str, str, str, Callable[[list[str], str, list[int]], Any]]] = {
    "langchain": ("LangChain embed_documents", "1", "langchain_openai",
                  lambda t, u, c: client_langchain(t, u)),
    "llamaindex-async": ("LlamaIndex aget_text_embedding_batch", "all", "llama_index.embeddings.openai",
                         lambda t, u, c: client_llamaindex_async(t, u)),
    "llamaindex-async-4": ("LlamaIndex aget_text_embedding_batch, num_workers=4", "4",
                           "llama_index.embeddings.openai", lambda t, u, c: client_llamaindex_async(t, u, 4)),
    "llamaindex-sync": ("LlamaIndex get_text_embedding_batch (sync)", "1", "llama_index.embeddings.openai",
                        lambda t, u, c: client_llamaindex_sync(t, u)),
    "tvdb": ("tvdb, counting tokens itself (default: concurrency auto)", "auto", "tvdb",
             lambda t, u, c: client_tvdb(t, u)),
    "tvdb-4": ("tvdb, counting tokens itself, concurrency=4", "4", "tvdb",
               lambda t, u, c: client_tvdb(t, u, 4)),
    "tvdb-counts": ("tvdb given the chunker's counts (pipeline path; reference)", "auto", "tvdb",
                    lambda t, u, c: client_tvdb(t, u, None, c)),
}
PEERS = ("langchain", "llamaindex-async", "llamaindex-async-4", "llamaindex-sync")


def child(name: str, texts_file: str, url: str, out_file: str) -> None:
    import logging
    import warnings

    import numpy as np

    logging.basicConfig(level=logging.ERROR)
    warnings.filterwarnings("ignore")
    data = json.loads(Path(texts_file).read_text(encoding="utf-8"))
    wall, vectors = CLIENTS[name][3](data["texts"], url, data["counts"])
    np.save(out_file, np.asarray(vectors, dtype=np.float32))
    print(json.dumps({"wall": wall}))


# -- the parent: the emulator process, the rounds, the table --

class Emulator:
    """`tvdb emulate` in its own process; counts the embeddings requests it logs."""

    def __init__(self, config: Path) -> None:
        tvdb = str(Path(sys.executable).with_name("tvdb"))
        self.proc = subprocess.Popen([tvdb, "emulate", "--port", "0", "--config", str(config)],
                                     stdout=subprocess.PIPE, text=True, bufsize=1)
        assert self.proc.stdout is not None
        self.url = ""
        for line in self.proc.stdout:
            if m := re.match(r"export OPENAI_BASE_URL=(\S+)", line):
                self.url = m.group(1)
                break
        if not self.url:
            raise SystemExit("tvdb emulate did not start")
        self.requests = 0
        self._lock = threading.Lock()
        threading.Thread(target=self._count, daemon=True).start()

    def _count(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            if line.startswith("POST /v1/embeddings"):
                with self._lock:
                    self.requests += 1

    def settled_count(self) -> int:
        """The request count once the log has caught up with the last answer."""
        last = -1
        while True:
            time.sleep(0.2)
            with self._lock:
                now = self.requests
            if now == last:
                return now
            last = now

    def close(self) -> None:
        self.proc.terminate()
        self.proc.wait(timeout=10)


def run_child(name: str, texts_file: Path, emulator: Emulator, out: Path) -> tuple[float, int]:
    before = emulator.settled_count()
    done = subprocess.run([sys.executable, __file__, "--client", name, str(texts_file), emulator.url, str(out)],
                          capture_output=True, text=True, timeout=900)
    if done.returncode != 0:
        raise SystemExit(f"{name} failed:\n{done.stderr[-3000:]}")
    wall = float(json.loads(done.stdout.strip().splitlines()[-1])["wall"])
    return wall, emulator.settled_count() - before


def available(module: str) -> bool:
    import importlib.util

    try:
        return importlib.util.find_spec(module) is not None
    except ModuleNotFoundError:
        return False


def main() -> int:
    import numpy as np

    from tvdb import catalog
    from tvdb.services.batching import lower_bound

    names = [n for n in CLIENTS if available(CLIENTS[n][2])]
    for n in CLIENTS:
        if n not in names:
            print(f"{CLIENTS[n][0]}: skipped ({CLIENTS[n][2]} is not installed; pip install -e '.[bench]')")
    all_texts, all_counts = make_chunks(max(SIZES))
    headline: dict[str, Any] = {}
    with tempfile.TemporaryDirectory() as tmp_name:
        tmp = Path(tmp_name)
        config = tmp / "emulator.yaml"
        config.write_text(json.dumps(EMULATOR_CONFIG), encoding="utf-8")  # JSON is YAML
        emulator = Emulator(config)
        print(f"emulator: tvdb emulate in its own process, {EMULATOR_CONFIG}; model {MODEL}; "
              f"{RUNS} interleaved rounds, each client in a fresh process")
        print(f"load average (1, 5, 15 min) before: {' '.join(f'{x:.1f}' for x in os.getloadavg())}")
        try:
            for size in SIZES:
                texts_file = tmp / f"texts-{size}.json"
                counts = all_counts[:size]
                texts_file.write_text(json.dumps({"texts": all_texts[:size], "counts": counts}), encoding="utf-8")
                minimum = lower_bound(counts, catalog.embedding_model(MODEL))
                print(f"\n{size:,} chunks, {sum(counts):,} tokens: lower bound {minimum} requests")
                for name in names:  # warm-up: the memo learns every input form, files are cached
                    if name != "llamaindex-sync":  # its requests are the async client's
                        run_child(name, texts_file, emulator, tmp / f"{name}.npy")
                walls: dict[str, list[float]] = {n: [] for n in names}
                requests: dict[str, int] = {}
                for _ in range(RUNS):
                    for name in names:
                        wall, sent = run_child(name, texts_file, emulator, tmp / f"{name}.npy")
                        walls[name].append(wall)
                        requests[name] = sent
                reference = np.load(tmp / f"{names[0]}.npy")
                medians = {n: statistics.median(walls[n]) for n in names}
                peers = [n for n in names if n in PEERS]
                best = min(peers, key=medians.__getitem__) if peers else None
                print(f"  {'client':58s} {'in flight':>9s} {'requests':>8s} {'median':>8s} {'min':>8s}  vs best")
                for name in names:
                    same = np.allclose(np.load(tmp / f"{name}.npy"), reference, atol=1e-6)
                    ratio = f"{medians[name] / medians[best]:.2f}x" if best else "n/a"
                    print(f"  {CLIENTS[name][0]:58s} {CLIENTS[name][1]:>9s} {requests[name]:8d} "
                          f"{medians[name]:7.2f}s {min(walls[name]):7.2f}s  {ratio}"
                          f"{'' if same else '  DIFFERENT vectors'}")
                if "tvdb-4" in medians and "llamaindex-async-4" in medians:
                    print(f"  equal concurrency (4 in flight): tvdb / LlamaIndex num_workers=4 = "
                          f"{medians['tvdb-4'] / medians['llamaindex-async-4']:.2f}")
                headline = {"requests": requests.get("tvdb", 0), "minimum": minimum,
                            "ratio": medians["tvdb"] / medians[best] if best else None, "best": best}
        finally:
            emulator.close()
    print(f"load average after: {' '.join(f'{x:.1f}' for x in os.getloadavg())}")
    print(f"\ntvdb requests/minimum = {headline['requests'] / headline['minimum']:.2f}")
    if headline["ratio"] is None:
        print("real-mode embedding wall / best peer = n/a (no peer installed)")
    else:
        print(f"real-mode embedding wall / best peer = {headline['ratio']:.2f} "
              f"(best peer: {CLIENTS[headline['best']][0]})")
    return 0


if __name__ == "__main__":
    if len(sys.argv) == 6 and sys.argv[1] == "--client":
        child(*sys.argv[2:])
        raise SystemExit(0)
    raise SystemExit(main())
