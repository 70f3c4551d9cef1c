"""Every setting of tvdb with its default and its validation (pydantic, frozen).

How the values are layered from files, the scenario, the environment and flags is
`tvdb.config`; this module only says what a valid configuration is.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import Field, PrivateAttr, SecretStr, ValidationInfo, field_validator, model_validator

from tvdb import catalog
from tvdb.bounds import MAX_COUNT, MAX_USD, MAX_WAIT_S
from tvdb.domain import Mode
from tvdb.errors import ConfigError
from tvdb.validation import CrossFieldError, StrictModel


class _Section(StrictModel):
    """A settings section: strict, frozen, every number bounded (tvdb.validation.StrictModel)."""


MAX_PARSE_WAIT_S = 86_400.0  # a day
MAX_WINDOW_S = 31 * 86_400  # a month of error-rate window
MAX_DOCUMENT_MB = 10_240.0  # 10 GB
MAX_SIGNED_URL_TTL_S = 7 * 86_400  # a week, as long as S3 presigned URLs may live
MAX_RESERVATION_TTL_S = 7 * 86_400


class ParseSettings(_Section):
    """LlamaParse (Parse API v2) settings; `timeout_s` bounds a whole job (upload to result)."""

    tier: str = "fast"
    version: str = "latest"
    concurrency: int = Field(4, ge=1, le=64)
    timeout_s: float = Field(300.0, gt=0, le=MAX_PARSE_WAIT_S)  # a big document on an agentic tier is slow
    request_timeout_s: float = Field(60.0, gt=0, le=MAX_WAIT_S)
    poll_interval_s: float = Field(1.0, gt=0, le=MAX_WAIT_S)
    max_poll_interval_s: float = Field(5.0, gt=0, le=MAX_WAIT_S)
    max_pages: int | None = Field(None, ge=1, le=MAX_COUNT)
    target_pages: str | None = None
    max_page_failure_ratio: float = Field(0.5, ge=0, le=1)
    webhook: bool = False
    webhook_grace_s: float = Field(30.0, gt=0, le=MAX_PARSE_WAIT_S)
    webhook_url: str | None = None

    @field_validator("target_pages")
    @classmethod
    def _page_list(cls, value: str | None) -> str | None:
        if value is not None:
            catalog.target_pages(value)  # ValueError names the bad range
        return value

    @field_validator("version")
    @classmethod
    def _version(cls, value: str) -> str:
        import re

        if value != "latest" and not re.fullmatch(r"\d{4}-\d{2}-\d{2}", value):
            raise ValueError(f"parse.version {value!r}: use `latest` or a dated version such as 2026-06-15")
        return value

    @field_validator("tier")
    @classmethod
    def _known_tier(cls, value: str) -> str:
        if value not in catalog.PARSE_TIERS:
            raise ValueError(f"unknown parse tier {value!r}; one of: {', '.join(catalog.PARSE_TIERS)}")
        return value


class ChunkingSettings(_Section):
    max_tokens: int = Field(512, ge=1, le=catalog.MAX_INPUT_TOKENS)  # ≤ the model's own cap: checked in Settings
    overlap_tokens: int = Field(64, ge=0, le=catalog.MAX_INPUT_TOKENS)

    @model_validator(mode="after")
    def _overlap_below_max(self) -> ChunkingSettings:
        if self.overlap_tokens >= self.max_tokens:
            raise CrossFieldError(f"overlap_tokens ({self.overlap_tokens}) must be smaller than max_tokens "
                                  f"({self.max_tokens})", keys=("overlap_tokens", "max_tokens"))
        return self


class StreamingSettings(_Section):
    """How much of the corpus is in memory at once (README "Performance at scale"). Neither changes a
    run's result: chunks, vectors and usage rows are the same for any window."""

    # documents taken through upload, parse and chunk together before their chunks join the embed queue
    window_documents: int = Field(32, ge=1, le=MAX_COUNT)
    # embedding requests planned together from the queue: each planned group of waiting chunks is the
    # longest run that `lookahead_requests` requests can carry (the request minimum holds per group)
    lookahead_requests: int = Field(8, ge=1, le=MAX_COUNT)


class ConsistencyCheckSettings(_Section):
    """Re-embed `sample` texts and require cosine ≥ `min_cosine` with the first result (0 = off)."""

    sample: int = Field(0, ge=0, le=catalog.MAX_INPUTS_PER_REQUEST)
    min_cosine: float = Field(0.99, ge=-1, le=1)


