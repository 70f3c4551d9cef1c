"""Which mode each service runs in, why, and what real mode needs (keys), decided once per run.

    role        settings key          ledger service   key (env var)
    parser      services.parser       llamaparse       LLAMA_CLOUD_API_KEY
    embedder    services.embedder     openai           OPENAI_API_KEY

A per-service override beats `mode`; each level of the precedence (defaults < tvdb.yaml < scenario
< environment < flags) is named in the reason, e.g. "set by scenario: services.parser".
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from tvdb.config import Settings
from tvdb.domain import Mode
from tvdb.ledger.prices import LLAMAPARSE, OPENAI

Role = Literal["parser", "embedder"]
ROLES: tuple[Role, ...] = ("parser", "embedder")


@dataclass(frozen=True, slots=True)
class RoleInfo:
    role: Role
    service: str  # ledger name: "llamaparse" | "openai"
    key_env: str  # the environment variable of its API key
    key_setting: str  # the Settings field of its API key


ROLE_INFO: dict[Role, RoleInfo] = {
    "parser": RoleInfo("parser", LLAMAPARSE, "LLAMA_CLOUD_API_KEY", "llama_cloud_api_key"),
    "embedder": RoleInfo("embedder", OPENAI, "OPENAI_API_KEY", "openai_api_key"),
}
STAGE_ROLE: dict[str, Role] = {"parse": "parser", "embed": "embedder", "query": "embedder"}


def service_mode(settings: Settings, role: Role) -> tuple[Mode, str]:
    """The mode `role` runs in, and why: "mode mock", "set by scenario: services.parser", "set by --mode"."""
    override = getattr(settings.services, role)
    if override is not None:
        return Mode(override), settings.origin_of(f"services.{role}") or f"services.{role} {override}"
    return settings.mode, settings.origin_of("mode") or f"mode {settings.mode}"


def api_key(settings: Settings, role: Role) -> str | None:
    """The role's API key (a secret: never log or store it), or None when unset."""
    secret = getattr(settings, ROLE_INFO[role].key_setting)
    value = secret.get_secret_value() if secret is not None else None
    return value or None


# How much of a key doctor shows: enough to tell which key is set, a fixed count so that no key's
# shape can widen it (a prefix "up to the first dash" shows 12 of `abcdefg-hijkl`), and nothing of a
# key so short that fewer than _MIN_HIDDEN characters would stay hidden.
_SHOWN_HEAD, _SHOWN_TAIL, _MIN_HIDDEN = 3, 4, 12


def mask_key(key: str | None) -> str:
    """`sk-…cdef`: the first 3 and last 4 characters, for doctor output; `…` alone for a key shorter
    than 19 characters (it could not keep 12 hidden); "not set" for None."""
    if not key:
        return "not set"
    if len(key) < _SHOWN_HEAD + _SHOWN_TAIL + _MIN_HIDDEN:
        return "…"
    return f"{key[:_SHOWN_HEAD]}…{key[-_SHOWN_TAIL:]}"
