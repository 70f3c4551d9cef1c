"""Readable messages for pydantic validation errors in config and scenario files."""

from __future__ import annotations

import difflib
import typing
from collections.abc import Sequence
from typing import Any

from pydantic import BaseModel, ConfigDict, ValidationError, ValidationInfo, field_validator
from pydantic_core import ErrorDetails


def _is_number_type(annotation: object) -> bool:
    """int or float, alone or in a union / list / Annotated (bool excluded: it is its own type)."""
    if annotation in (int, float):
        return True
    return any(_is_number_type(arg) for arg in typing.get_args(annotation))


class StrictModel(BaseModel):
    """The base of every validated file section: unknown keys are errors, values are frozen, inf and
    NaN are refused (an infinite budget is a typo, and nano-dollar arithmetic cannot hold it), and a
    YAML boolean is not a number (`max_tokens: true` would otherwise pass as 1)."""

    model_config = ConfigDict(extra="forbid", frozen=True, allow_inf_nan=False)

    @field_validator("*", mode="before")
    @classmethod
    def _no_bool_numbers(cls, value: Any, info: ValidationInfo) -> Any:
        if info.field_name is None or not _is_number_type(cls.model_fields[info.field_name].annotation):
            return value
        if isinstance(value, bool) or (isinstance(value, list) and any(isinstance(v, bool) for v in value)):
            raise ValueError("expected a number, got a boolean")
        return value


def _nested_model(annotation: object) -> type[BaseModel] | None:
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return annotation
    for arg in typing.get_args(annotation):
        found = _nested_model(arg)
        if found is not None:
            return found
    return None


def allowed_keys(root: type[BaseModel], parent: Sequence[object]) -> list[str]:
    """The keys the model at `parent` (a pydantic error location) accepts; [] if unknown."""
    model: type[BaseModel] | None = root
    for part in parent:
        if isinstance(part, int) or model is None:
            continue
        field = model.model_fields.get(str(part))
        model = _nested_model(field.annotation) if field is not None else None
    return list(model.model_fields) if model is not None else []


# What pydantic puts before the text of a ValueError or an assert raised in a validator. Our validators
# write whole sentences, which read wrong behind pydantic's label.
_PYDANTIC_PREFIXES = ("Value error, ", "Assertion failed, ")


def own_message(msg: str) -> str:
    """A validator's message as it wrote it: without pydantic's `Value error, ` / `Assertion failed, `."""
    for prefix in _PYDANTIC_PREFIXES:
        if msg.startswith(prefix):
            return msg[len(prefix):]
    return msg


class CrossFieldError(ValueError):
    """A model validator's problem across several of its keys (dotted, relative to the model): the first
    is the one the error is reported at; the check is only judged once every key in `keys` is valid."""

    def __init__(self, message: str, *, keys: tuple[str, ...]) -> None:
        super().__init__(message)
        self.keys = keys


def cross_field(err: ErrorDetails) -> CrossFieldError | None:
    """The CrossFieldError behind a pydantic error, if it is one."""
    found = (err.get("ctx") or {}).get("error")
    return found if isinstance(found, CrossFieldError) else None


def field_annotation(root: type[BaseModel], loc: Sequence[object]) -> object:
    """The annotation of the field at `loc` (a pydantic error location); None if unknown."""
    model: type[BaseModel] | None = root
    annotation: object = None
    for part in loc:
        if isinstance(part, int):
            continue
        field = model.model_fields.get(str(part)) if model is not None else None
        if field is None:
            return annotation if model is None else None
        annotation = field.annotation
        model = _nested_model(annotation)
    return annotation


def _shown(value: object) -> str:
    from tvdb.redaction import redact  # a URL's password or a key-shaped string is never repeated

    text = repr(redact(value) if isinstance(value, str) else value)
    return text if len(text) <= 60 else text[:57] + "..."


