"""Recording and replaying a run: which cassette, which record mode, the vcrpy configuration.

    record (--record)        vcrpy "all" on an empty cassette: the run's traffic replaces the file
    --record-mode once       vcrpy's meaning: record if the cassette does not exist, else replay only
    --record-mode new_episodes   replay what is recorded, record (append) what is not
    --record-mode all        re-record everything, keep recorded interactions the run did not make
    --record-mode none / replay  answer from the cassette only; the network is blocked

vcrpy (≥ 9, contracts.md §3) intercepts httpx2's transports, so the real clients' code path runs
unchanged. Bodies are decoded before saving; secrets are scrubbed on every request vcrpy records
or matches and again on every write (tvdb.recording.store).
"""

from __future__ import annotations

import datetime as dt
import functools
import os
import socket
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

from tvdb.errors import CassetteError, ConfigError
from tvdb.recording.info import Annotator
from tvdb.recording.store import CassetteStore, decode_body

if TYPE_CHECKING:
    from tvdb.config import Settings
    from tvdb.ledger.prices import PriceTable

RecordMode = Literal["once", "new_episodes", "all", "none"]
RECORD_MODES: tuple[RecordMode, ...] = ("once", "new_episodes", "all", "none")


@dataclass(frozen=True)
class Tape:
    """How a run uses a cassette. `fresh`: start empty and replace the file (`--record`).
    `replay`: answer from the cassette only, with the network blocked. `recorded`: the cassette's
    `metadata.tvdb` (None: not read yet; see `with_recorded`)."""

    path: Path
    record_mode: RecordMode
    fresh: bool = False
    scenario: str | None = None
    scenario_path: str | None = None
    recorded: Mapping[str, Any] | None = None
    existing: tuple[int, int] | None = None  # the file a recording found (inode, mtime): see `file_identity`

    @property
    def replay(self) -> bool:
        return self.record_mode == "none"

    def as_json(self) -> dict[str, Any]:
        return {"cassette": str(self.path), "record_mode": "fresh" if self.fresh else self.record_mode}


def cassette_path(settings: Settings, scenario_name: str, cassette: Path | None = None) -> Path:
    """`--cassette PATH`, else `<recording.cassette_dir>/<scenario name>.yaml` (default ./cassettes)."""
    if cassette is not None:
        return cassette
    from tvdb.redaction import has_key

    if has_key(scenario_name) or any(s in scenario_name for s in configured_secrets(settings) if len(s) >= 8):
        # the file name would carry the key into the cassette folder (often a repository) and the run's rows
        raise ConfigError("the scenario's name holds a key (it is shown masked), and a cassette is named "
                          "after the scenario: rename the scenario, or pass --cassette PATH")
    return Path(settings.recording.cassette_dir) / f"{scenario_name}.yaml"


def configured_secrets(settings: Settings) -> list[str]:
    """Every secret tvdb knows of: API keys, the signing secrets (object store, webhooks), alert
    channel credentials."""
    values: list[Any] = [settings.openai_api_key, settings.llama_cloud_api_key, settings.signing_secret,
                         settings.llama_cloud_webhook_secret, settings.alerts.slack_webhook_url,
                         settings.alerts.smtp.password, settings.database_url]
    out = [v.get_secret_value() for v in values if v is not None]
    if settings.database_url is not None:  # the password of the PostgreSQL URL, also on its own
        from urllib.parse import unquote, urlsplit

        password = urlsplit(settings.database_url.get_secret_value()).password
        # URLs are masked whole (user-info); a bare password is masked too unless so short that
        # masking it would garble every message (it still never appears inside a URL)
        out += [p for p in {password, unquote(password)} if len(p) >= 4] if password else []
    return [s for s in out if s]


def versions() -> dict[str, str]:
    """tvdb's and the SDKs' versions, for the cassette metadata."""
    from importlib.metadata import PackageNotFoundError, version

    from tvdb import __version__

    out = {"tvdb": __version__}
    for name in ("openai", "httpx2", "vcrpy", "llama-cloud"):
        try:
            out[name] = version(name)
        except PackageNotFoundError:
            continue
    return out


def command_path(path: Path) -> str:
    """`path` as a user would type it in a command: relative to the working directory when it is
    inside it or one folder up, else absolute (`../../../tmp/s.yaml` is a puzzle, `/tmp/s.yaml` is not)."""
    relative = os.path.relpath(path)
    return relative if relative.split(os.sep).count(os.pardir) <= 1 else str(path)


