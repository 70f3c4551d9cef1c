"""Readable messages for pydantic validation errors in config and scenario files."""

from __future__ import annotations

import typing
from collections.abc import Sequence

from pydantic import BaseModel
from pydantic_core import ErrorDetails


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


def describe(err: ErrorDetails, root: type[BaseModel]) -> str:
    """`unknown key 'x' (allowed: …)`, `required key is missing`, or pydantic's own message."""
    loc = err["loc"]
    if err["type"] == "extra_forbidden":
        allowed = allowed_keys(root, loc[:-1])
        return f"unknown key {loc[-1]!r}" + (f" (allowed: {', '.join(allowed)})" if allowed else "")
    if err["type"] == "missing":
        return "required key is missing"
    return str(err["msg"]).removeprefix("Value error, ")


def dotted(loc: Sequence[object]) -> str:
    """('expectations', 'documents', 0, 'stat') → 'expectations.documents[0].stat'."""
    out = ""
    for part in loc:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else str(part))
    return out