class EmbeddingSettings(_Section):
    model: str = catalog.DEFAULT_EMBEDDING_MODEL
    dimensions: int | None = Field(None, ge=1, le=catalog.MAX_DIMENSIONS)  # per model: in catalog
    # requests in flight: `auto` follows the x-ratelimit-remaining-* headers (tvdb.services.inflight)
    concurrency: Annotated[int, Field(ge=1, le=64)] | Literal["auto"] = "auto"
    timeout_s: float = Field(60.0, gt=0, le=MAX_WAIT_S)
    consistency_check: ConsistencyCheckSettings = ConsistencyCheckSettings()

    @field_validator("concurrency", mode="before")
    @classmethod
    def _auto_or_count(cls, value: Any) -> Any:
        # one message instead of pydantic's two (one per member of the union)
        if isinstance(value, str) and value.strip().lower() == "auto":
            return "auto"
        if isinstance(value, str) and re.fullmatch(r"[0-9]+", value.strip()):  # ASCII digits: not "²" or "٨"
            value = int(value)
        if isinstance(value, int) and not isinstance(value, bool) and 1 <= value <= 64:
            return value
        raise ValueError(f"must be auto (follow the API's rate-limit headers) or a whole number of "
                         f"requests from 1 to 64, got {value!r}")

    @field_validator("model")
    @classmethod
    def _known_model(cls, value: str) -> str:
        try:
            catalog.embedding_model(value)
        except ConfigError as exc:
            raise ValueError(str(exc)) from None
        return value

    @field_validator("dimensions", mode="before")
    @classmethod
    def _within_the_models_dimensions(cls, value: Any, info: ValidationInfo) -> Any:
        # the model's own limit (1536 for text-embedding-3-small), before the static bound of all models
        model = info.data.get("model")
        if model is None or isinstance(value, bool) or not isinstance(value, int):
            return value
        try:
            catalog.resolve_dimensions(model, value)
        except ConfigError as exc:
            raise CrossFieldError(str(exc), keys=("dimensions", "model")) from None
        return value

    @model_validator(mode="after")
    def _sample_fits_one_request(self) -> EmbeddingSettings:
        # refused here, before anything is paid for: the check re-embeds its sample in one request
        cap = catalog.embedding_model(self.model).max_inputs_per_request
        if self.consistency_check.sample > cap:
            raise CrossFieldError(f"consistency_check.sample ({self.consistency_check.sample}) is over the {cap} "
                                  f"inputs one {self.model} request takes; use at most {cap}",
                                  keys=("consistency_check.sample", "model"))
        return self

    @property
    def resolved_dimensions(self) -> int:
        return catalog.resolve_dimensions(self.model, self.dimensions)


class BudgetSettings(_Section):
    max_usd: float | None = Field(None, ge=0, le=MAX_USD)


class LimitsSettings(_Section):
    """Request and token limits enforced before real calls (None = no limit)."""

    openai_requests_per_hour: int | None = Field(None, ge=0, le=MAX_COUNT)
    llamaparse_requests_per_hour: int | None = Field(None, ge=0, le=MAX_COUNT)
    llamaparse_requests_per_minute: int | None = Field(None, ge=1, le=MAX_COUNT)
    openai_requests_per_minute: int | None = Field(None, ge=1, le=MAX_COUNT)
    openai_tokens_per_minute: int | None = Field(None, ge=1, le=MAX_COUNT)


class ServicesSettings(_Section):
    """Per-service mode overrides; None follows `mode`."""

    parser: Mode | None = None
    embedder: Mode | None = None


class RouterSettings(_Section):
    """The service router's circuit breaker and health probes (see tvdb.services.router)."""

    failure_threshold: int = Field(5, ge=1, le=MAX_COUNT)  # consecutive transient failures (after retries)
    cooldown_s: float = Field(30.0, ge=0, le=MAX_WAIT_S)  # open this long, then one trial call (half-open)
    health_ttl_s: float = Field(60.0, ge=0, le=MAX_WAIT_S)  # a probe's result is reused this long
    probe_timeout_s: float = Field(2.0, gt=0, le=60)  # connect timeout of a health probe (the read gets 2x)


class HybridSettings(_Section):
    """Hybrid mode: real when it can and should be used, local otherwise."""

    # once today's real spend (and reservations) pass this share of the daily budget, new calls go local
    real_until_pct: float | None = Field(None, gt=0, le=100)


