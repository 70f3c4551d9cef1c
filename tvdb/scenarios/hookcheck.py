"""What a scenario with `pipeline:` may state, and loading its hooks with errors that name file:line:key.

tvdb cannot see inside the user's pipeline, so expectations about its internals (chunk counts,
stored vectors) and the settings of tvdb's own stages (parse tier, chunking, embedding model) mean
nothing there: stating them is an error that says what to do instead, never a silent no-op.
"""

from __future__ import annotations

from pathlib import Path

from tvdb.errors import ScenarioError
from tvdb.scenarios.hooks import ScenarioHooks, import_dirs, load_hooks
from tvdb.scenarios.schema import Scenario
from tvdb.validation import dotted
from tvdb.yamlfile import YamlDocument

Loc = tuple[str | int, ...]


def hook_key_problems(scenario: Scenario) -> list[tuple[Loc, str]]:
    """(location, message) of every key that contradicts the scenario's use (or not) of hooks."""
    out: list[tuple[Loc, str]] = []
    if scenario.pipeline is None:
        if scenario.search is not None:
            out.append((("search",), "a search: hook queries your own store, which only your `pipeline:` fills: "
                                     "add `pipeline: my_pkg.ingest:run`, or remove search:"))
        if scenario.python_path:
            out.append((("python_path",), "python_path: only says where `pipeline:` and `search:` hooks import "
                                          "from: add `pipeline: my_pkg.ingest:run`, or remove python_path:"))
        return out
    for section, what in (("parse", "parses"), ("chunking", "chunks"), ("embedding", "embeds")):
        if getattr(scenario, section) is not None:
            out.append(((section,), f"has no effect with `pipeline:`: your code {what} documents its own way "
                                    f"(set that in your code); remove {section}:"))
    expectations = scenario.expectations
    if expectations.vectors is not None:
        out.append((("expectations", "vectors"), "tvdb cannot read the vectors your pipeline stores: remove "
                                                 "vectors: (check them in your own tests)"))
    for i, entry in enumerate(expectations.documents):
        for key in ("min_chunks", "max_chunks"):
            if getattr(entry, key) is not None:
                out.append((("expectations", "documents", i, key), f"tvdb cannot count the chunks your pipeline "
                                                                   f"makes: remove {key}: (status and error_code "
                                                                   "work)"))
    if expectations.retrieval and scenario.search is None:
        out.append((("expectations", "retrieval"), "with `pipeline:`, retrieval expectations search your own "
                                                   "store: add `search: my_pkg.search:query` (query(text, top_k) "
                                                   "→ document paths or ids), or remove retrieval:"))
    return out


def check_hook_keys(scenario: Scenario, doc: YamlDocument) -> None:
    """Raise one ScenarioError listing every problem of `hook_key_problems`, in file order."""
    found = [ScenarioError(message, path=doc.path, line=doc.line_of(loc), key=dotted(loc))
             for loc, message in hook_key_problems(scenario)]
    if not found:
        return
    found.sort(key=lambda e: (e.line is None, e.line or 0))
    first = found[0]
    raise ScenarioError(first.message, path=first.path, line=first.line, key=first.key, more=tuple(found[1:]))


def scenario_hooks(scenario: Scenario, path: Path, doc: YamlDocument | None = None) -> ScenarioHooks | None:
    """Import the scenario's hooks (None without `pipeline:`). Raises ScenarioError naming file:line:key;
    `doc` gives the lines (a resumed run has only the stored scenario, and names the file alone)."""
    if scenario.pipeline is None:
        return None

    def where(key: str, message: str) -> ScenarioError:
        return ScenarioError(message, path=path, line=doc.line_of((key,)) if doc is not None else None, key=key)

    return load_hooks(scenario.pipeline, scenario.search, import_dirs(path.parent, scenario.python_path), where)