def recorded_modes(metadata: Mapping[str, Any] | None) -> tuple[str | None, dict[str, str]]:
    """The mode and the per-service modes (`{"parser": "mock", "embedder": "real"}`) a recording ran
    with, from its `metadata.tvdb`; (None, {}) for a cassette recorded before tvdb stored them. Values
    that are not a known service and mode are ignored (a cassette is data, not configuration)."""
    from tvdb.domain import Mode

    modes = {str(m) for m in Mode}
    meta = metadata or {}
    mode = meta.get("mode")
    raw = meta.get("services")
    services = {str(role): str(value) for role, value in raw.items()
                if role in ("parser", "embedder") and isinstance(value, str) and value in modes
                } if isinstance(raw, Mapping) else {}
    return (mode if isinstance(mode, str) and mode in modes else None), services


def file_identity(path: Path) -> tuple[int, int] | None:
    """(inode, mtime in ns) of the regular file at `path`, or None: a cassette is written by an atomic
    rename, so a rewritten one has another identity."""
    try:
        st = path.stat()
    except OSError:
        return None
    import stat

    return (st.st_ino, st.st_mtime_ns) if stat.S_ISREG(st.st_mode) else None


def unwritable_cassette(path: Path, scenario: str) -> str | None:
    """Why a recording could not be saved at `path` (the cassette is written to a temporary file and
    renamed over it), or None: a directory, a FIFO or device, a dangling or looping symlink (the
    rename would replace the link, not write where it points), or a folder that is a file."""
    if path.is_symlink() and not path.exists():
        return "it is a symlink to nothing (dangling, or a loop): give the path of a file"
    if path.is_dir():
        return f"it is a directory: name a file in it, e.g. --cassette {path / (scenario + '.yaml')}"
    if path.exists() and not path.is_file():
        return "it is not a regular file (a FIFO, a socket or a device): give the path of a file"
    folder = next((p for p in path.parents if p.exists()), None)
    if folder is not None and not folder.is_dir():
        return f"{folder} is a file, not a folder"
    return None


def not_written_reason(tape: Tape, sent: int) -> str:
    """Why a recording run left its cassette file as it was, and what to do about it."""
    from tvdb.words import counted

    if sent:
        return (f"the run's {counted(sent, 'call')} got no answer to record (each failed before the service "
                f"replied: see the failed documents), so no cassette was written to {tape.path}; fix what "
                "stopped them and record again")
    if tape.existing is not None:
        return f"the run sent no request to record, so {tape.path} is unchanged"
    return f"the run sent no request, so no cassette was written to {tape.path}"


def with_recorded(tape: Tape) -> Tape:
    """`tape` with its cassette's `metadata.tvdb` read, for a replay (a tape that has it is returned
    as is). A cassette that is missing or cannot be read gets {}: the replay then refuses it by name."""
    if not tape.replay or tape.recorded is not None:
        return tape
    from tvdb.recording.store import read_cassette

    try:
        metadata: Mapping[str, Any] = read_cassette(tape.path).tvdb if os.path.lexists(tape.path) else {}
    except CassetteError:
        metadata = {}
    return replace(tape, recorded=metadata)


def replay_settings(settings: Settings, tape: Tape | None = None) -> Settings:
    """The settings a replay runs with: a `mode: mock` scenario (the default, so that it runs offline)
    replays in real mode, since the cassette holds what a `--mode real --record` run of it sent — in
    mock mode nothing would ask the cassette and a replay would pass on zero calls. A service the
    scenario itself sets to mock (`services:`) stays mock, and so does a service the recording ran as
    mock (`--service parser=mock`, stored in the cassette's metadata): the cassette holds no traffic of it."""
    from tvdb.domain import Mode

    _, recorded = recorded_modes(tape.recorded if tape is not None else None)
    mocked = sorted(role for role, mode in recorded.items() if mode == "mock")
    if tape is not None and mocked == ["embedder", "parser"]:
        # a recording needs a real service (a mock-only run records nothing): an edited cassette,
        # which would replay nothing and pass
        raise CassetteError(f"{tape.path}: its metadata says every service was mock when it was recorded, "
                            "which no recording is (a mock-only run records nothing); the file was edited: "
                            "restore it or record it again")
    origins = {k: v for k in ("mode", "services.parser", "services.embedder") if (v := settings.origin_of(k))}
    update: dict[str, Any] = {}
    if mocked:
        update["services"] = settings.services.model_copy(update=dict.fromkeys(mocked, Mode.MOCK))
        origins.update({f"services.{role}": f"set by the cassette: {role} was mock when it was recorded"
                        for role in mocked})
    if settings.mode is Mode.MOCK:
        update["mode"] = Mode.REAL
        origins["mode"] = "set by tvdb replay"  # the table adds "(answered from the cassette)"
    if not update:
        return settings
    return settings.model_copy(update=update).with_origins(origins)


