"""The Typer application, its global options, and the one mapping from errors to exit codes."""

from __future__ import annotations

import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.text import Text

from tvdb.cli.lazy import LazyGroup
from tvdb.cli.output import clean, clean_lines, make_console, stdout_json
from tvdb.errors import (
    EXIT_INTERNAL,
    EXIT_INTERRUPTED,
    EXIT_USAGE,
    OptionError,
    ScenarioError,
    StorageError,
    TvdbError,
    exit_code_for,
)

app = typer.Typer(
    name="tvdb",
    help=(
        "Test document-ingestion pipelines (LlamaParse → chunk → OpenAI embeddings → vectors) "
        "in mock, real or hybrid mode, with cassettes and a cost ledger.\n\n"
        "Start with: tvdb run scenarios/quickstart.yaml"
    ),
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    rich_markup_mode=None,  # click's plain help: rewrapped paragraphs, flags without a value, nothing cut
    context_settings={"help_option_names": ["-h", "--help"]},
    cls=LazyGroup,  # the commands (tvdb.cli.lazy.COMMANDS) are imported when one of them is asked for
)


def _version(value: bool) -> None:
    if value:
        from tvdb import __version__

        typer.echo(f"tvdb {__version__}")
        raise typer.Exit()


@app.callback()
def _global(
    ctx: typer.Context,
    config: Annotated[
        Path | None, typer.Option("--config", "-c", help="Config file (default: ./tvdb.yaml if present).")
    ] = None,
    data_dir: Annotated[
        Path | None, typer.Option("--data-dir", help="Where the database and uploads live (default .tvdb).")
    ] = None,
    debug: Annotated[bool, typer.Option("--debug", help="Log debug detail and show tracebacks.")] = False,
    log_format: Annotated[
        str, typer.Option("--log-format", metavar="text|json",
                          help="Logs on stderr as text (default) or JSON Lines with run_id and correlation_id.")
    ] = "text",
    version: Annotated[
        bool, typer.Option("--version", callback=_version, is_eager=True, help="Print the version and exit.")
    ] = False,
) -> None:
    ctx.obj = {**(ctx.obj or {}), "config": config, "data_dir": data_dir, "debug": debug}
    if log_format not in ("text", "json"):
        raise typer.BadParameter(f"{log_format!r} is not text or json", param_hint="'--log-format'")
    import logging  # here: `tvdb --help` and `--version` never get this far

    if log_format == "json":
        from tvdb.logcontext import JsonLinesFormatter

        json_lines = logging.StreamHandler()
        json_lines.setFormatter(JsonLinesFormatter())
        logging.basicConfig(level=logging.DEBUG if debug else logging.WARNING, handlers=[json_lines], force=True)
    elif debug:
        logging.basicConfig(level=logging.DEBUG)
    if debug or log_format == "json":
        from tvdb.redaction import RedactingFilter

        for handler in logging.getLogger().handlers:  # a URL's token or a key must not reach the log
            handler.addFilter(RedactingFilter())


# Typer ≥ 0.22 vendors click (typer._click) and older ones use click itself: reach its exception
# classes through typer.BadParameter so both work
_CLICK_ERROR: type[Exception] = next(c for c in typer.BadParameter.__mro__ if c.__name__ == "ClickException")
_USAGE_ERROR: type[Exception] = next(c for c in typer.BadParameter.__mro__ if c.__name__ == "UsageError")
_VALUE_OPTIONS = {"--config", "-c", "--data-dir", "--log-format"}  # global options that take a value


def wants_json(args: Sequence[str]) -> bool:
    """Whether the command line asks for JSON (`--json`, `--format json`), read before parsing so that
    a usage error, which happens before any command runs, still answers in JSON."""
    for i, arg in enumerate(args):
        if arg == "--":
            break
        if arg == "--json" or arg == "--format=json" or (arg == "--format" and args[i + 1:i + 2] == ["json"]):
            return True
    return False


def _command(args: Sequence[str]) -> str | None:
    """The (first-level) command name in `args`, skipping the global options."""
    skip = False
    for arg in args:
        if skip:
            skip = False
        elif arg in _VALUE_OPTIONS:
            skip = True
        elif not arg.startswith("-"):
            return arg
    return None


def error_json(args: Sequence[str], exc: BaseException, code: int, **extra: Any) -> None:
    """The one JSON object on stdout for a failed command: `{"error": {"type", "message", ...}, "exit_code"}`
    (`passed: false` too for run/resume, whose result objects carry it)."""
    # A message's own line breaks (one problem a line) stay "\n" in JSON, not a literal `\x0a`.
    kind = exc.name if isinstance(exc, _Redacted) else type(exc).__name__
    error: dict[str, Any] = {"type": kind, "message": clean_lines(exc), **extra}
    if isinstance(exc, ScenarioError):
        error.update(file=str(exc.path) if exc.path else None, line=exc.line, key=exc.key, problems=exc.problems)
    if isinstance(exc, StorageError):
        error.update(path=exc.path, reason=exc.reason, resume_command=exc.resume_command)
    if isinstance(exc, OptionError):
        error.update(command=exc.command, param=exc.param)
    out: dict[str, Any] = {"error": error, "exit_code": code}
    if _command(args) in ("run", "resume", "replay"):
        out = {"passed": False, **out}
    stdout_json(out)