_LIST_TYPES = frozenset({"list_type", "tuple_type", "set_type", "frozen_set_type", "iterable_type"})
_MAPPING_TYPES = frozenset({"dict_type", "model_type", "model_attributes_type", "mapping_type", "dataclass_type"})
# pydantic's own phrases, for an error type tvdb has no sentence of its own for: the message keeps
# pydantic's detail, in tvdb's words ("must be …"), never its capitalised "Input should be …"
_PYDANTIC_PHRASES = (("Input should be ", "must be "), ("Value should be ", "must be "),
                     ("Value should have ", "must have "), ("Input should have ", "must have "),
                     ("Field required", "required key is missing"), ("Extra inputs are not permitted", "unknown key"))


def plain(msg: str) -> str:
    """pydantic's wording of a message turned into tvdb's ("Input should be a valid x" → "must be a valid x")."""
    msg = own_message(msg)
    for theirs, ours in _PYDANTIC_PHRASES:
        if msg.startswith(theirs):
            return ours + msg[len(theirs):]
    return msg


def _length(err: ErrorDetails) -> str | None:
    """A text's or a list's length out of bounds, in tvdb's words; None for another error."""
    kind, ctx = err["type"], err.get("ctx") or {}
    if kind == "string_too_short":
        n = ctx.get("min_length")
        return "must not be empty" if n == 1 else f"must be at least {n} characters long"
    if kind == "string_too_long":
        return f"must be at most {ctx.get('max_length')} characters long"
    if kind == "too_short":
        n = ctx.get("min_length")
        return "must list at least one item" if n == 1 else f"must list at least {n} items"
    if kind == "too_long":
        return f"must list at most {ctx.get('max_length')} items, got {ctx.get('actual_length')}"
    return None


def expected(err: ErrorDetails, root: type[BaseModel]) -> str | None:
    """What the key must be, in tvdb's words ("a whole number", "at most 64"), for pydantic's common
    error types; None for a validator's own message or an uncommon type."""
    kind, ctx, loc = err["type"], err.get("ctx") or {}, err["loc"]
    name = str(next((p for p in reversed(loc) if isinstance(p, str)), ""))
    usd = name.endswith("_usd")
    if kind in ("int_parsing", "int_type", "int_from_float"):
        return "a whole number"
    if kind in ("float_parsing", "float_type"):
        return "a number of USD like 5 or 0.50" if usd else "a number"
    if kind == "finite_number":
        return "a finite number of USD like 5 or 0.50" if usd else "a finite number"
    if kind in ("bool_parsing", "bool_type"):
        return "true or false"
    if kind == "string_type":
        return "text"
    if kind in ("literal_error", "enum"):
        return f"one of {ctx.get('expected')}"
    if kind in _LIST_TYPES:
        return "a list (`- item` lines, or [a, b])"
    if kind in _MAPPING_TYPES:
        return "a mapping (`key: value` lines indented under it, or {key: value})"
    if kind in ("decimal_parsing", "decimal_type"):
        return "a number"
    if kind.startswith("date_"):
        return "a date like 2026-01-31"
    if kind.startswith("datetime_"):
        return "a date and time like 2026-01-31T09:30:00Z"
    if kind.startswith("url_"):
        return "a URL like https://example.com/path"
    if kind == "string_pattern_mismatch":
        return f"text matching {ctx.get('pattern')}"
    if kind == "multiple_of":
        return f"a multiple of {ctx.get('multiple_of')}"
    bounds = {"greater_than": ("greater than", "gt"), "greater_than_equal": ("at least", "ge"),
              "less_than": ("less than", "lt"), "less_than_equal": ("at most", "le")}
    if kind in bounds:
        words, key = bounds[kind]
        bound = ctx.get(key)
        bound = int(bound) if isinstance(bound, float) and bound.is_integer() else bound
        return f"{words} {bound}" + (" USD" if usd else "")
    return None