def record_hint(scenario: str | None, cassette: Path | None = None, *, verb: str = "record one",
                mode: str | None = None, services: Mapping[str, str] | None = None) -> str:
    """How to (re-)record: a command that works as written. A scenario records with `--mode real`
    (`--record` refuses a mock run, and most scenarios say `mode: mock`) or the recording's own `mode`,
    a `--service ROLE=MODE` for each service that ran in another mode than that (a service recorded
    as mock must stay mock: a re-record without it would spend real money on it), `--cassette` when
    the file is not the default one; without a scenario (a session, the pytest fixture) the session's
    record mode."""
    if scenario is None:
        return (f"{verb} with tvdb.session(mode=\"record\", cassette=...) or, under pytest, --tvdb-record "
                "(real mode: it spends money once)")
    import shlex

    chosen = mode if mode in ("real", "hybrid", "mock") else "real"
    flags = "".join(f" --service {role}={m}" for role, m in sorted((services or {}).items()) if m != chosen)
    extra = f" --cassette {shlex.quote(command_path(cassette))}" if cassette is not None else ""
    return (f"{verb} with `tvdb run {shlex.quote(scenario)} --mode {chosen}{flags} --record{extra}` "
            "(real mode: it spends money once)")


def _scenario_command(tape: Tape) -> str | None:
    """The tape's scenario file as a command argument; None for a session's tape."""
    if not tape.scenario_path:
        return None
    return command_path(Path(os.path.normpath(tape.path.parent.resolve() / tape.scenario_path)))


def run_modes(settings: Settings) -> tuple[str, dict[str, str]]:
    """The mode and each service's resolved mode of a run (what a cassette's metadata stores)."""
    from tvdb.services.modes import ROLES, service_mode

    return str(settings.mode), {role: str(service_mode(settings, role)[0]) for role in ROLES}


def _store(tape: Tape, settings: Settings, prices: PriceTable, now: Callable[[], dt.datetime]) -> CassetteStore:
    mode, services = run_modes(settings)
    metadata: dict[str, Any] = {
        "scenario": tape.scenario, "scenario_path": tape.scenario_path, "versions": versions(),
        "price_version": prices.versions[-1], "record_mode": tape.as_json()["record_mode"],
        "mode": mode, "services": services,  # a replay keeps a service recorded as mock mock
    }
    store = CassetteStore(secrets=configured_secrets(settings), metadata=metadata, fresh=tape.fresh,
                          annotate=Annotator(prices, lambda: now().date()), now=now)
    where = _scenario_command(tape)
    custom = tape.path.name != f"{tape.scenario}.yaml"  # the default file is <cassette_dir>/<scenario>.yaml
    if tape.replay:  # re-record as the cassette was recorded; an old cassette that does not say: --mode real
        recorded_mode, recorded = recorded_modes(tape.recorded)
        mode, services = (recorded_mode or "real", recorded) if recorded else ("real", {})
    store.rerecord_hint = record_hint(where, tape.path if custom else None, verb="re-record it", mode=mode,
                                      services=services)
    return store


@contextmanager
def network_blocked() -> Iterator[None]:
    """No outgoing IP connection while a replay runs: an unrecorded request is an error, never a call."""
    real_connect, real_connect_ex = socket.socket.connect, socket.socket.connect_ex

    def refuse(self: socket.socket, address: Any) -> Any:
        if self.family == socket.AF_UNIX:
            return real_connect(self, address)
        raise CassetteError(f"replay: the network is blocked; a request tried to connect to {address!r} "
                            "outside the cassette")

    socket.socket.connect = refuse  # type: ignore[method-assign,assignment]
    socket.socket.connect_ex = refuse  # type: ignore[method-assign,assignment]
    try:
        yield
    finally:
        socket.socket.connect = real_connect  # type: ignore[method-assign]
        socket.socket.connect_ex = real_connect_ex  # type: ignore[method-assign]


@contextmanager
def use_tape(tape: Tape, settings: Settings, prices: PriceTable,
             now: Callable[[], dt.datetime] = lambda: dt.datetime.now(dt.UTC)) -> Iterator[Any]:
    """Record or replay every httpx2 request made inside the block; yields the IndexedCassette.

    Raises CassetteError when a replay's cassette is missing, hostile or malformed, or when a write
    would store a key-shaped string. An interrupted or failed block writes nothing."""
    import vcr

    from tvdb.recording.cassette import IndexedCassette

    if tape.replay and not os.path.lexists(tape.path):  # not a file there: refused by the store, by name
        raise CassetteError(f"{tape.path}: no such cassette; {record_hint(_scenario_command(tape))}")
    store = _store(tape, settings, prices, now)
    scrub = store.scrubber
    recorder = vcr.VCR(
        record_mode="all" if tape.fresh else tape.record_mode, match_on=(),
        before_record_response=[decode_body, scrub.response],  # requests: store.match_filter
        record_on_exception=False,
    )
    config = functools.partial(recorder.get_merged_config, path=str(tape.path), persister=store)
    with IndexedCassette.use_arg_getter(config) as cassette:
        if tape.replay:
            with network_blocked():
                yield cassette
        else:
            yield cassette
