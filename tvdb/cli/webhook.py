"""`tvdb webhook serve`: receive LlamaCloud's signed webhook deliveries on loopback until Ctrl-C."""

from __future__ import annotations

import json
from typing import Annotated

import typer

app = typer.Typer(no_args_is_help=True, help="LlamaCloud webhooks: a verifying receiver.")


@app.command("serve")
def serve(
    ctx: typer.Context,
    port: Annotated[int, typer.Option("--port", "-p", help="Port to listen on (0: any free port).")] = 8090,
    host: Annotated[str, typer.Option(
        "--host", help="Address to bind (the real service only calls public HTTPS URLs: put a TLS proxy in front)."
    )] = "127.0.0.1",
    as_json: Annotated[bool, typer.Option("--json", help="One JSON object per accepted event.")] = False,
) -> None:
    """Verify each delivery's LC-Signature (HMAC-SHA256 of the raw body, secret from
    LLAMA_CLOUD_WEBHOOK_SECRET or llama_cloud_webhook_secret) and print the accepted events.

    Missing, malformed, forged or truncated signatures get 401 and oversize bodies 413, with nothing
    kept; a delivery seen before (same event id, or same body) is acknowledged and ignored.
    """
    from tvdb.cli.common import plain_console, settings_for
    from tvdb.errors import ConfigError
    from tvdb.webhooks.receiver import WebhookReceiver
    from tvdb.webhooks.verify import Event

    settings = settings_for(ctx)
    secret = settings.llama_cloud_webhook_secret
    if secret is None:
        raise ConfigError("tvdb webhook serve needs the signing secret: set LLAMA_CLOUD_WEBHOOK_SECRET (or "
                          "llama_cloud_webhook_secret in tvdb.yaml) to the webhook_signing_secret of your uploads")
    console = plain_console()

    def show(event: Event) -> None:
        if as_json:
            print(json.dumps({"event_type": event.event_type, "job_id": event.job_id, "status": event.status,
                              "dedupe_key": event.dedupe_key}), flush=True)
        else:
            console.print(f"{event.event_type or 'event'} job {event.job_id or '?'} ({event.status or '?'})")

    try:
        receiver = WebhookReceiver(secret.get_secret_value(), host=host, port=port, on_event=show)
    except OSError as exc:
        raise ConfigError(f"cannot listen on {host}:{port}: {exc.strerror or exc}; pick another with --port") from None
    if not as_json:
        console.print(f"tvdb webhook receiver at {receiver.url} (POST; LC-Signature verified). Ctrl-C to stop.")
    try:
        receiver.serve_forever()
    except KeyboardInterrupt:
        if not as_json:
            console.print(f"stopped: {len(receiver.events)} accepted, {receiver.duplicates} duplicates, "
                          f"{receiver.refused} refused")
