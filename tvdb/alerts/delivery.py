"""Deliver alerts to every configured channel, with retries, without ever raising to the caller.

Each (alert, channel) pair is tried up to `alerts.delivery_attempts` times (tenacity, exponential
backoff with an injected `sleep`, a timeout per attempt); a 4xx answer other than 408/425/429 or a
permanent SMTP reply is not retried. The outcome is returned and, with a `db`, recorded in
`alert_deliveries` and the alert's `delivery_status`. Muted alerts are not sent.

The runner is async; `deliver_alerts` is blocking, so call it as
`await asyncio.to_thread(deliver_alerts, alerts, settings, db=db)` from a coroutine.
"""

from __future__ import annotations

import datetime as dt
import logging
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from tvdb.alerts.channels import DEFAULT_TIMEOUT_S, Channel, DeliveryError, configured_channels
from tvdb.clock import Clock
from tvdb.config import AlertSettings, Settings
from tvdb.ledger.alerts import Alert, Severity, muted_until, record_deliveries
from tvdb.redaction import redact
from tvdb.storage import Database

_log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class DeliveryResult:
    """How one alert went to one channel. `status`: delivered | failed | muted. `reason` is redacted."""

    alert_id: int
    channel: str
    target: str
    status: str
    attempts: int
    reason: str | None = None


def _attempt(channel: Channel, alert: Alert, attempts: int, sleep: Callable[[float], None]) -> DeliveryResult:
    from tenacity import Retrying, retry_if_exception, stop_after_attempt, wait_exponential

    tries = 0
    retrying = Retrying(
        stop=stop_after_attempt(attempts),
        wait=wait_exponential(multiplier=0.5, max=8),
        retry=retry_if_exception(lambda e: isinstance(e, DeliveryError) and e.retryable),
        sleep=sleep,
        reraise=True,
    )
    try:
        for attempt in retrying:
            with attempt:
                tries += 1
                channel.send(alert)
    except DeliveryError as exc:
        return DeliveryResult(alert.alert_id, channel.name, channel.target, "failed", tries, exc.reason)
    except Exception as exc:  # a bug or an unexpected library error must not fail the run either
        reason = redact(f"{type(exc).__name__}: {exc}", channel.secrets)
        return DeliveryResult(alert.alert_id, channel.name, channel.target, "failed", tries, reason)
    return DeliveryResult(alert.alert_id, channel.name, channel.target, "delivered", tries)


def deliver_alerts(
    alerts: Sequence[Alert],
    settings: Settings | AlertSettings,
    *,
    db: Database | None = None,
    clock: Clock | None = None,
    sleep: Callable[[float], None] = time.sleep,
    timeout_s: float = DEFAULT_TIMEOUT_S,
    channels: Sequence[Channel] | None = None,
) -> list[DeliveryResult]:
    """Send `alerts` to the configured channels; never raises for a delivery failure.

    Alerts marked muted, or all alerts while a mute window is open in `db`, are reported as
    `muted` and not sent. `channels` overrides the ones built from settings (tests, custom sinks).
    """
    cfg = settings.alerts if isinstance(settings, Settings) else settings
    targets = list(channels) if channels is not None else configured_channels(cfg, timeout_s=timeout_s)
    now = clock.now() if clock is not None else dt.datetime.now(dt.UTC)
    muted_now = db is not None and muted_until(db, now) is not None
    results: list[DeliveryResult] = []
    for alert in alerts:
        if alert.muted or muted_now:
            batch = [DeliveryResult(alert.alert_id, c.name, c.target, "muted", 0) for c in targets]
            status = "muted"
        else:
            batch = [_attempt(c, alert, cfg.delivery_attempts, sleep) for c in targets]
            status = ("no_channels" if not batch
                      else "delivered" if all(r.status == "delivered" for r in batch) else "failed")
        results += batch
        if db is not None and alert.alert_id:
            outcomes = [(r.channel, r.status, r.attempts, r.reason) for r in batch]
            try:
                record_deliveries(db, alert.alert_id, outcomes, now=now, status=status)
            except Exception as exc:  # best effort: the alert is stored; a locked db must not fail the run
                _log.warning("could not record delivery of alert #%s: %s", alert.alert_id, type(exc).__name__)
    return results


def make_test_alert(now: dt.datetime) -> Alert:
    """A harmless alert for `tvdb alerts test` (id 0: not stored)."""
    return Alert(
        alert_id=0, key=f"test:{now.isoformat()}", kind="test", severity=Severity.INFO,
        title="tvdb test alert", message="If you can read this, tvdb alert delivery works.",
        created_at=now, window_label="test",
    )
