"""The scenario file format (YAML), validated with pydantic. Only `name` and `documents` are required.

    name: quickstart                 # required
    description: ...                 # optional text
    mode: mock                       # mock | real | hybrid (default: mock, or tvdb.yaml / TVDB_MODE)
    documents: [docs/*.md, /abs/x.pdf]   # required: paths or globs, relative to this file
    parse: {tier: fast}              # fast | cost_effective | agentic | agentic_plus
    chunking: {max_tokens: 512, overlap_tokens: 64}
    embedding: {model: text-embedding-3-small, dimensions: 1536}
    budget: {max_usd: 0.05}          # per-run budget in USD
    services: {parser: mock, embedder: real}   # per-service mode overrides
    faults: [...]                    # fault plan (see tvdb.faults)
    reuse: false                     # parse and embed every document on every run (default true)
    expectations: {...}              # see Expectations
    pipeline: my_pkg.ingest:run      # run the user's own code per document (tvdb.scenarios.hooks)
    search: my_pkg.search:query      # ... and its own store for `retrieval:` expectations
    python_path: [src]               # folders the hook modules import from (relative to this file)
    hooks: {timeout_s: 300}          # one call of the user's code: past it the document fails with `timeout`
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import Field, field_validator, model_validator

from tvdb.bounds import MAX_COUNT, MAX_USD
from tvdb.errors import ErrorCode
from tvdb.validation import CrossFieldError, StrictModel

DocumentStatus = Literal["complete", "failed"]
# The settings a scenario may state: they decide how documents are ingested, so a run stores them
# and `tvdb resume` restores them (the rest — budgets, keys, paths — is the machine's).
SETTINGS_KEYS = ("mode", "services", "parse", "chunking", "embedding", "budget", "hooks")
_FAILURE_CODES = {c.value for c in ErrorCode}
MAX_TOP_K = 10_000  # results of one retrieval check, all held in memory
_SERVICE_STAGES = {"openai": ("embed", "query"), "llamaparse": ("parse",)}  # the ledger's stage per call


class _Strict(StrictModel):
    """A scenario section: strict, frozen, every number bounded (tvdb.validation.StrictModel)."""


class DocumentExpectation(_Strict):
    """Expectations for the documents matching `document` (a path or glob; `*` = all documents)."""

    document: str = "*"
    status: DocumentStatus | None = None
    error_code: str | None = None
    min_chunks: int | None = Field(None, ge=0, le=MAX_COUNT)
    max_chunks: int | None = Field(None, ge=0, le=MAX_COUNT)

    @field_validator("error_code")
    @classmethod
    def _known_code(cls, value: str | None) -> str | None:
        if value is not None and value not in _FAILURE_CODES:
            raise ValueError(f"unknown error code {value!r}; one of: {', '.join(sorted(_FAILURE_CODES))}")
        return value

    @model_validator(mode="after")
    def _consistent(self) -> DocumentExpectation:
        # CrossFieldError names the keys read: judged beside another key's error (tvdb.validation.all_errors)
        if self.error_code is not None and self.status == "complete":
            raise CrossFieldError("error_code only makes sense with status: failed", keys=("error_code", "status"))
        if self.min_chunks is not None and self.max_chunks is not None and self.min_chunks > self.max_chunks:
            raise CrossFieldError("min_chunks is larger than max_chunks", keys=("min_chunks", "max_chunks"))
        return self


class VectorExpectation(_Strict):
    dimension: int | None = Field(None, ge=1, le=MAX_COUNT)
    finite: bool = True
    unit_norm: bool = True


class RetrievalExpectation(_Strict):
    """`query` embedded like the chunks must find a chunk of `document` among the `top_k` results."""

    query: str = Field(min_length=1)
    document: str
    top_k: int = Field(3, ge=1, le=MAX_TOP_K)


class RequestExpectation(_Strict):
    """Count of request attempts (ledger rows) of this run, e.g. to assert on retries."""

    service: Literal["openai", "llamaparse"]
    # only this stage's rows: openai serves `embed` (documents) and `query` (retrieval queries), so a
    # fault meant for document embedding can be checked to have hit it
    stage: Literal["parse", "embed", "query"] | None = None
    status: Literal["ok", "error"] | None = None
    retries: bool = False  # count only attempts after the first (attempt > 1)
    min: int | None = Field(None, ge=0, le=MAX_COUNT)
    max: int | None = Field(None, ge=0, le=MAX_COUNT)

    @model_validator(mode="after")
    def _bounds(self) -> RequestExpectation:
        # CrossFieldError names the keys read: judged beside another key's error (tvdb.validation.all_errors)
        if self.min is not None and self.max is not None and self.min > self.max:
            raise CrossFieldError("min is larger than max", keys=("min", "max"))
        if self.stage is not None and self.stage not in _SERVICE_STAGES[self.service]:
            raise CrossFieldError(f"{self.service} has no {self.stage} requests (its stages: "
                                  f"{', '.join(_SERVICE_STAGES[self.service])})", keys=("stage", "service"))
        return self


class ProvenanceExpectation(_Strict):
    """Which implementations served the run's calls (successful calls; a failed attempt is not served).

    `require_real`: every call of these stages ran real (and there was one) · `max_mock_fraction`:
    at most this share of all calls ran mock · `max_fallbacks`: at most this many hybrid fallbacks."""

    require_real: list[Literal["parse", "embed", "query"]] = []
    max_mock_fraction: float | None = Field(None, ge=0, le=1)
    max_fallbacks: int | None = Field(None, ge=0, le=MAX_COUNT)


class Expectations(_Strict):
    documents: list[DocumentExpectation] = []
    vectors: VectorExpectation | None = None
    max_cost_usd: float | None = Field(None, ge=0, le=MAX_USD)
    retrieval: list[RetrievalExpectation] = []
    requests: list[RequestExpectation] = []
    provenance: ProvenanceExpectation | None = None


class Scenario(_Strict):
    """A validated scenario. Settings keys are kept raw (`settings`) for the config layering."""

    name: str = Field(min_length=1)
    description: str = ""
    documents: list[str] = Field(min_length=1)
    expectations: Expectations = Expectations()
    faults: list[dict[str, Any]] = []
    # false: every run parses and embeds every document, as `tvdb run --fresh` does. A scenario whose
    # faults must hit document calls needs it: reused documents make no calls, so a rerun's fault
    # would land on whatever call comes first instead (a retrieval query)
    reuse: bool = True
    # settings sections (validated by tvdb.config.Settings in the layered merge)
    mode: str | None = None
    parse: dict[str, Any] | None = None
    chunking: dict[str, Any] | None = None
    embedding: dict[str, Any] | None = None
    budget: dict[str, Any] | None = None
    services: dict[str, Any] | None = None
    hooks: dict[str, Any] | None = None  # {timeout_s: 300}: one call of the user's code
    # the user's own code (tvdb.scenarios.hooks): `package.module:function`
    pipeline: str | None = None
    search: str | None = None
    python_path: list[str] = []

    @field_validator("name")
    @classmethod
    def _cassette_file_name(cls, value: str) -> str:
        # the name is a file name (cassettes/<name>.yaml, the run table): a separator, `..` or an absolute
        # path would read or write a cassette outside the cassette folder, NUL fails deep inside open()
        why = ("'/'" if "/" in value else "'\\'" if "\\" in value else "'..'" if ".." in value
               else "NUL or a control character" if not value.isprintable() else None)
        if why is not None:
            raise ValueError(f"{value!r} contains {why}, and the name becomes the cassette file "
                             "cassettes/<name>.yaml: use a plain file name (letters, digits, '-', '_', '.', "
                             "spaces), e.g. 'nightly-ingest'")
        return value

    @field_validator("pipeline", "search")
    @classmethod
    def _hook_spec(cls, value: str | None) -> str | None:
        from tvdb.scenarios.hooks import SPEC, SPEC_HINT

        if value is not None and not SPEC.match(value.strip()):
            raise ValueError(f"{value!r} is not a hook spec: {SPEC_HINT}")
        return value.strip() if value is not None else None

    @field_validator("python_path")
    @classmethod
    def _non_empty_paths(cls, value: list[str]) -> list[str]:
        if any(not entry.strip() for entry in value):
            raise ValueError("a python_path entry is empty")
        return value

    @field_validator("documents")
    @classmethod
    def _non_empty_entries(cls, value: list[str]) -> list[str]:
        for entry in value:
            if not entry.strip():
                raise ValueError("a documents entry is empty")
        return value

    def settings_layer(self) -> dict[str, Any]:
        """The settings this scenario states, for `resolve_settings(scenario=...)`."""
        return {k: getattr(self, k) for k in SETTINGS_KEYS if getattr(self, k) is not None}
