"""Placeholder API keys for services that send nothing out (mock mode, or a replay).

The SDKs refuse to build a client without a key (`OpenAI()` raises when OPENAI_API_KEY is unset), but
a mock or replayed request never reaches the service: while a session, or a `pipeline:` run, lasts, the
SDK's variable holds a placeholder for each such service whose key the user has not set. A real
service keeps what the user set, or gets the SDK's own missing-key error. One rule for both callers
(`tvdb.session()` and the scenario hook runner), here.
"""

from __future__ import annotations

from collections.abc import Iterator, MutableMapping
from contextlib import contextmanager
from typing import TYPE_CHECKING, Literal

if TYPE_CHECKING:
    from tvdb.config import Settings

PLACEHOLDER_KEYS = {"openai": "sk-tvdb-placeholder", "llamaparse": "llx-tvdb-placeholder"}
# role → (service, the variable the SDK reads)
KEY_ENV: dict[Literal["parser", "embedder"], tuple[str, str]] = {
    "embedder": ("openai", "OPENAI_API_KEY"), "parser": ("llamaparse", "LLAMA_CLOUD_API_KEY")}


def set_placeholder_keys(settings: Settings, *, replay: bool, environ: MutableMapping[str, str]) -> list[str]:
    """Put a placeholder in `environ` for each service that is offline (`replay`, or its mode is mock) and
    has no key there; returns the names it set, for `remove_placeholder_keys`."""
    from tvdb.domain import Mode
    from tvdb.services.modes import service_mode

    added = []
    for role, (service, name) in KEY_ENV.items():
        offline = replay or service_mode(settings, role)[0] is Mode.MOCK
        if offline and not environ.get(name):
            environ[name] = PLACEHOLDER_KEYS[service]
            added.append(name)
    return added


def remove_placeholder_keys(names: list[str], environ: MutableMapping[str, str]) -> None:
    for name in names:
        environ.pop(name, None)


@contextmanager
def placeholder_keys(settings: Settings, *, replay: bool, environ: MutableMapping[str, str]) -> Iterator[None]:
    """`set_placeholder_keys` while the block runs; removed afterwards."""
    added = set_placeholder_keys(settings, replay=replay, environ=environ)
    try:
        yield
    finally:
        remove_placeholder_keys(added, environ)
