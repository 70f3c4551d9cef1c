"""Alert delivery channels: a generic JSON webhook, a Slack incoming webhook, and email over SMTP.

Each channel's `send(alert)` makes ONE attempt and raises `DeliveryError` with a reason that is
safe to store and print (secrets redacted) and whether retrying may help; retries and the
never-raise guarantee live in `tvdb.alerts.delivery`.

The Slack webhook URL and the SMTP password are secrets: they never appear in a reason, a log
line or a description. HTTP goes through `tvdb.http` with the bare transport rather than a
client, because the client logs every request URL at INFO level (which would print the Slack
URL under `--debug`).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from email.message import EmailMessage
from typing import Any
from urllib.parse import urlsplit

from tvdb.config import AlertSettings
from tvdb.ledger.alerts import Alert
from tvdb.redaction import redact, redact_url

DEFAULT_TIMEOUT_S = 10.0
_RETRYABLE_HTTP = {408, 425, 429}
_SLACK_HEADER_MAX = 150  # Slack's limit for a header block's plain_text


class DeliveryError(Exception):
    """One failed delivery attempt; `reason` is already redacted."""

    def __init__(self, reason: str, *, retryable: bool) -> None:
        self.reason = reason
        self.retryable = retryable
        super().__init__(reason)


@dataclass(frozen=True)
class Channel:
    """A configured destination. `target` is safe to show (no secrets)."""

    name: str  # webhook | slack | email
    target: str
    send: Callable[[Alert], None]
    secrets: tuple[str, ...] = ()


def webhook_payload(alert: Alert) -> dict[str, Any]:
    """The generic webhook body: `{"source": "tvdb", "alert": {id, key, kind, severity, …}}`."""
    return {"source": "tvdb", "alert": alert.as_dict()}


_EMOJI = {"info": ":information_source:", "warning": ":warning:", "critical": ":rotating_light:"}


def slack_payload(alert: Alert) -> dict[str, Any]:
    """A Slack incoming-webhook body: `text` (fallback/notification) plus Block Kit blocks.

    Source: https://api.slack.com/messaging/webhooks (POST JSON; `text` is required as the
    notification fallback when `blocks` are given).
    """
    sev = str(alert.severity)
    context = f"severity *{sev}* · {alert.window_label} · tvdb alert #{alert.alert_id}"
    header = f"{alert.title}"[:_SLACK_HEADER_MAX]
    return {
        "text": f"[tvdb {sev}] {alert.title}: {alert.message}",
        "blocks": [
            {"type": "header", "text": {"type": "plain_text", "text": header}},
            {"type": "section", "text": {"type": "mrkdwn", "text": f"{_EMOJI.get(sev, '')} {alert.message}"}},
            {"type": "context", "elements": [{"type": "mrkdwn", "text": context}]},
        ],
    }


def email_message(alert: Alert, *, sender: str, recipients: list[str]) -> EmailMessage:
    msg = EmailMessage()
    msg["Subject"] = f"[tvdb] {str(alert.severity).upper()}: {alert.title}"
    msg["From"] = sender
    msg["To"] = ", ".join(recipients)
    details = "\n".join(f"  {k}: {v}" for k, v in sorted(alert.details.items()))
    msg.set_content(
        f"{alert.message}\n\nseverity: {alert.severity}\nwindow: {alert.window_label}\n"
        f"alert: #{alert.alert_id} ({alert.key})\n{details}\n\n"
        "Acknowledge with: tvdb alerts ack " + str(alert.alert_id) + "\n"
    )
    return msg


def _post_json(url: str, payload: Mapping[str, Any], *, timeout_s: float, secrets: tuple[str, ...]) -> None:
    from tvdb.http import HTTPTransport, Request, RequestError

    timeout = {"connect": timeout_s, "read": timeout_s, "write": timeout_s, "pool": timeout_s}
    request = Request("POST", url, json=dict(payload), headers={"user-agent": "tvdb-alerts"},
                      extensions={"timeout": timeout})
    try:
        with HTTPTransport() as transport:
            response = transport.handle_request(request)
            try:
                response.read()
            finally:
                response.close()
    except RequestError as exc:
        raise DeliveryError(redact(f"{type(exc).__name__}: {exc}", secrets), retryable=True) from None
    status = response.status_code
    if 200 <= status < 300:
        return
    raise DeliveryError(f"HTTP {status}", retryable=status >= 500 or status in _RETRYABLE_HTTP)


def _send_email(settings: AlertSettings, message: EmailMessage, *, timeout_s: float) -> None:
    import smtplib

    smtp = settings.smtp
    password = smtp.password.get_secret_value() if smtp.password else None
    assert smtp.host is not None
    try:
        with smtplib.SMTP(smtp.host, smtp.port, timeout=timeout_s) as client:
            if smtp.starttls:
                client.starttls()
            if smtp.username and password:
                client.login(smtp.username, password)
            client.send_message(message)
    except smtplib.SMTPResponseException as exc:
        # 4xx replies are temporary, 5xx permanent (RFC 5321 §4.2.1)
        raise DeliveryError(f"SMTP {exc.smtp_code}", retryable=400 <= exc.smtp_code < 500) from None
    except smtplib.SMTPRecipientsRefused:
        raise DeliveryError("SMTP: every recipient was refused", retryable=False) from None
    except (smtplib.SMTPException, OSError) as exc:
        raise DeliveryError(redact(f"{type(exc).__name__}: {exc}", [password]), retryable=True) from None


def configured_channels(settings: AlertSettings, *, timeout_s: float = DEFAULT_TIMEOUT_S) -> list[Channel]:
    """Channels configured enough to send: webhook_url, slack_webhook_url, smtp.host + smtp.recipients."""
    out: list[Channel] = []
    if settings.webhook_url:
        url = settings.webhook_url
        out.append(Channel(
            "webhook", f"webhook {redact_url(url)}",
            lambda a: _post_json(url, webhook_payload(a), timeout_s=timeout_s, secrets=(url,)),
            secrets=(url,),
        ))
    if settings.slack_webhook_url is not None:
        slack = settings.slack_webhook_url.get_secret_value()
        # the whole URL is the credential; its path alone (…/services/T…/B…/token) is too
        path = urlsplit(slack).path
        slack_secrets = (slack, path) if len(path) > 1 else (slack,)
        out.append(Channel(
            "slack", "slack (incoming webhook; URL hidden)",
            lambda a: _post_json(slack, slack_payload(a), timeout_s=timeout_s, secrets=slack_secrets),
            secrets=slack_secrets,
        ))
    smtp = settings.smtp
    if smtp.host and smtp.recipients:
        pw = smtp.password.get_secret_value() if smtp.password else ""
        out.append(Channel(
            "email", f"email to {', '.join(smtp.recipients)} via {smtp.host}:{smtp.port}",
            lambda a: _send_email(
                settings, email_message(a, sender=smtp.sender, recipients=list(smtp.recipients)),
                timeout_s=timeout_s,
            ),
            secrets=(pw,) if pw else (),
        ))
    return out
