"""A throwaway PostgreSQL 15 server for the tests: `initdb` in a temporary directory, run as an
unprivileged user (PostgreSQL refuses to run as root, and CI runs as root), listening on a free
loopback port with password (SCRAM) authentication, stopped and deleted at the end of the session.

One server per test session; each test gets a fresh database (`fresh_database`), cloned from
`template0` in a few milliseconds. The binaries are Debian's (`apt-get install postgresql`, which
`.ci/run` does when they are absent); a missing server is a failure, never a skip.
"""

from __future__ import annotations

import contextlib
import os
import pwd
import shutil
import socket
import subprocess
import tempfile
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

BIN_GLOB = "/usr/lib/postgresql/*/bin"  # Debian's layout; 15 here, any newer major works too
RUN_AS = ("postgres", "tvdb-pg")  # an existing unprivileged account, else one we create
ROLE = "tvdb"
# A password that is also a canary: tests assert it never appears in output, logs or files.
PASSWORD = "pg-CANARY-9f3b7c1e55d2a8"


class ServerMissing(RuntimeError):
    pass


@dataclass(frozen=True)
class PgServer:
    """A running server: `url(db)` is a postgresql:// URL with the password in it."""

    host: str
    port: int
    socket_dir: Path
    data_dir: Path
    bin_dir: Path
    user: str
    _admin: dict[str, Any] = field(default_factory=dict, compare=False, repr=False)

    def url(self, database: str = "postgres", *, password: str | None = PASSWORD) -> str:
        auth = ROLE if password is None else f"{ROLE}:{password}"
        return f"postgresql://{auth}@{self.host}:{self.port}/{database}"

    def admin(self, sql: str) -> str:
        """Run `sql` as the superuser over the unix socket (no password); rows as text lines."""
        conn = self._admin_conn()
        cur = conn.execute(sql.encode())
        rows = cur.fetchall() if cur.description is not None else []
        return "".join("|".join("" if v is None else str(v) for v in row) + "\n" for row in rows)

    def _admin_conn(self) -> Any:
        import psycopg

        conn = self._admin.get("conn")
        if conn is None or conn.closed:
            conn = psycopg.connect(host=str(self.socket_dir), port=self.port, user="postgres", dbname="postgres",
                                   autocommit=True)
            self._admin["conn"] = conn
        return conn

    def fresh_database(self, *, template: str = "template0") -> str:
        """CREATE DATABASE of a new name owned by the test role (a copy of `template`); returns its URL."""
        name = "t_" + uuid.uuid4().hex[:16]
        self.admin(f"CREATE DATABASE {name} OWNER {ROLE} TEMPLATE {template}")
        return self.url(name)

    def drop_database(self, url: str) -> None:
        name = url.rsplit("/", 1)[1].split("?", 1)[0]
        self.admin(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")

    def close(self) -> None:
        conn = self._admin.pop("conn", None)
        if conn is not None:
            conn.close()


def _major(bin_dir: Path) -> int:
    name = bin_dir.parent.name
    return int(name) if name.isdigit() else 0


def find_bin_dir() -> Path:
    versions = sorted(Path("/").glob(BIN_GLOB.lstrip("/")), key=_major, reverse=True)
    for d in versions:
        if (d / "initdb").is_file():
            return d
    found = shutil.which("initdb")
    if found:
        return Path(found).resolve().parent
    raise ServerMissing(
        f"PostgreSQL server binaries not found (looked in {BIN_GLOB} and PATH): "
        "install them with `apt-get install postgresql` (.ci/run does this on a fresh machine)"
    )


def _unprivileged_user() -> str:
    for name in RUN_AS:
        with contextlib.suppress(KeyError):
            pwd.getpwnam(name)
            return name
    subprocess.run(["useradd", "--system", "--no-create-home", "--shell", "/usr/sbin/nologin", RUN_AS[1]],
                   check=True, capture_output=True)
    return RUN_AS[1]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _as(user: str | None, argv: list[str]) -> list[str]:
    return argv if user is None else ["runuser", "-u", user, "--", *argv]


@contextlib.contextmanager
def running_server() -> Iterator[PgServer]:
    """Start a fresh server; stop it (immediate shutdown) and delete its files on exit."""
    bin_dir = find_bin_dir()
    user = _unprivileged_user() if os.geteuid() == 0 else None
    root = Path(tempfile.mkdtemp(prefix="tvdb-pg-"))
    data, sockets = root / "data", root / "sock"
    sockets.mkdir()
    if user is not None:
        entry = pwd.getpwnam(user)
        for p in (root, sockets):
            os.chown(p, entry.pw_uid, entry.pw_gid)
    subprocess.run(
        _as(user, [str(bin_dir / "initdb"), "-D", str(data), "-U", "postgres", "--auth-local=trust",
                   "--auth-host=scram-sha-256", "--no-sync", "-E", "UTF8", "--locale=C.UTF-8"]),
        check=True, capture_output=True, timeout=120,
    )
    port = _free_port()
    # Durability off (fsync, synchronous_commit): a test server's data is thrown away anyway.
    options = (f"-c listen_addresses=127.0.0.1 -c port={port} -c unix_socket_directories={sockets} "
               "-c fsync=off -c synchronous_commit=off -c full_page_writes=off -c max_connections=200 "
               "-c shared_buffers=32MB")
    log = root / "server.log"
    started = subprocess.run(
        _as(user, [str(bin_dir / "pg_ctl"), "-D", str(data), "-l", str(log), "-o", options, "-w", "-t", "60",
                   "start"]),
        capture_output=True, text=True, timeout=120,
    )
    server = PgServer("127.0.0.1", port, sockets, data, bin_dir, user or "")
    try:
        if started.returncode != 0:
            text = log.read_text() if log.exists() else ""
            raise RuntimeError(f"PostgreSQL did not start: {started.stderr}\n{text[-2000:]}")
        server.admin(f"CREATE ROLE {ROLE} LOGIN CREATEDB PASSWORD '{PASSWORD}'")
        yield server
    finally:
        server.close()
        subprocess.run(_as(user, [str(bin_dir / "pg_ctl"), "-D", str(data), "-m", "immediate", "-w", "stop"]),
                       capture_output=True, timeout=60)
        _wait_gone(data)
        shutil.rmtree(root, ignore_errors=True)


def _wait_gone(data: Path, timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while (data / "postmaster.pid").exists() and time.monotonic() < deadline:
        time.sleep(0.05)
