"""Structured process logs: the run and job a log record is about, and the JSON Lines formatter of
`tvdb --log-format json`. A leaf module (stdlib only): the pipeline and the service caller set the
context, the CLI installs the formatter.

    with log_context(run_id="20261129-…", correlation_id="3fa2…"):
        log.warning("openai attempt 1 failed …")   # → {"ts", "level", "logger", "message", "run_id", "correlation_id"}
"""

from __future__ import annotations

import contextvars
import datetime as dt
import json
import logging
from collections.abc import Iterator
from contextlib import contextmanager

_RUN: contextvars.ContextVar[str | None] = contextvars.ContextVar("tvdb_run_id", default=None)
_CORRELATION: contextvars.ContextVar[str | None] = contextvars.ContextVar("tvdb_correlation_id", default=None)


@contextmanager
def log_context(*, run_id: str | None = None, correlation_id: str | None = None) -> Iterator[None]:
    """Records logged inside (this task and the tasks it starts) carry these ids; None keeps the outer one."""
    tokens = [(var, var.set(value)) for var, value in ((_RUN, run_id), (_CORRELATION, correlation_id))
              if value is not None]
    try:
        yield
    finally:
        for var, token in reversed(tokens):
            var.reset(token)


class JsonLinesFormatter(logging.Formatter):
    """One JSON object per record: ts (UTC ISO), level, logger, message, run_id, correlation_id.

    Install it behind tvdb.redaction.RedactingFilter: the message is the already redacted one."""

    def format(self, record: logging.LogRecord) -> str:
        out = {
            "ts": dt.datetime.fromtimestamp(record.created, dt.UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname.lower(), "logger": record.name, "message": record.getMessage(),
            "run_id": _RUN.get(), "correlation_id": _CORRELATION.get(),
        }
        if record.exc_info:
            out["exception"] = self.formatException(record.exc_info)
        return json.dumps(out, ensure_ascii=False)
