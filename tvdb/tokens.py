"""tiktoken loading with an actionable error when the vocabulary cannot be fetched.

tiktoken downloads `cl100k_base` on first use and caches it under ``$TIKTOKEN_CACHE_DIR``.
Offline, the cache file must already be there (named by the sha1 of its download URL).
"""

from __future__ import annotations

import functools
import os
from typing import TYPE_CHECKING

from tvdb.errors import TokenizerUnavailable

if TYPE_CHECKING:
    import tiktoken

_CACHE_FILES = {"cl100k_base": "9b5ad71b2ce5302211f9c61530b329a4922fc6a4"}


@functools.cache
def get_encoding(name: str = "cl100k_base") -> tiktoken.Encoding:
    """The tiktoken encoding `name`; cached per process because building it costs ~0.2 s.

    Raises TokenizerUnavailable with the fix when the vocabulary is neither cached nor downloadable.
    """
    import tiktoken

    try:
        return tiktoken.get_encoding(name)
    except Exception as exc:  # tiktoken raises requests/urllib/ValueError variants when offline
        file = _CACHE_FILES.get(name, "<sha1 of the download URL>")
        raise TokenizerUnavailable(
            f"tiktoken could not load the {name!r} vocabulary ({type(exc).__name__}). "
            f"It downloads it on first use; offline, point TIKTOKEN_CACHE_DIR at a folder that holds "
            f"tiktoken's cache file {file} ({cache_dir_description()}), e.g. "
            f"export TIKTOKEN_CACHE_DIR=$PWD/../shared/tiktoken_cache from the root of a checkout beside the "
            f"shared corpus (an absolute path: it then works from any folder); "
            f"with network access, unset it and tiktoken downloads the file itself"
        ) from None


def count_tokens(texts: list[str], encoding: str = "cl100k_base") -> list[int]:
    """Token counts of `texts` as the embeddings API counts them (no special tokens)."""
    enc = get_encoding(encoding)
    # a plain loop: tiktoken's 8-thread batch API measured slower on 2 cores
    return [len(enc.encode_ordinary(t)) for t in texts]


def cached_vocabulary(name: str = "cl100k_base") -> str | None:
    """Where tiktoken's cached vocabulary file for `name` is, or None when it is not cached (loading it
    would then need the network). Mirrors tiktoken's lookup: TIKTOKEN_CACHE_DIR, DATA_GYM_CACHE_DIR,
    else <tmp>/data-gym-cache."""
    file = os.path.join(_cache_folder(), _CACHE_FILES.get(name, ""))
    return file if name in _CACHE_FILES and os.path.isfile(file) else None


def _cache_folder() -> str:
    import tempfile

    return (os.environ.get("TIKTOKEN_CACHE_DIR") or os.environ.get("DATA_GYM_CACHE_DIR")
            or os.path.join(tempfile.gettempdir(), "data-gym-cache"))


def cache_dir_description() -> str:
    """`TIKTOKEN_CACHE_DIR is …` for a hint, with the absolute folder tiktoken looks in whenever the
    variable alone does not say it: tiktoken resolves a relative path from the current directory,
    which is rarely the one the user had in mind."""
    value = os.environ.get("TIKTOKEN_CACHE_DIR")
    folder = os.path.abspath(_cache_folder())
    if not value:
        return f"TIKTOKEN_CACHE_DIR is unset, so tiktoken looks in {folder}"
    if os.path.isabs(value):
        return f"TIKTOKEN_CACHE_DIR is {value}"
    return f"TIKTOKEN_CACHE_DIR is {value}, a relative path, so tiktoken looks in {folder}"
