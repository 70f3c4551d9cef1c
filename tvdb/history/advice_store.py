"""The rows cost advice (tvdb.history.advise) reads: usage joined with jobs and runs, read only."""

from __future__ import annotations

from typing import Any

from tvdb.storage import Database


class AdviceStore:
    """The rows cost advice reads (read only)."""

    def __init__(self, db: Database) -> None:
        self.db = db

    def parses(self) -> list[dict[str, Any]]:
        """Successful parse calls with their document's bytes and outcome, oldest first."""
        return list(self.db.query(
            "SELECT u.ts, u.run_id, u.job_id, u.model AS tier, u.units AS pages, u.implementation, u.cost_nusd, "
            "u.would_cost_nusd, j.sha256, j.state FROM usage u JOIN jobs j ON j.job_id = u.job_id "
            "WHERE u.stage = 'parse' AND u.status = 'ok' ORDER BY u.ts, u.id"))

    def embed_requests(self) -> list[dict[str, Any]]:
        """Per run: successful embedding requests, their tokens, and the chunks of the jobs they served."""
        return list(self.db.query(
            "SELECT u.run_id, COUNT(*) AS requests, SUM(u.units) AS tokens, "
            "(SELECT COALESCE(SUM(j.chunks), 0) FROM jobs j WHERE j.run_id = u.run_id AND j.reused_from IS NULL "
            " AND j.chunks IS NOT NULL AND j.state = 'complete') AS inputs "
            "FROM usage u WHERE u.stage = 'embed' AND u.status = 'ok' AND u.run_id IS NOT NULL GROUP BY u.run_id"))

    def real_embeds(self) -> list[dict[str, Any]]:
        return list(self.db.query(
            "SELECT ts, model, units, cost_nusd FROM usage WHERE stage = 'embed' AND status = 'ok' "
            "AND implementation = 'real'"))

    def real_spend_by_run(self) -> list[dict[str, Any]]:
        """Runs with real spend, oldest first, with what identifies their requests (settings, documents)."""
        return list(self.db.query(
            "SELECT r.run_id, r.scenario, r.spec_json, r.started_at, SUM(u.cost_nusd) AS spent "
            "FROM runs r JOIN usage u ON u.run_id = r.run_id WHERE u.implementation = 'real' "
            "GROUP BY r.run_id HAVING SUM(u.cost_nusd) > 0 ORDER BY r.started_at"))
