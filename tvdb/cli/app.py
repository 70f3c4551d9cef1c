"""The Typer application, its global options, and the one mapping from errors to exit codes."""

from __future__ import annotations

import logging
import sys
from pathlib import Path
from typing import Annotated

import typer
from rich.markup import escape

from tvdb.errors import EXIT_INTERNAL, TvdbError, exit_code_for

app = typer.Typer(
    name="tvdb",
    help=(
        "Test document-ingestion pipelines (LlamaParse → chunk → OpenAI embeddings → vectors) "
        "in mock, real or hybrid mode, with cassettes and a cost ledger.\n\n"
        "Start with: tvdb run scenarios/quickstart.yaml"
    ),
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    rich_markup_mode="rich",
    context_settings={"help_option_names": ["-h", "--help"]},
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
    version: Annotated[
        bool, typer.Option("--version", callback=_version, is_eager=True, help="Print the version and exit.")
    ] = False,
) -> None:
    ctx.obj = {"config": config, "data_dir": data_dir, "debug": debug}
    if debug:
        logging.basicConfig(level=logging.DEBUG)


def handle_errors(application: typer.Typer) -> int:
    """Run the app; a TvdbError becomes a one-line message on stderr and its exit code.

    Typer's standalone mode already turns usage errors into exit 2 with a message, and
    `typer.Exit(code)` into that code; only our own errors need mapping, here and nowhere else.
    """
    try:
        application(standalone_mode=True)
    except TvdbError as exc:
        from rich.console import Console

        Console(stderr=True, highlight=False).print(f"[bold red]error:[/] {escape(str(exc))}", soft_wrap=True)
        return exit_code_for(exc)
    except KeyboardInterrupt as exc:
        return exit_code_for(exc)
    except SystemExit as exc:
        return exc.code if isinstance(exc.code, int) else (0 if exc.code is None else 1)
    except Exception as exc:
        if "--debug" in sys.argv:
            raise
        from rich.console import Console

        Console(stderr=True, highlight=False).print(
            f"[bold red]internal error:[/] {escape(type(exc).__name__)}: {escape(str(exc))}\n"
            "This is a bug in tvdb; rerun with --debug for the traceback and report it.", soft_wrap=True)
        return EXIT_INTERNAL
    return 0


from tvdb.cli import alerts, cassette, cost, emulate, run  # noqa: E402  (registers the commands)

app.add_typer(cost.app, name="cost")
app.add_typer(alerts.app, name="alerts")
for _module in (run, emulate, cassette):
    _module.register(app)
