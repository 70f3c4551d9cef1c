"""Content-addressed uploads and HMAC-signed, expiring URLs."""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

import pytest

from tvdb.clock import FakeClock
from tvdb.errors import SignedUrlError
from tvdb.pipeline.objects import ObjectStore, load_or_create_secret


@pytest.fixture
def store(tmp_path: Path) -> tuple[ObjectStore, FakeClock]:
    clock = FakeClock()
    return ObjectStore(tmp_path / "objects", b"secret-for-tests", clock), clock


def test_put_is_content_addressed_and_idempotent(store: tuple[ObjectStore, FakeClock]) -> None:
    s, _ = store
    key = s.put(b"hello")
    assert key == hashlib.sha256(b"hello").hexdigest()
    assert s.path_of(key).read_bytes() == b"hello"
    assert s.put(b"hello") == key
    assert len(list(s.root.rglob("*"))) == 2  # one folder, one file, no temp leftovers


def test_signed_url_round_trip(store: tuple[ObjectStore, FakeClock]) -> None:
    s, _ = store
    key = s.put(b"document bytes")
    url = s.signed_url(key, 60)
    assert url.startswith(f"tvdb://objects/{key}?expires=")
    assert s.read(url) == b"document bytes"


def test_expired_url_is_refused(store: tuple[ObjectStore, FakeClock]) -> None:
    s, clock = store
    url = s.signed_url(s.put(b"x"), 60)
    clock.advance(59)
    assert s.read(url) == b"x"
    clock.advance(1)
    with pytest.raises(SignedUrlError, match="expired"):
        s.read(url)


@pytest.mark.parametrize("tamper", ["expiry", "signature", "key", "scheme"])
def test_tampered_url_is_refused(store: tuple[ObjectStore, FakeClock], tamper: str) -> None:
    s, _ = store
    key = s.put(b"x")
    other = s.put(b"y")
    url = s.signed_url(key, 60)
    bad = {
        "expiry": url.replace("expires=", "expires=9"),
        "signature": url[:-4] + ("0000" if not url.endswith("0000") else "1111"),
        "key": url.replace(key, other),
        "scheme": url.replace("tvdb://", "http://"),
    }[tamper]
    with pytest.raises(SignedUrlError):
        s.read(bad)


def test_url_signed_with_another_secret_is_refused(tmp_path: Path) -> None:
    clock = FakeClock()
    a = ObjectStore(tmp_path, b"one", clock)
    b = ObjectStore(tmp_path, b"two", clock)
    url = a.signed_url(a.put(b"x"), 60)
    with pytest.raises(SignedUrlError, match="does not match"):
        b.read(url)


def test_corrupted_object_is_detected(store: tuple[ObjectStore, FakeClock]) -> None:
    s, _ = store
    key = s.put(b"original")
    s.path_of(key).write_bytes(b"changed")
    with pytest.raises(SignedUrlError, match="hash mismatch"):
        s.read(s.signed_url(key, 60))


def test_generated_secret_is_private_and_stable(tmp_path: Path) -> None:
    first = load_or_create_secret(tmp_path)
    assert load_or_create_secret(tmp_path) == first
    assert len(first) == 64
    assert os.stat(tmp_path / "signing.key").st_mode & 0o777 == 0o600