def _param_name(exc: Exception) -> str | None:
    param = getattr(exc, "param", None)
    if param is None:
        hint = getattr(exc, "param_hint", None)
        return hint.strip("'") if isinstance(hint, str) else None
    opts = getattr(param, "opts", None) or []
    if getattr(param, "param_type_name", "") == "option" and opts:
        return str(opts[0])
    return str(getattr(param, "metavar", None) or str(getattr(param, "name", "")).upper())


def _own_wording(exc: Exception) -> None:
    """Typer coerces option values with pydantic, so a bad `--mode foo` arrives as
    "Value error, 'foo' is not one of …": drop pydantic's label before click formats the message."""
    message = getattr(exc, "message", None)
    if isinstance(message, str):
        from tvdb.validation import own_message

        exc.message = own_message(message)  # type: ignore[attr-defined]


def _usage_error(args: Sequence[str], exc: Exception) -> int:
    code = int(getattr(exc, "exit_code", EXIT_USAGE))
    _own_wording(exc)
    ctx = getattr(exc, "ctx", None)
    if type(exc).__name__ == "NoArgsIsHelpError" and ctx is not None:
        typer.echo(ctx.get_help(), err=True)  # `tvdb cost` alone: the help, exit 2
    elif wants_json(args):
        extra: dict[str, Any] = {}
        if ctx is not None:
            extra["command"] = ctx.command_path
        if (param := _param_name(exc)) is not None:
            extra["param"] = param
        message = clean(exc.format_message())  # type: ignore[attr-defined]
        error_json(args, exc, code, **({"message": message} | extra))
        make_console(stderr=True).print(Text.assemble(("error:", "bold red"), " ", message), soft_wrap=True)
    else:
        exc.show()  # type: ignore[attr-defined]
    return code


def handle_errors(application: typer.Typer, args: Sequence[str] | None = None) -> int:
    """Run the app and return its exit code; every error is mapped here and nowhere else.

    A usage error (a bad option, a missing argument) prints click's usage message and exits 2; a
    TvdbError prints one line on stderr and exits with its code; anything else is a bug (exit 70).
    With `--json` or `--format json`, each of them also prints one JSON object on stdout."""
    import os

    from tvdb.cli.output import SECRET_ENV_VARS, MaskingStream, register_secrets

    secrets: set[str] = set()
    register_secrets(secrets, (os.environ.get(name) for name in SECRET_ENV_VARS))
    saved = sys.stdout, sys.stderr
    sys.stdout, sys.stderr = MaskingStream(saved[0], secrets), MaskingStream(saved[1], secrets)
    try:
        return _run(application, list(sys.argv[1:] if args is None else args), secrets)
    finally:
        sys.stdout, sys.stderr = saved


class _Redacted(Exception):  # noqa: N818 — stands in for an unexpected exception in the JSON error object
    """An unexpected exception's type name and redacted message, for `error_json`."""

    def __init__(self, name: str, message: str) -> None:
        super().__init__(message)
        self.name = name


def _run(application: typer.Typer, argv: list[str], secrets: set[str]) -> int:
    as_json = wants_json(argv)
    try:
        rv = application(args=argv, prog_name="tvdb", standalone_mode=False, obj={"secrets": secrets})
        return rv if isinstance(rv, int) else 0
    except _CLICK_ERROR as exc:
        return _usage_error(argv, exc)
    except typer.Abort:
        return EXIT_INTERRUPTED
    except TvdbError as exc:
        code = exit_code_for(exc)
        if as_json and not getattr(exc, "reported_as_json", False):
            error_json(argv, exc, code)
        make_console(stderr=True).print(Text.assemble(("error:", "bold red"), " ", clean_lines(exc)), soft_wrap=True)
        return code
    except KeyboardInterrupt as exc:
        return exit_code_for(exc)
    except Exception as exc:
        if "--debug" in argv:
            raise
        from tvdb.redaction import redact

        # a bug's message may quote what it was handling (a URL with its token, a key): redact before printing
        message = redact(str(exc), secrets)
        if as_json:
            error_json(argv, _Redacted(type(exc).__name__, message), EXIT_INTERNAL)
        make_console(stderr=True).print(Text.assemble(
            ("internal error:", "bold red"), f" {type(exc).__name__}: {clean(message)}\n"
            "This is a bug in tvdb; rerun with --debug for the traceback and report it."), soft_wrap=True)
        return EXIT_INTERNAL