class RetrySettings(_Section):
    """The one retry policy (tenacity) for every service call; SDK retries are off."""

    max_attempts: int = Field(5, ge=1, le=20)
    initial_backoff_s: float = Field(0.5, ge=0, le=MAX_WAIT_S)
    max_backoff_s: float = Field(8.0, ge=0, le=MAX_WAIT_S)
    max_retry_after_s: float = Field(120.0, ge=0, le=MAX_WAIT_S)


class SmtpSettings(_Section):
    host: str | None = None
    port: int = Field(25, ge=1, le=65535)
    sender: str = "tvdb@localhost"
    recipients: list[str] = []
    username: str | None = None
    password: SecretStr | None = None
    starttls: bool = False


class AlertSettings(_Section):
    thresholds_pct: list[Annotated[float, Field(gt=0, le=1000)]] = [50.0, 80.0, 100.0]
    error_rate_threshold: float = Field(0.2, gt=0, le=1)
    error_rate_min_calls: int = Field(5, ge=1, le=MAX_COUNT)
    error_rate_window_s: int = Field(3600, ge=1, le=MAX_WINDOW_S)
    webhook_url: str | None = None
    slack_webhook_url: SecretStr | None = None
    smtp: SmtpSettings = SmtpSettings()
    delivery_attempts: int = Field(3, ge=1, le=10)


class HookSettings(_Section):
    """A scenario's `pipeline:` / `search:` hooks (the user's own code). `timeout_s` bounds one call: one
    document through `pipeline:`, one query through `search:`; past it the document fails with `timeout`
    (the query's expectation fails) and the run goes on."""

    timeout_s: float = Field(300.0, gt=0, le=MAX_PARSE_WAIT_S)  # as long as a parse job may take


class RecordingSettings(_Section):
    """Where cassettes live: `<cassette_dir>/<scenario name>.yaml`, relative to the working directory."""

    cassette_dir: Path = Path("cassettes")


