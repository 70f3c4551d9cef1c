"""The one table of per-model and per-tier wire limits.

The chunker, the batch planner, the embedders and the emulator all read these numbers here, so a
cap can never disagree between the code that builds a request and the code that checks it.
Source: https://platform.openai.com/docs/api-reference/embeddings/create (2048 inputs, 8192 tokens
per input, 300,000 tokens per request) and https://developers.llamaindex.ai/llamaparse/ (tiers).
"""

from __future__ import annotations

from dataclasses import dataclass

from tvdb.errors import ConfigError


@dataclass(frozen=True, slots=True)
class EmbeddingModelSpec:
    name: str
    default_dimensions: int
    supports_dimensions: bool
    encoding: str = "cl100k_base"
    max_input_tokens: int = 8192
    max_inputs_per_request: int = 2048
    max_tokens_per_request: int = 300_000


EMBEDDING_MODELS: dict[str, EmbeddingModelSpec] = {
    spec.name: spec
    for spec in (
        EmbeddingModelSpec("text-embedding-3-small", 1536, True),
        EmbeddingModelSpec("text-embedding-3-large", 3072, True),
        EmbeddingModelSpec("text-embedding-ada-002", 1536, False),
    )
}

DEFAULT_EMBEDDING_MODEL = "text-embedding-3-small"
# the largest of each limit over all models: the static bounds of settings (each model's own is checked too)
MAX_INPUT_TOKENS = max(m.max_input_tokens for m in EMBEDDING_MODELS.values())
MAX_INPUTS_PER_REQUEST = max(m.max_inputs_per_request for m in EMBEDDING_MODELS.values())
MAX_DIMENSIONS = max(m.default_dimensions for m in EMBEDDING_MODELS.values())

PARSE_TIERS: tuple[str, ...] = ("fast", "cost_effective", "agentic", "agentic_plus")
# Credits LlamaParse bills per page by v2 tier (contracts.md §2.7); the price table holds the dollars.
PARSE_CREDITS_PER_PAGE: dict[str, int] = {"fast": 1, "cost_effective": 3, "agentic": 10, "agentic_plus": 45}


def target_pages(spec: str) -> list[int]:
    """LlamaParse v2 `page_ranges.target_pages` ("1,3,5-8", 1-based) → sorted page numbers.

    Raises ValueError for a bad range, a page 0, a descending range or a duplicate page.
    """
    pages: list[int] = []
    for part in spec.split(","):
        lo_text, dash, hi_text = part.strip().partition("-")
        if not lo_text.strip().isdigit() or (dash and not hi_text.strip().isdigit()):
            raise ValueError(f"invalid page range {part.strip()!r}: use 1-based pages such as '1,3,5-8'")
        lo = int(lo_text)
        hi = int(hi_text) if dash else lo
        if lo < 1 or hi < lo:
            raise ValueError(f"invalid page range {part.strip()!r}: pages start at 1 and ranges ascend")
        pages.extend(range(lo, hi + 1))
    if len(set(pages)) != len(pages):
        raise ValueError("duplicate pages in target_pages")
    return sorted(pages)


def selected_page_count(total: int, *, max_pages: int | None, target: str | None) -> int:
    """How many of a document's `total` pages a job parses (and bills): `target` wins over `max_pages`."""
    if target:
        return sum(1 for p in target_pages(target) if p <= total)
    return min(total, max_pages) if max_pages else total


def embedding_model(name: str) -> EmbeddingModelSpec:
    """The spec of a known embedding model; raises ConfigError for an unknown one."""
    try:
        return EMBEDDING_MODELS[name]
    except KeyError:
        known = ", ".join(sorted(EMBEDDING_MODELS))
        raise ConfigError(f"unknown embedding model {name!r}; known models: {known}") from None


def resolve_dimensions(model: str, dimensions: int | None) -> int:
    """The vector dimension a request will produce; raises ConfigError when `dimensions` is not allowed."""
    spec = embedding_model(model)
    if dimensions is None:
        return spec.default_dimensions
    if not spec.supports_dimensions:
        raise ConfigError(f"{model} does not support `dimensions` (only text-embedding-3 models do)")
    if not 1 <= dimensions <= spec.default_dimensions:
        raise ConfigError(f"dimensions for {model} must be between 1 and {spec.default_dimensions}")
    return dimensions
