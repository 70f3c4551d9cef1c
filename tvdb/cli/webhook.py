"""`tvdb webhook serve`: receive LlamaCloud's signed webhook deliveries on loopback until Ctrl-C."""

from __future__ import annotations

import json
from typing import Annotated

import typer

from tvdb.words import counted

app = typer.Typer(no_args_is_help=True, help="LlamaCloud webhooks: a verifying receiver.")


@app.command("serve")
def serve(
    ctx: typer.Context,
    port: Annotated[int, typer.Option("--port", "-p", help="Port to listen on (0: any free port).")] = 8090,
    host: Annotated[str, typer.Option(
        "--host", help="Address to bind (the real service only calls public HTTPS URLs: put a TLS proxy in front)."
    )] = "127.0.0.1",
    as_json: Annotated[bool, typer.Option(
        "--json", help="On stop, one JSON object: url, accepted, duplicates, refused and the events.")] = False,
    json_lines: Annotated[bool, typer.Option(
        "--json-lines", help="One JSON object per accepted event as it arrives (JSON Lines).")] = False,
) -> None:
    """Verify each delivery's LC-Signature (HMAC-SHA256 of the raw body, secret from
    LLAMA_CLOUD_WEBHOOK_SECRET or llama_cloud_webhook_secret) and print the accepted events.

    Missing, malformed, forged or truncated signatures get 401 and oversize bodies 413, with nothing
    kept; a delivery seen before (same event id, or same body) is acknowledged and ignored. Runs until
    Ctrl-C; with --json or --json-lines its address and tally go to stderr.
    """
    from tvdb.cli.common import plain_console, settings_for
    from tvdb.cli.output import make_console, stdout_json
    from tvdb.errors import ConfigError
    from tvdb.webhooks.receiver import WebhookReceiver
    from tvdb.webhooks.verify import Event

    settings = settings_for(ctx)
    secret = settings.llama_cloud_webhook_secret
    if secret is None:
        raise ConfigError("tvdb webhook serve needs the signing secret: set LLAMA_CLOUD_WEBHOOK_SECRET (or "
                          "llama_cloud_webhook_secret in tvdb.yaml) to the webhook_signing_secret of your uploads")
    # stdout keeps only JSON when JSON is asked for: the address and the tally go to stderr
    console = make_console(stderr=True, markup=False) if as_json or json_lines else plain_console()
    accepted: list[dict[str, str | None]] = []

    def show(event: Event) -> None:
        fields = {"event_type": event.event_type, "job_id": event.job_id, "status": event.status,
                  "dedupe_key": event.dedupe_key}
        accepted.append(fields)
        if json_lines:
            print(json.dumps(fields), flush=True)
        else:
            console.print(f"{event.event_type or 'event'} job {event.job_id or '?'} ({event.status or '?'})")

    try:
        receiver = WebhookReceiver(secret.get_secret_value(), host=host, port=port, on_event=show)
    except OSError as exc:
        raise ConfigError(f"cannot listen on {host}:{port}: {exc.strerror or exc}; pick another with --port") from None
    console.print(f"tvdb webhook receiver at {receiver.url} (POST; LC-Signature verified). Ctrl-C to stop.")
    try:
        receiver.serve_forever()
    except KeyboardInterrupt:
        if as_json:
            stdout_json({"url": receiver.url, "accepted": len(receiver.events), "duplicates": receiver.duplicates,
                         "refused": receiver.refused, "events": accepted})
        else:
            console.print(f"stopped: {len(receiver.events)} accepted, {counted(receiver.duplicates, 'duplicate')}, "
                          f"{receiver.refused} refused")
