"""Usage of one run (or `tvdb.session`) grouped by service and implementation: the SQL behind
`Session.summary()`. Amounts in nano-USD; None where a successful row has no known price."""

from __future__ import annotations

from typing import Any

from tvdb.storage.base import Database


def calls_by_implementation(db: Database, run_id: str) -> list[dict[str, Any]]:
    """One dict per (service, implementation): requests (rows, errors included), errors, tokens, pages,
    credits (None without LlamaParse rows), cost_nusd / would_cost_nusd (None when a price is unknown)."""
    rows = db.execute(
        "SELECT service, implementation, COUNT(*), SUM(CASE WHEN status = 'error' THEN 1 ELSE 0 END), "
        "COALESCE(SUM(CASE WHEN unit = 'tokens' AND status = 'ok' THEN units END), 0), "
        "COALESCE(SUM(CASE WHEN unit = 'pages' THEN units END), 0), SUM(credits), "
        "COALESCE(SUM(cost_nusd), 0), COALESCE(SUM(would_cost_nusd), 0), "
        "SUM(CASE WHEN would_cost_nusd IS NULL AND status = 'ok' THEN 1 ELSE 0 END) "
        "FROM usage WHERE run_id = ? GROUP BY 1, 2 ORDER BY 1, 2", [run_id]).fetchall()
    return [{"service": r[0], "implementation": r[1], "requests": int(r[2]), "errors": int(r[3] or 0),
             "tokens": int(r[4]), "pages": float(r[5]), "credits": None if r[6] is None else float(r[6]),
             "cost_nusd": None if r[9] else int(r[7]), "would_cost_nusd": None if r[9] else int(r[8])}
            for r in rows]
