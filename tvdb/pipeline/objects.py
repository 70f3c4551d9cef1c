"""Content-addressed object store for uploaded documents, with HMAC-signed, expiring URLs.

Objects live at `<objects_dir>/<sha256[:2]>/<sha256>`. A signed URL is
`tvdb://objects/<key>?expires=<unix seconds>&signature=<hex HMAC-SHA256(secret, "<key>\\n<expires>")>`;
the parse stage reads an object only through a URL that verifies (constant-time compare) and
has not expired, and checks that the bytes still hash to their key.
"""

from __future__ import annotations

import hashlib
import hmac
import os
import re
import secrets
import tempfile
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

from tvdb.clock import Clock
from tvdb.errors import SignedUrlError

_KEY = re.compile(r"^[0-9a-f]{64}$")
SECRET_FILENAME = "signing.key"


def _sha256(path: Path) -> str:
    with path.open("rb") as f:
        return hashlib.file_digest(f, "sha256").hexdigest()


def load_or_create_secret(data_dir: Path) -> bytes:
    """The signing secret kept in the data dir (created once, mode 0600) when config gives none."""
    path = data_dir / SECRET_FILENAME
    try:
        return path.read_bytes()
    except FileNotFoundError:
        pass
    data_dir.mkdir(parents=True, exist_ok=True)
    secret = secrets.token_hex(32).encode()
    # write a private temp file, then link it into place: the key file appears complete or not at all,
    # and when processes race, exactly one link wins and everyone reads the winner's secret
    fd, tmp = tempfile.mkstemp(dir=data_dir, prefix=".signing-")
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(secret)
        os.chmod(tmp, 0o600)
        try:
            os.link(tmp, path)
        except FileExistsError:
            return path.read_bytes()
    finally:
        os.unlink(tmp)
    return secret


class ObjectStore:
    def __init__(self, root: Path, secret: bytes, clock: Clock) -> None:
        if not secret:
            raise ValueError("the signing secret must not be empty")
        self.root = root
        self._secret = secret
        self._clock = clock

    def __repr__(self) -> str:
        return f"ObjectStore({str(self.root)!r})"

    def path_of(self, key: str) -> Path:
        if not _KEY.match(key):
            raise SignedUrlError(f"malformed object key {key[:80]!r}")
        return self.root / key[:2] / key

    def put(self, data: bytes) -> str:
        """Store `data` (idempotent); returns its key, the sha256 hex digest. Raises StorageError when
        the disk is full or read-only."""
        key = hashlib.sha256(data).hexdigest()
        target = self.path_of(key)
        if target.exists() and target.stat().st_size == len(data) and _sha256(target) == key:
            return key  # already stored and intact (a damaged copy is rewritten below)
        try:
            target.parent.mkdir(parents=True, exist_ok=True)
            # write-then-rename so a crash never leaves a half-written object under its final name
            fd, tmp = tempfile.mkstemp(dir=target.parent, prefix=".upload-")
            try:
                with os.fdopen(fd, "wb") as f:
                    f.write(data)
                os.replace(tmp, target)
            except BaseException:
                Path(tmp).unlink(missing_ok=True)
                raise
        except OSError as exc:
            from tvdb.storage.sqlite import storage_error

            full = storage_error(exc, target.parent)
            if full is None:
                raise
            raise full from None
        return key

    def _sign(self, key: str, expires: int) -> str:
        return hmac.new(self._secret, f"{key}\n{expires}".encode(), hashlib.sha256).hexdigest()

    def signed_url(self, key: str, expires_in: int) -> str:
        """A URL for `key` valid for `expires_in` seconds from now."""
        self.path_of(key)
        expires = int(self._clock.now().timestamp()) + int(expires_in)
        return f"tvdb://objects/{key}?expires={expires}&signature={self._sign(key, expires)}"

    def verify(self, url: str) -> str:
        """The key of a valid, unexpired URL; raises SignedUrlError for a tampered, malformed or expired one."""
        parts = urlsplit(url)
        query = parse_qs(parts.query)
        key = parts.path.rsplit("/", 1)[-1]
        if parts.scheme != "tvdb" or parts.netloc != "objects" or not _KEY.match(key):
            raise SignedUrlError("malformed signed URL")
        try:
            expires = int(query["expires"][0])
            signature = query["signature"][0]
        except (KeyError, IndexError, ValueError):
            raise SignedUrlError("signed URL lacks a valid expiry or signature") from None
        if not hmac.compare_digest(signature, self._sign(key, expires)):
            raise SignedUrlError("signed URL signature does not match (tampered URL or other secret)")
        if self._clock.now().timestamp() >= expires:
            raise SignedUrlError("signed URL has expired")
        return key

    def read(self, url: str) -> bytes:
        """Verify `url`, then read the object and check its bytes still hash to the key."""
        key = self.verify(url)
        try:
            data = self.path_of(key).read_bytes()
        except FileNotFoundError:
            raise SignedUrlError(f"object {key[:12]}… is missing from the store") from None
        if hashlib.sha256(data).hexdigest() != key:
            raise SignedUrlError(f"object {key[:12]}… is corrupted on disk (hash mismatch)")
        return data
