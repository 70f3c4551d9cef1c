"""docpipe: a small document-ingestion package, written the way teams write their own.

    parse (LlamaParse through the `llama-cloud` SDK) → chunk (our own chunker) → embed (OpenAI through
    the `openai` SDK) → store (SQLite, or in memory)

It knows nothing about tvdb: tvdb's scenario hook (`pipeline: docpipe.ingest:run`) and `tvdb.session()`
serve its SDK calls from the outside. Configuration comes from the environment, as in production:
OPENAI_API_KEY, LLAMA_CLOUD_API_KEY (and the SDKs' OPENAI_BASE_URL / LLAMA_CLOUD_BASE_URL), and
DOCPIPE_DB (a SQLite file; default: an in-memory store shared by this process).
"""
