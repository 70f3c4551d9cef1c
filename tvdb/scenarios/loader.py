"""Load a scenario file: YAML (safe) → validated `Scenario` → resolved document paths.

Every error is a ScenarioError naming the file, the line and the key.
"""

from __future__ import annotations

import glob
import re
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml
from pydantic import BaseModel, ValidationError
from pydantic_core import ErrorDetails

from tvdb.errors import ScenarioError
from tvdb.scenarios.hooks import ScenarioHooks
from tvdb.scenarios.patterns import matches
from tvdb.scenarios.schema import SETTINGS_KEYS, Scenario
from tvdb.validation import all_errors, describe, dotted
from tvdb.words import counted
from tvdb.yamlfile import YamlDocument, load_yaml

_GLOB_CHARS = set("*?[")


@dataclass(frozen=True)
class LoadedScenario:
    """A scenario with its source (for line numbers) and its documents resolved to absolute paths."""

    scenario: Scenario
    source: YamlDocument
    documents: tuple[Path, ...]
    hooks: ScenarioHooks | None = None  # the user's own code, for a scenario with `pipeline:`

    @property
    def path(self) -> Path:
        return self.source.path


def load_scenario(path: Path) -> LoadedScenario:
    """Read and validate `path`. Raises ScenarioError (file, line, key) for any problem."""
    path = path.resolve()
    try:
        doc = load_yaml(path)
    except FileNotFoundError:
        raise ScenarioError("no such scenario file", path=path) from None
    except OSError as exc:
        raise ScenarioError(f"cannot read the scenario file: {exc.strerror or exc}", path=path) from None
    except UnicodeDecodeError:
        raise ScenarioError("the scenario file is not UTF-8 text", path=path) from None
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        line = mark.line + 1 if mark is not None else None
        problem = getattr(exc, "problem", None) or str(exc)
        raise ScenarioError(f"invalid YAML: {problem}", path=path, line=line) from None
    if not isinstance(doc.data, dict):
        raise ScenarioError("a scenario must be a mapping with at least `name` and `documents`", path=path, line=1)
    # every problem is gathered in one pass (schema, settings keys, faults, documents, expectation
    # names), so a file is fixed in one go instead of one error per run
    entries = doc.data.get("documents")
    try:
        scenario = Scenario.model_validate(doc.data)
    except ValidationError:
        # each later check still runs when its own inputs are valid: the settings keys, the documents,
        # and the expectations' document names against them
        found = _settings_problems(doc)
        if isinstance(entries, list) and entries and all(isinstance(e, str) and e.strip() for e in entries):
            _check_expectation_names(doc, entries, resolve_documents(entries, doc, problems=found), found)
        faults = doc.data.get("faults")
        if isinstance(faults, list) and all(isinstance(f, dict) for f in faults):
            found.extend(_fault_problems(faults, doc))
        raise _scenario_error(all_errors(Scenario, doc.data), doc, Scenario, also=_unpack(found)) from None
    problems = _settings_problems(doc) + _fault_problems(scenario.faults, doc)
    documents = resolve_documents(scenario.documents, doc, problems=problems)
    _check_expectation_names(doc, scenario.documents, documents, problems)
    if problems:
        raise _combined(_unpack(problems))
    from tvdb.scenarios.hookcheck import check_hook_keys, scenario_hooks

    check_hook_keys(scenario, doc)
    return LoadedScenario(scenario, doc, documents, scenario_hooks(scenario, path, doc))


def _unpack(problems: list[ScenarioError]) -> list[ScenarioError]:
    return [one for p in problems for one in (p, *p.more)]


def _combined(found: list[ScenarioError]) -> ScenarioError:
    """One error for every problem, in file order, each (line, key) once: the first names file, line
    and key; the rest ride along."""
    unique = list({(e.line, e.key, e.message): ScenarioError(e.message, path=e.path, line=e.line, key=e.key)
                   for e in found}.values())
    # within a line (a flow-style list) by key, its indices as numbers: [2] before [10]
    unique.sort(key=lambda e: (e.line is None, e.line or 0,
                               [int(t) if t.isdigit() else t for t in re.split(r"(\d+)", e.key or "")]))
    first = unique[0]
    return ScenarioError(first.message, path=first.path, line=first.line, key=first.key, more=tuple(unique[1:]))


def _named_documents(data: object) -> list[tuple[tuple[str | int, ...], str]]:
    """(location, name) of every `document:` the raw `expectations:` section gives as a string,
    whatever else in the section is wrong (its other problems are the schema's to report)."""
    out: list[tuple[tuple[str | int, ...], str]] = []
    if not isinstance(data, dict):
        return out
    for section in ("documents", "retrieval"):
        items = data.get(section)
        for i, item in enumerate(items if isinstance(items, list) else []):
            if isinstance(item, dict) and isinstance(item.get("document"), str):
                out.append((("expectations", section, i, "document"), item["document"]))
    return out


