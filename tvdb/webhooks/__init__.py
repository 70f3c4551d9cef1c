"""LlamaCloud webhook receiving: `LC-Signature` verification, de-duplication, and waiting for a job's event.

- `tvdb.webhooks.verify`: pure checks of one delivery (signature, size, payload) → `Verdict`.
- `tvdb.webhooks.receiver`: `WebhookReceiver`, a loopback HTTP server (`tvdb webhook serve`, and
  in-process for `parse.webhook: true`) whose `wait(job_id)` the real parser awaits.
"""
