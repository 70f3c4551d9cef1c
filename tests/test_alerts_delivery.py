"""Alert delivery against local receivers on loopback: an HTTP server (webhook, Slack) and aiosmtpd.

Failing receivers (HTTP 500, refused connections, SMTP errors, timeouts) never raise to the caller,
are retried `alerts.delivery_attempts` times, and no secret (Slack URL, SMTP password) appears in a
result, the ledger or a log line.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import sqlite_utils
from aiosmtpd.controller import Controller

from tests.ledger_rows import add, at
from tests.receivers import Mailbox, Receiver, authenticator_for, free_port
from tvdb.alerts.channels import Channel, configured_channels
from tvdb.alerts.delivery import deliver_alerts, make_test_alert
from tvdb.clock import FakeClock
from tvdb.config import Settings
from tvdb.db import open_db
from tvdb.ledger.alerts import Alert, deliveries, evaluate_alerts, list_alerts

NOW = at("2026-01-10T06:00")
SLACK_SECRET = "T0CANARY/B0CANARY/sk-canary-slack-4f9c2e"
SMTP_PASSWORD = "sk-canary-smtp-pw-77d1"


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    r = Receiver([200])
    yield r
    r.close()


@pytest.fixture
def smtp_server() -> Iterator[tuple[Mailbox, int]]:
    box = Mailbox()
    port = free_port()
    controller = Controller(
        box,
        hostname="127.0.0.1",
        port=port,
        authenticator=authenticator_for(SMTP_PASSWORD),
        auth_require_tls=False,
    )
    controller.start()
    yield box, port
    controller.stop()


@pytest.fixture
def db(tmp_path: Path) -> sqlite_utils.Database:
    return open_db(tmp_path / "tvdb.db")


def _settings(**alerts: Any) -> Settings:
    return Settings.model_validate({"daily_budget_usd": 1.0, "alerts": alerts})


def _alert(db: sqlite_utils.Database) -> Alert:
    add(db, NOW, units=30_000_000)  # $0.60
    (alert,) = evaluate_alerts(db, _settings(), FakeClock(NOW))
    return alert


def test_webhook_and_slack_payloads(
    db: sqlite_utils.Database, receiver: Receiver, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    alert = _alert(db)
    s = _settings(
        webhook_url=f"{receiver.url}/hook", slack_webhook_url=f"{receiver.url}/services/{SLACK_SECRET}"
    )
    results = deliver_alerts([alert], s, db=db, clock=FakeClock(NOW), sleep=lambda _: None)
    assert [(r.channel, r.status, r.attempts) for r in results] == [
        ("webhook", "delivered", 1),
        ("slack", "delivered", 1),
    ]
    (hook_path, hook_headers, hook), (slack_path, _, slack) = receiver.requests
    assert hook_path == "/hook" and hook_headers["Content-Type"] == "application/json"
    assert hook["source"] == "tvdb"
    assert {k: hook["alert"][k] for k in ("id", "kind", "severity", "title")} == {
        "id": alert.alert_id,
        "kind": "budget",
        "severity": "info",
        "title": "Daily budget 50% used",
    }
    assert hook["alert"]["details"]["spent_usd"] == 0.6
    assert slack_path == f"/services/{SLACK_SECRET}"
    assert slack["text"].startswith("[tvdb info] Daily budget 50% used: spent $0.60 of")
    assert [b["type"] for b in slack["blocks"]] == ["header", "section", "context"]
    assert slack["blocks"][0]["text"] == {"type": "plain_text", "text": "Daily budget 50% used"}
    assert list_alerts(db)[0].delivery_status == "delivered"
    assert [d["channel"] for d in deliveries(db, alert.alert_id)] == ["webhook", "slack"]
    # the HTTP stack logs at DEBUG, but never the Slack URL (the client's INFO line would)
    assert "send_request_headers" in caplog.text and "CANARY" not in caplog.text


def test_email_over_smtp_with_login(db: sqlite_utils.Database, smtp_server: tuple[Mailbox, int]) -> None:
    box, port = smtp_server
    alert = _alert(db)
    s = _settings(
        smtp={
            "host": "127.0.0.1",
            "port": port,
            "sender": "tvdb@example.test",
            "recipients": ["ops@example.test", "cfo@example.test"],
            "username": "tvdb",
            "password": SMTP_PASSWORD,
        }
    )
    (result,) = deliver_alerts([alert], s, db=db, sleep=lambda _: None)
    assert (result.channel, result.status, result.attempts) == ("email", "delivered", 1)
    (envelope,) = box.messages
    assert envelope.rcpt_tos == ["ops@example.test", "cfo@example.test"]
    text = envelope.content.decode()
    assert "Subject: [tvdb] INFO: Daily budget 50% used" in text
    assert f"tvdb alerts ack {alert.alert_id}" in text
    assert SMTP_PASSWORD not in result.target


def test_smtp_temporary_failure_is_retried(db: sqlite_utils.Database) -> None:
    box = Mailbox(["451 4.3.0 try again later", "250 OK"])
    port = free_port()
    controller = Controller(box, hostname="127.0.0.1", port=port)
    controller.start()
    try:
        sleeps: list[float] = []
        s = _settings(smtp={"host": "127.0.0.1", "port": port, "recipients": ["ops@example.test"]})
        (result,) = deliver_alerts([_alert(db)], s, sleep=sleeps.append)
    finally:
        controller.stop()
    assert (result.status, result.attempts) == ("delivered", 2)
    assert len(box.messages) == 1 and len(sleeps) == 1


def test_smtp_rejected_login_is_permanent_and_never_leaks_the_password(
    db: sqlite_utils.Database, smtp_server: tuple[Mailbox, int], caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    _, port = smtp_server
    s = _settings(
        smtp={
            "host": "127.0.0.1",
            "port": port,
            "recipients": ["ops@example.test"],
            "username": "tvdb",
            "password": "sk-canary-wrong-password",
        }
    )
    alert = _alert(db)
    (result,) = deliver_alerts([alert], s, db=db, sleep=lambda _: None)
    assert (result.status, result.attempts, result.reason) == ("failed", 1, "SMTP 535")
    assert list_alerts(db)[0].delivery_status == "failed"
    everything = json.dumps([deliveries(db, alert.alert_id), repr(result), repr(s), caplog.text])
    assert "sk-canary-wrong-password" not in everything


@pytest.mark.parametrize("attempts", [1, 3])
def test_http_500_is_retried_then_recorded_as_failed(db: sqlite_utils.Database, attempts: int) -> None:
    bad = Receiver([500])
    try:
        sleeps: list[float] = []
        s = _settings(webhook_url=f"{bad.url}/hook", delivery_attempts=attempts)
        alert = _alert(db)
        (result,) = deliver_alerts([alert], s, db=db, sleep=sleeps.append)
    finally:
        bad.close()
    assert (result.status, result.attempts, result.reason) == ("failed", attempts, "HTTP 500")
    assert len(bad.requests) == attempts and len(sleeps) == attempts - 1
    assert deliveries(db, alert.alert_id)[0]["status"] == "failed"


def test_http_400_is_not_retried_and_a_later_success_counts(db: sqlite_utils.Database) -> None:
    bad, flaky = Receiver([400]), Receiver([503, 429, 200])
    try:
        s = _settings(
            webhook_url=f"{bad.url}/hook",
            slack_webhook_url=f"{flaky.url}/services/{SLACK_SECRET}",
            delivery_attempts=3,
        )
        results = deliver_alerts([_alert(db)], s, sleep=lambda _: None)
    finally:
        bad.close()
        flaky.close()
    assert [(r.channel, r.status, r.attempts, r.reason) for r in results] == [
        ("webhook", "failed", 1, "HTTP 400"),
        ("slack", "delivered", 3, None),
    ]


def test_refused_connections_never_raise_and_never_leak_the_slack_url(
    db: sqlite_utils.Database, caplog: pytest.LogCaptureFixture, tmp_path: Path
) -> None:
    caplog.set_level(logging.DEBUG)
    port = free_port()
    slack_url = f"http://127.0.0.1:{port}/services/{SLACK_SECRET}"
    s = _settings(
        webhook_url=f"http://127.0.0.1:{port}/hook",
        slack_webhook_url=slack_url,
        smtp={
            "host": "127.0.0.1",
            "port": port,
            "recipients": ["ops@example.test"],
            "username": "u",
            "password": SMTP_PASSWORD,
        },
        delivery_attempts=3,
    )
    sleeps: list[float] = []
    alert = _alert(db)
    results = deliver_alerts([alert], s, db=db, sleep=sleeps.append, timeout_s=2)
    assert [(r.channel, r.status, r.attempts) for r in results] == [
        ("webhook", "failed", 3),
        ("slack", "failed", 3),
        ("email", "failed", 3),
    ]
    assert all("Connect" in (r.reason or "") or "refused" in (r.reason or "") for r in results)
    assert len(sleeps) == 6
    dump = json.dumps(
        [
            [repr(r) for r in results],
            deliveries(db, alert.alert_id),
            caplog.text,
            [c.target for c in configured_channels(s.alerts)],
            repr(s),
        ]
    )
    assert "CANARY" not in dump and "sk-canary" not in dump


def test_slow_receiver_times_out_and_is_retried(db: sqlite_utils.Database) -> None:
    slow = Receiver([200], delay_s=0.6)
    try:
        s = _settings(webhook_url=f"{slow.url}/hook", delivery_attempts=2)
        (result,) = deliver_alerts([_alert(db)], s, sleep=lambda _: None, timeout_s=0.15)
    finally:
        slow.close()
    assert (result.status, result.attempts) == ("failed", 2)
    assert "Timeout" in (result.reason or "")


def test_a_broken_channel_never_raises(db: sqlite_utils.Database) -> None:
    def boom(alert: Alert) -> None:
        raise RuntimeError("unexpected bug with sk-canary-inner-secret")

    channel = Channel("webhook", "custom", boom, secrets=("sk-canary-inner-secret",))
    (result,) = deliver_alerts([_alert(db)], _settings(), db=db, channels=[channel], sleep=lambda _: None)
    assert result.status == "failed" and result.attempts == 1
    assert result.reason == "RuntimeError: unexpected bug with ***"


def test_no_channels_and_test_alert(db: sqlite_utils.Database, receiver: Receiver) -> None:
    alert = _alert(db)
    assert deliver_alerts([alert], _settings(), db=db) == []
    assert list_alerts(db)[0].delivery_status == "no_channels"
    results = deliver_alerts([make_test_alert(NOW)], _settings(webhook_url=f"{receiver.url}/hook"))
    assert [r.status for r in results] == ["delivered"]
    assert receiver.requests[0][2]["alert"]["kind"] == "test"
