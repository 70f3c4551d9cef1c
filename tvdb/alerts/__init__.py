"""Alert delivery (webhook, Slack, email). Raising, storing, acknowledging and muting alerts is in
`tvdb.ledger.alerts`; the runner calls `evaluate_alerts` there, then `deliver_alerts` here."""

from tvdb.alerts.delivery import DeliveryResult, deliver_alerts, make_test_alert

__all__ = ["DeliveryResult", "deliver_alerts", "make_test_alert"]
