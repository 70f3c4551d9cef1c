"""A scenario's hooks into the user's own code: `pipeline: my_pkg.ingest:run` and `search: my_pkg.search:query`.

    pipeline: my_pkg.ingest:run      called once per document: run(doc: tvdb.PipelineDocument) -> Any
    search: my_pkg.search:query      called per retrieval expectation: query(text: str, top_k: int)
                                     -> a sequence of document paths, file names, job ids or correlation ids
    python_path: [src]               folders put on sys.path first (relative to the scenario file)

Either function may be sync or `async def`. The hook modules are imported with the scenario's own
folder and each `python_path` entry at the front of `sys.path` (what `python -m` does for the
current folder), so a package beside the scenario imports without being installed; an installed
package imports as usual. The entries stay on `sys.path` only while tvdb loads and runs the hooks.

A spec that cannot be used (no such module or attribute, not callable, a signature that cannot take
the arguments tvdb passes) is a ScenarioError naming the file, the line and the key, with the fix.
"""

from __future__ import annotations

import asyncio
import contextvars
import difflib
import importlib
import inspect
import re
import sys
import threading
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tvdb.errors import ScenarioError
from tvdb.redaction import redact

SPEC = re.compile(r"^(?P<module>[A-Za-z_]\w*(?:\.[A-Za-z_]\w*)*):(?P<attr>[A-Za-z_]\w*(?:\.[A-Za-z_]\w*)*)$")
SPEC_HINT = "write it as `package.module:function`, e.g. `my_pkg.ingest:run`"
# what tvdb passes, for the signature check and the messages that explain it
_ARGUMENTS = {"pipeline": ("document",), "search": ("query", "top_k")}
_EXAMPLES = {"pipeline": "def run(doc: tvdb.PipelineDocument) -> None",
             "search": "def query(text: str, top_k: int) -> list[str]"}


@dataclass(frozen=True)
class Hook:
    """One loaded hook: the scenario key it came from, its spec, the function, whether it is async."""

    key: str  # "pipeline" | "search"
    spec: str
    function: Callable[..., Any]

    @property
    def is_async(self) -> bool:
        return inspect.iscoroutinefunction(self.function)

    async def call(self, *args: Any) -> Any:
        """Call the function with `args`: an async one is awaited in this loop; a sync one runs in a thread of
        its own (with this context's variables), so the SDKs' blocking clients do not stall the event loop
        and may be served by tvdb's transports, which need it. A daemon thread, not the loop's executor: a
        call that never returns can be abandoned (`asyncio.wait_for`) without keeping the process alive.

        Whatever the function raises comes back as HookRaised (`.raised` is the exception), except a
        cancellation of this task, which stays a cancellation."""
        try:
            if self.is_async:
                return await self.function(*args)
            result = await in_daemon_thread(self.function, *args)
            if inspect.isawaitable(result):  # e.g. an object whose __call__ is `async def`: awaited on this loop
                return await result
            return result
        except HookRaised:
            raise
        except asyncio.CancelledError as exc:
            task = asyncio.current_task()
            if task is None or task.cancelling() > 0:  # tvdb's own task is cancelled: not the user's doing
                raise
            raise HookRaised(exc) from None
        except BaseException as exc:  # noqa: BLE001 — the caller decides what ends the run (Ctrl-C does)
            raise HookRaised(exc) from None


class HookRaised(Exception):  # noqa: N818 — a carrier, not an error of its own
    """What the user's function raised (`raised`), carried as an ordinary exception: a SystemExit or
    GeneratorExit must not travel through asyncio's futures and coroutines, which treat them as their own
    signals (a GeneratorExit crossing a future and a `with` block resurfaces after the handler ran)."""

    def __init__(self, raised: BaseException) -> None:
        super().__init__(f"{type(raised).__name__}: {raised}")
        self.raised = raised


async def in_daemon_thread(function: Callable[..., Any], *args: Any) -> Any:
    """`function(*args)` in a new daemon thread, in a copy of this context; what it raises comes back as
    HookRaised. Cancelling the await abandons the thread: a hung call cannot be killed (Python has no way
    to stop a thread), but it no longer holds up the run, and the process does not wait for it at exit."""
    loop = asyncio.get_running_loop()
    future: asyncio.Future[Any] = loop.create_future()
    context = contextvars.copy_context()

    def deliver(ok: bool, value: Any) -> None:
        if not future.done():  # abandoned after a timeout: nobody waits for it any more
            future.set_result(value) if ok else future.set_exception(value)

    def work() -> None:
        try:
            outcome: tuple[bool, Any] = (True, context.run(function, *args))
        except BaseException as exc:  # noqa: BLE001 — carried to the event loop as HookRaised
            outcome = (False, HookRaised(exc))
        try:
            loop.call_soon_threadsafe(deliver, *outcome)
        except RuntimeError:  # the loop is closed: the run ended without this call
            pass

    threading.Thread(target=work, name=f"tvdb-hook-{getattr(function, '__name__', 'call')}", daemon=True).start()
    return await future


@dataclass(frozen=True)
class ScenarioHooks:
    pipeline: Hook
    search: Hook | None = None