def _check_expectation_names(doc: YamlDocument, entries: Sequence[str], documents: tuple[Path, ...],
                             problems: list[ScenarioError]) -> None:
    """A typo in an expectation's document name is caught before anything runs (or is paid for).
    A name that a `documents:` entry which itself names nothing also gives is not reported again
    (that entry's own problem is the one to fix)."""
    base = doc.path.parent
    reported = {p.key for p in problems}
    missing = [entry for i, entry in enumerate(entries) if f"documents[{i}]" in reported]
    for loc, pattern in _named_documents(doc.data.get("expectations") if isinstance(doc.data, dict) else None):
        if any(pattern in (entry, Path(entry).name) for entry in missing):
            continue
        named = [p for p in documents if matches(pattern, str(p), base)]
        if loc[1] == "retrieval" and len(named) > 1 and not _GLOB_CHARS & set(pattern):
            # a retrieval expectation is about one document; passing when any of several same-named
            # files ranks would hide which one the query finds
            shown = ", ".join(repr(_as_written(p, base)) for p in named)
            problems.append(ScenarioError(
                f"{pattern!r} is ambiguous: it is the file name of {len(named)} of the scenario's documents"
                f" ({shown}); name one by its path, as `documents:` does, e.g. {_as_written(named[0], base)!r}",
                path=doc.path, line=doc.line_of(loc), key=dotted(loc),
            ))
        if not named:
            problems.append(ScenarioError(
                f"{pattern!r} names none of the scenario's {counted(len(documents), 'document')} (name one as"
                f" `documents:` does, relative to {base}, by absolute path, or by file name, e.g."
                f" {documents[0].name if documents else 'report.pdf'!r})",
                path=doc.path, line=doc.line_of(loc), key=dotted(loc),
            ))


def _as_written(path: Path, base: Path) -> str:
    """A document's path relative to the scenario's folder when it is inside it, else absolute."""
    return str(path.relative_to(base)) if path.is_relative_to(base) else str(path)


def _settings_problems(doc: YamlDocument) -> list[ScenarioError]:
    """The settings keys' problems, which are otherwise only found once the schema passes (a second run)."""
    from tvdb.config import scenario_settings_problems

    assert isinstance(doc.data, dict)
    stated = {k: v for k, v in doc.data.items() if k in SETTINGS_KEYS and v is not None}
    return scenario_settings_problems(stated, doc) if stated else []


def _fault_problems(faults: list[dict[str, Any]], doc: YamlDocument) -> list[ScenarioError]:
    """The `faults:` list's problems, field-level and cross-field (`nth: 0` beside a bad `times:`)."""
    from tvdb.faults.plan import FaultPlan

    try:
        FaultPlan.of(faults)
    except ValidationError:
        return [_scenario_error(all_errors(FaultPlan, {"faults": faults}), doc, FaultPlan)]
    return []


def _scenario_error(
    errors: list[ErrorDetails], doc: YamlDocument, root: type[BaseModel], also: list[ScenarioError] | None = None,
) -> ScenarioError:
    """Every problem pydantic found (tvdb.validation.all_errors: cross-field checks too), in file order:
    the first names file, line and key; the rest ride along."""
    found = list(also or ())
    stated = {(e.line, e.key) for e in found}
    for err in errors:
        loc = tuple(err["loc"])
        one = ScenarioError(describe(err, root), path=doc.path, line=doc.line_of(loc), key=dotted(loc))
        # a key both the schema and the settings check report (e.g. `mode`) is reported once, by the
        # settings check; two checks of one model (both at its key) are both kept
        if (one.line, one.key) not in stated:
            found.append(one)
    return _combined(found)


def resolve_documents(entries: list[str], doc: YamlDocument,
                      problems: list[ScenarioError] | None = None) -> tuple[Path, ...]:
    """Absolute paths, or paths and globs relative to the scenario file; sorted per glob, de-duplicated.
    Raises ScenarioError for an entry that names nothing, or appends it to `problems` and goes on.

    A path keeps the symlinks the scenario wrote (output and errors show `docs/x.pdf`, not the link's
    target); a file named twice, through a link or not, is one document, under the first name."""
    seen: dict[Path, Path] = {}
    for i, entry in enumerate(entries):
        try:
            matched = _resolve_one(i, entry, doc)
        except ScenarioError as exc:
            if problems is None:
                raise
            problems.append(exc)
            continue
        for m in matched:
            seen.setdefault(m.resolve(), as_written(m))
    return tuple(seen.values())


def as_written(path: Path) -> Path:
    """`path` absolute with `.` and `..` folded but its symlinks kept; resolved when folding a `..`
    after a symlink would name another file (`link/..` is the link target's parent)."""
    import os

    folded = Path(os.path.abspath(path))
    try:
        return folded if os.path.samefile(folded, path) else path.resolve()
    except OSError:
        return path.resolve()


def _resolve_one(i: int, entry: str, doc: YamlDocument) -> list[Path]:
    """The files entry `i` names. Raises ScenarioError when it names none."""
    base = doc.path.parent
    pattern = Path(entry).expanduser()
    full = pattern if pattern.is_absolute() else base / pattern
    if _GLOB_CHARS & set(entry):
        matches = sorted(Path(p) for p in glob.glob(str(full), recursive=True) if Path(p).is_file())
        if not matches:
            raise ScenarioError(
                f"the pattern {entry!r} matches no file (relative to {base})",
                path=doc.path, line=doc.line_of(("documents", i)), key=f"documents[{i}]",
            )
    else:
        if not full.exists():
            raise ScenarioError(
                f"no such document: {entry!r} (resolved to {full})",
                path=doc.path, line=doc.line_of(("documents", i)), key=f"documents[{i}]",
            )
        if full.is_dir():
            raise ScenarioError(
                f"{entry!r} is a directory; use a glob such as '{entry.rstrip('/')}/*'",
                path=doc.path, line=doc.line_of(("documents", i)), key=f"documents[{i}]",
            )
        matches = [full]
    return matches
