"""The throwaway PostgreSQL server the engine tests run against (tests/pg_server.py)."""

from __future__ import annotations

import psycopg
import pytest

from tests.pg_server import PASSWORD, PgServer


def test_server_runs_unprivileged_with_password_auth(pg_server: PgServer, pg_url: str) -> None:
    with psycopg.connect(pg_url) as conn:
        row = conn.execute("SELECT current_user, current_setting('server_version_num')::int, "
                           "(SELECT rolsuper FROM pg_roles WHERE rolname = current_user)").fetchone()
    assert row is not None
    assert row[0] == "tvdb" and row[1] >= 150000 and row[2] is False
    owner = pg_server.admin("SELECT 1")  # the superuser works over the socket only
    assert owner.strip() == "1"
    with pytest.raises(psycopg.OperationalError, match="password authentication failed"):
        psycopg.connect(pg_url.replace(PASSWORD, "wrong"), connect_timeout=10).close()


def test_each_test_gets_its_own_empty_database(pg_empty_url: str) -> None:
    with psycopg.connect(pg_empty_url) as conn:
        tables = conn.execute("SELECT count(*) FROM pg_tables WHERE schemaname = 'public'").fetchone()
    assert tables == (0,)