class Settings(_Section):
    """Every setting with its default. Paths are absolute after `resolve_settings`."""

    mode: Mode = Mode.MOCK
    data_dir: Path = Path(".tvdb")
    db_path: Path | None = None
    # the ledger on PostgreSQL instead of the SQLite file (postgresql://user:password@host/db): a secret,
    # since it may carry the password
    database_url: SecretStr | None = None
    objects_dir: Path | None = None
    max_document_mb: float = Field(50.0, gt=0, le=MAX_DOCUMENT_MB)
    signing_secret: SecretStr | None = None
    signed_url_ttl_s: int = Field(900, ge=1, le=MAX_SIGNED_URL_TTL_S)
    openai_api_key: SecretStr | None = None
    openai_base_url: str | None = None
    llama_cloud_api_key: SecretStr | None = None
    llama_cloud_base_url: str | None = None
    llama_cloud_webhook_secret: SecretStr | None = None
    daily_budget_usd: float = Field(1.0, ge=0, le=MAX_USD)
    timezone: str = "UTC"
    on_budget_exceeded: Literal["fail", "defer"] = "fail"
    reservation_ttl_s: int = Field(600, ge=1, le=MAX_RESERVATION_TTL_S)
    parse: ParseSettings = ParseSettings()
    chunking: ChunkingSettings = ChunkingSettings()
    embedding: EmbeddingSettings = EmbeddingSettings()
    streaming: StreamingSettings = StreamingSettings()
    budget: BudgetSettings = BudgetSettings()
    limits: LimitsSettings = LimitsSettings()
    services: ServicesSettings = ServicesSettings()
    retry: RetrySettings = RetrySettings()
    router: RouterSettings = RouterSettings()
    hybrid: HybridSettings = HybridSettings()
    alerts: AlertSettings = AlertSettings()
    recording: RecordingSettings = RecordingSettings()
    hooks: HookSettings = HookSettings()
    prices: dict[str, Any] | None = None
    # Where `mode` and `services.*` came from ("scenario", "TVDB_MODE", "--mode", …), filled in by
    # `tvdb.config.resolve_settings`; the router names it in provenance. Not a setting.
    _origins: dict[str, str] = PrivateAttr(default_factory=dict)

    @field_validator("openai_api_key", "llama_cloud_api_key", mode="before")
    @classmethod
    def _usable_key(cls, value: Any) -> Any:
        # a key pasted with a newline or a stray space would fail every request as a "connection
        # error" (an illegal header) and show up in debug logs; the message never repeats the key
        if isinstance(value, SecretStr):
            value = value.get_secret_value()
        if not isinstance(value, str):
            return value
        key = value.strip()
        if not key:
            return None
        if not key.isascii() or not key.isprintable() or any(ch.isspace() for ch in key):
            raise ValueError("the API key contains spaces, line breaks or non-ASCII characters (not shown)")
        return key

    @field_validator("openai_base_url", "llama_cloud_base_url")
    @classmethod
    def _no_credentials_in_url(cls, value: str | None) -> str | None:
        if value and "@" in value.split("://", 1)[-1].split("/", 1)[0]:
            raise ValueError("the base URL must not carry credentials (user:password@); "
                             "set the API key on its own (not shown)")
        return value

    @field_validator("database_url", mode="before")
    @classmethod
    def _postgres_url(cls, value: Any) -> Any:
        text = value.get_secret_value() if isinstance(value, SecretStr) else value
        if not isinstance(text, str):
            return value
        text = text.strip()
        if not text:
            return None
        if not text.lower().startswith(("postgresql://", "postgres://")):
            # the value may hold a password: it is never repeated
            raise ValueError("must be a PostgreSQL URL such as postgresql://user:password@host:5432/tvdb "
                             "(value not shown); leave it unset to keep the ledger in the SQLite file")
        from urllib.parse import urlsplit

        try:  # a bad IPv6 host or port would otherwise surface later as an internal error or "cannot reach"
            urlsplit(text).port  # noqa: B018 — parsing the port is the check
        except ValueError:
            raise ValueError("is not a valid PostgreSQL URL: its host or port cannot be read (value not shown); "
                             "write it as postgresql://user:password@host:5432/tvdb (port 1-65535, an IPv6 "
                             "host in [brackets])") from None
        return text

    @field_validator("timezone")
    @classmethod
    def _known_timezone(cls, value: str) -> str:
        from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

        try:
            ZoneInfo(value)
        except (ZoneInfoNotFoundError, ValueError):
            raise ValueError(f"unknown time zone {value!r} (use an IANA name such as UTC or Europe/Berlin)") from None
        return value

    @model_validator(mode="after")
    def _chunks_fit_the_model(self) -> Settings:
        cap = catalog.embedding_model(self.embedding.model).max_input_tokens
        if self.chunking.max_tokens > cap:
            raise CrossFieldError(f"chunking.max_tokens ({self.chunking.max_tokens}) is over the {cap}-token "
                                  f"input cap of {self.embedding.model}",
                                  keys=("chunking.max_tokens", "embedding.model"))
        return self

    @model_validator(mode="after")
    def _reservation_outlives_a_call(self) -> Settings:
        longest = max(self.parse.timeout_s, self.embedding.timeout_s)
        if self.reservation_ttl_s <= longest:
            raise ValueError(
                f"reservation_ttl_s ({self.reservation_ttl_s}) must be longer than the longest request "
                f"timeout ({longest:g} s): a request is cut off when its budget reservation's lease ends"
            )
        return self

    def origin_of(self, key: str) -> str | None:
        """Which layer set `key` (dotted: "mode", "services.parser"); None for the built-in default."""
        return self._origins.get(key)

    def with_origins(self, origins: dict[str, str]) -> Settings:
        """A copy that remembers where its mode keys came from (see `origin_of`)."""
        out = self.model_copy()
        out._origins = dict(origins)
        return out

    @property
    def database_path(self) -> Path:
        return self.db_path or self.data_dir / "tvdb.db"

    def secret_values(self) -> list[str]:
        """Every configured secret's value: API keys, the signing secrets (object store, webhooks),
        alert channel credentials. For masking, never for showing."""
        values = [self.openai_api_key, self.llama_cloud_api_key, self.signing_secret,
                  self.llama_cloud_webhook_secret, self.alerts.slack_webhook_url, self.alerts.smtp.password,
                  self.database_url]
        return [v.get_secret_value() for v in values if v is not None and v.get_secret_value()]

    @property
    def object_store_dir(self) -> Path:
        return self.objects_dir or self.data_dir / "objects"

    @property
    def max_document_bytes(self) -> int:
        return int(self.max_document_mb * 1024 * 1024)