def import_dirs(base: Path, python_path: Sequence[str]) -> tuple[Path, ...]:
    """The folders hook modules are imported from first: the scenario's folder `base`, then `python_path`."""
    extra = [Path(p).expanduser() for p in python_path]
    return (base.resolve(), *((p if p.is_absolute() else base / p).resolve() for p in extra))


@contextmanager
def hook_import_path(dirs: Sequence[Path]) -> Iterator[None]:
    """`dirs` at the front of `sys.path` while the block runs; only the entries this added are removed."""
    added = [str(d) for d in dirs if str(d) not in sys.path]
    sys.path[:0] = added
    importlib.invalidate_caches()  # a folder created since the last import is seen
    try:
        yield
    finally:
        for entry in added:
            try:
                sys.path.remove(entry)
            except ValueError:  # the user's code removed it already
                pass


def load_hook(key: str, spec: str, *, where: Callable[[str], ScenarioError]) -> Hook:
    """Import `spec` ("pkg.module:attr.path"), check that it is callable with tvdb's arguments.
    `where(message)` builds the ScenarioError that names the scenario file, line and key."""
    match = SPEC.match(spec)
    if match is None:
        raise where(f"{spec!r} is not a hook spec: {SPEC_HINT}")
    module_name, attr_path = match["module"], match["attr"]
    module = _import(module_name, spec, where)
    target: Any = module
    for i, part in enumerate(attr_path.split(".")):
        owner = target
        if not hasattr(owner, part):
            scope = module_name if i == 0 else f"{module_name}:{'.'.join(attr_path.split('.')[:i])}"
            names = [n for n in dir(owner) if not n.startswith("_") and callable(getattr(owner, n, None))]
            close = difflib.get_close_matches(part, names, n=1)
            hint = f"did you mean {close[0]!r}? " if close else ""
            listed = ", ".join(sorted(names)[:12]) or "none"
            raise where(f"{scope} ({_origin(module)}) has no attribute {part!r} ({hint}callables in it: {listed})")
        target = getattr(owner, part)
    if not callable(target):
        raise where(f"{spec} is a {type(target).__name__}, not a function: name a function, e.g. "
                    f"`{_EXAMPLES[key]}`")
    _check_signature(key, spec, target, where)
    return Hook(key=key, spec=spec, function=target)


def _origin(module: Any) -> str:
    return str(getattr(module, "__file__", None) or "a namespace package")


def _import(module_name: str, spec: str, where: Callable[[str], ScenarioError]) -> Any:
    try:
        return importlib.import_module(module_name)
    except ModuleNotFoundError as exc:
        missing = exc.name or ""
        if module_name == missing or module_name.startswith(missing + "."):
            searched = ", ".join(sys.path[:3])
            raise where(
                f"cannot import {module_name!r}: no module named {missing!r} (searched the scenario's folder and"
                f" sys.path, first {searched}); put the package beside the scenario, add its folder to"
                f" `python_path:`, or `pip install -e` it") from None
        raise where(f"importing {module_name!r} failed: {_exception_line(exc)} (install what it imports: "
                    f"pip install {missing.split('.')[0]})") from None
    except Exception as exc:  # noqa: BLE001 — the user's module raised at import: say where and what
        raise where(f"importing {module_name!r} for {spec} raised {_exception_line(exc)}{_user_frame(exc)}"
                    ) from None


def _exception_line(exc: BaseException) -> str:
    return redact(f"{type(exc).__name__}: {exc}")


def _user_frame(exc: BaseException) -> str:
    """ ` (at file.py:12)`: the deepest frame of the traceback, where the user's code failed."""
    tb = exc.__traceback__
    while tb is not None and tb.tb_next is not None:
        tb = tb.tb_next
    return f" (at {tb.tb_frame.f_code.co_filename}:{tb.tb_lineno})" if tb is not None else ""


def _check_signature(key: str, spec: str, function: Callable[..., Any],
                     where: Callable[[str], ScenarioError]) -> None:
    try:
        signature = inspect.signature(function)
    except (TypeError, ValueError):  # a builtin or C function without a signature: let the call tell
        return
    arguments = _ARGUMENTS[key]
    try:
        signature.bind(*arguments)
    except TypeError:
        bare = signature.replace(parameters=[p.replace(annotation=p.empty) for p in signature.parameters.values()],
                                 return_annotation=signature.empty)  # names and defaults read best in one line
        takes = f"takes {bare}" if signature.parameters else "takes no arguments"
        count = "one positional argument" if len(arguments) == 1 else f"{len(arguments)} positional arguments"
        raise where(f"{spec} {takes}, but tvdb calls it with {count} ({', '.join(arguments)}): "
                    f"make it `{_EXAMPLES[key]}`") from None


def load_hooks(pipeline: str, search: str | None, dirs: Sequence[Path],
               where: Callable[[str, str], ScenarioError]) -> ScenarioHooks:
    """Both hooks of a scenario, imported with `dirs` on sys.path; `where(key, message)` → ScenarioError."""
    with hook_import_path(dirs):
        loaded = load_hook("pipeline", pipeline, where=lambda m: where("pipeline", m))
        found = load_hook("search", search, where=lambda m: where("search", m)) if search else None
    return ScenarioHooks(loaded, found)
