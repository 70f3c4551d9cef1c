"""`tvdb.session()` and its parts: tvdb around the user's own ingestion code (issue 14).

- `tvdb.sessions.api`: `session()`, `Session` (lifecycle, explicit clients, summary, expect)
- `tvdb.sessions.routes`: which requests are tvdb's (host + path)
- `tvdb.sessions.bridge`: the patched httpx2/httpx transports and the explicit transports
- `tvdb.sessions.engine`: router → caller (budget, ledger) → faults → emulator / network / cassette
- `tvdb.sessions.wire`: estimates from requests, usage from answers
- `tvdb.sessions.summary`: `SessionSummary`, `ExpectationFailed`

Nothing here is imported by `import tvdb`.
"""