def describe(err: ErrorDetails, root: type[BaseModel]) -> str:
    """`unknown key 'x' (allowed: …)`, `required key is missing`, `must be a whole number, got 'abc'`
    (pydantic's common types in tvdb's words), or the validator's own sentence."""
    loc = err["loc"]
    if err["type"] == "extra_forbidden":
        allowed = allowed_keys(root, loc[:-1])
        close = difflib.get_close_matches(str(loc[-1]), allowed, n=1)
        hint = f"did you mean {close[0]!r}? " if close else ""
        listed = f"allowed: {', '.join(allowed)}" if allowed else ""
        return f"unknown key {loc[-1]!r}" + (f" ({hint}{listed})".replace("? )", "?)") if hint or listed else "")
    if err["type"] == "missing":
        return "required key is missing"
    length = _length(err)
    if length is not None:
        return length
    wanted = expected(err, root)
    if wanted is not None:
        secret = "SecretStr" in str(field_annotation(root, loc))  # the value is never repeated
        return f"must be {wanted}" + ("" if secret else f", got {_shown(err['input'])}")
    return plain(str(err["msg"]))


def dotted(loc: Sequence[object]) -> str:
    """('expectations', 'documents', 0, 'stat') → 'expectations.documents[0].stat'."""
    out = ""
    for part in loc:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else str(part))
    return out


def cross_field_paths(err: ErrorDetails) -> list[tuple[str | int, ...]]:
    """The full locations of the keys a CrossFieldError reads (the blamed one first); [] for another error."""
    cross = cross_field(err)
    if cross is None:
        return []
    loc = tuple(err["loc"])
    first = tuple(cross.keys[0].split("."))
    base = loc[: -len(first)] if loc[-len(first):] == first else loc  # a field validator's loc ends with it
    return [(*base, *key.split(".")) for key in cross.keys]


def _field_path(loc: Sequence[str | int]) -> tuple[str | int, ...]:
    """A list item's error is the whole list's: ('alerts', 'thresholds_pct', 0) → its field."""
    out = tuple(loc)
    while out and isinstance(out[-1], int):
        out = out[:-1]
    return out


def _remove(data: Any, path: tuple[str | int, ...]) -> tuple[str | int, ...] | None:
    """Drop the key at `path` so that the next pass judges its model on the other keys; returns the
    path dropped, or None when the data does not state that key (its default stands).

    The path may go through list items (`faults[0].times`) and end in a union member's tag
    (`faults[0].nth.int`), which names no key: the value that holds the tag is dropped. A list item
    itself is never dropped (the items after it would move up and be reported at the wrong index)."""
    holder: dict[Any, Any] | None = None
    for n, part in enumerate(path):
        if isinstance(data, dict):
            if part not in data:
                return None
            holder = data
        elif not (isinstance(data, list) and isinstance(part, int) and 0 <= part < len(data)):
            break  # a union member's tag below a value: the value is what is wrong
        elif n == len(path) - 1:
            return None
        data = data[part]
    else:
        n = len(path)
    if holder is None or not isinstance(path[n - 1], str):
        return None
    del holder[path[n - 1]]
    return path[:n]


def all_errors(model: type[BaseModel], data: Any, *, passes: int = 4) -> list[ErrorDetails]:
    """Every problem of `data`, field-level and cross-field, in one listing.

    pydantic skips a model validator once any field of its model fails, so a cross-field check (an
    overlap against max_tokens) would only be found on the next run. Each further pass drops the keys
    already found wrong (they fall back to their defaults) and keeps only what is new and judged on
    valid values alone: a cross-field check none of whose keys was dropped."""
    import copy

    found: list[ErrorDetails] = []
    seen: set[tuple[object, ...]] = set()
    dropped: list[tuple[str | int, ...]] = []
    current = copy.deepcopy(data)
    for n in range(passes):
        try:
            model.model_validate(current)
        except ValidationError as exc:
            batch = exc.errors()
        else:
            break
        removed = False
        for err in batch:
            paths = cross_field_paths(err)
            if n and (not paths or any(p[: len(d)] == d for p in paths for d in dropped)):
                continue  # judged against a default that stands in for a wrong value
            sig = (tuple(err["loc"]), err["msg"])
            if sig not in seen:
                seen.add(sig)
                found.append(err)
            for path in paths or [_field_path(err["loc"])]:
                gone = _remove(current, path) if path else None
                if gone is not None:
                    dropped.append(gone)
                    removed = True
        if not removed:
            break
    return found
