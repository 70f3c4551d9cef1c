"""Cassettes: record real HTTP traffic once (vcrpy ≥ 9, which intercepts httpx2), replay it forever.

    keys.py      canonical match keys (method, path, query, body; multipart by part) and miss diffs
    scrub.py     secrets out of requests and responses before anything reaches disk
    scan.py      key-shaped strings in a serialised cassette (`tvdb cassette check`)
    store.py     safe-YAML loading (file:line errors), scrub + scan + atomic writes, metadata
    cassette.py  vcrpy's Cassette with dict-indexed matching (linear replay) and miss diagnostics
    session.py   recording and replaying a run: the vcrpy config, the network block, the replay clock
    info.py      what a cassette holds (`tvdb cassette list` / `show`)

Wire facts: contracts.md §3 (vcrpy 9.4.2 and httpx2).
"""
