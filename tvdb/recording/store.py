"""Reading and writing cassettes: vcrpy's format (version 1), safe YAML only, scrub + scan + atomic write.

Format (what vcrpy and pytest-recording load): `{version: 1, interactions: [{request, response}],
metadata}`. tvdb adds `metadata.tvdb` (scenario name and path, recorded_at, tvdb, SDK and price
versions, record mode) and a `tvdb` key per interaction (service, model, units, unit,
would_cost_usd, recorded_at) — extra keys vcrpy ignores.

Loading uses PyYAML's safe loader and nothing else: a `!!python/object…` (or any non-standard)
tag is refused with a CassetteError naming the file and line, and nothing is constructed or run.

`CassetteStore` is the vcrpy persister of a recording or replay session; every write vcrpy makes
(first record, `new_episodes` append, `all` re-save, pruning) ends in `save_cassette`, which
scrubs every interaction, scans the serialised text and refuses to write on a finding, then writes
atomically (a temporary file in the same directory, fsync, rename): a crash never leaves half a
cassette.
"""

from __future__ import annotations

import copy
import datetime as dt
import json
import os
import tempfile
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from tvdb.errors import CassetteError
from tvdb.recording.scan import scan_text
from tvdb.recording.scrub import Scrubber

_Loader: Any = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
_Dumper: Any = getattr(yaml, "CSafeDumper", yaml.SafeDumper)
FORMAT_VERSION = 1
Annotate = Callable[[Any, Mapping[str, Any]], dict[str, Any] | None]


@dataclass(frozen=True)
class CassetteFile:
    """A loaded cassette: the raw interaction dicts (request, response, optional tvdb) and metadata."""

    path: Path
    interactions: list[dict[str, Any]]
    metadata: dict[str, Any]

    @property
    def tvdb(self) -> dict[str, Any]:
        value = self.metadata.get("tvdb")
        return value if isinstance(value, dict) else {}


def _where(path: Path, exc: yaml.YAMLError) -> str:
    mark = getattr(exc, "problem_mark", None) or getattr(exc, "context_mark", None)
    return f"{path}:{mark.line + 1}" if mark is not None else str(path)


# A cassette holds every request and response of a run, PDFs included (base64), so it may be large;
# past this it is a mistake or an attack (a file grown to fill the disk), never a recording to load.
MAX_CASSETTE_BYTES = 256 * 1024 * 1024


def parse_cassette(text: str, path: Path) -> CassetteFile:
    """Parse cassette text with the safe loader and check its shape. Raises CassetteError for a
    hostile file (a non-standard tag, nesting past 64 levels, an alias bomb), invalid YAML (a
    truncated file) or a structure that is not vcrpy's (version 1, interactions of request and
    response)."""
    from tvdb.yamlfile import check_structure

    try:
        check_structure(text)  # before the loader builds anything: depth and alias expansion
    except yaml.YAMLError as exc:
        problem = getattr(exc, "problem", None) or str(exc).splitlines()[0]
        if type(exc) is yaml.MarkedYAMLError:  # the depth or alias check itself, not a syntax error
            raise CassetteError(f"{_where(path, exc)}: refused: {problem}. Delete the file and re-record.") from None
        raise CassetteError(f"{_where(path, exc)}: not valid YAML: {problem} (a truncated file?)") from None
    try:
        data = yaml.load(text, Loader=_Loader)
    except yaml.constructor.ConstructorError as exc:
        tag = getattr(exc, "problem", "") or ""
        raise CassetteError(
            f"{_where(path, exc)}: refused: {tag.strip() or 'a tag the safe loader does not allow'}; cassettes "
            "are loaded with safe YAML only (no !!python/… or other non-standard tags) and nothing in this one "
            "was constructed or run. Delete it and re-record."
        ) from None
    except yaml.YAMLError as exc:
        problem = getattr(exc, "problem", None) or str(exc).splitlines()[0]
        raise CassetteError(f"{_where(path, exc)}: not valid YAML: {problem}") from None
    if not isinstance(data, dict) or not isinstance(data.get("interactions"), list):
        raise CassetteError(f"{path}: not a vcrpy cassette (no `interactions` list)")
    if data.get("version", FORMAT_VERSION) != FORMAT_VERSION:
        raise CassetteError(f"{path}: cassette format version {data.get('version')!r}; tvdb reads version 1")
    for i, item in enumerate(data["interactions"]):
        request = item.get("request") if isinstance(item, dict) else None
        response = item.get("response") if isinstance(item, dict) else None
        if isinstance(response, dict) and "status_code" in response:
            item["response"] = response = _standard_layout(response)
        if not isinstance(request, dict) or not isinstance(response, dict) or \
                not {"method", "uri"} <= set(request) or not isinstance(response.get("status"), dict):
            raise CassetteError(f"{path}: interaction {i + 1} has no request (method, uri) and response (status)")
        if problem := _malformed(request, response):
            raise CassetteError(f"{path}: interaction {i + 1}: {problem}")
    metadata = data.get("metadata")
    return CassetteFile(path, data["interactions"], metadata if isinstance(metadata, dict) else {})


def _malformed(request: Mapping[str, Any], response: Mapping[str, Any]) -> str | None:
    """What is wrong with an interaction's fields, so replay never trips over them half way."""
    if not isinstance(request["method"], str) or not isinstance(request["uri"], str):
        return "the request's method and uri must be strings"
    code = response["status"].get("code")
    if not isinstance(code, int) or isinstance(code, bool) or not 100 <= code <= 599:
        return f"response status code {code!r} is not an HTTP status (100-599)"
    for where, part in (("request", request), ("response", response)):
        if not isinstance(part.get("headers", {}) or {}, dict):
            return f"the {where} headers are not a mapping"
    body = response.get("body", {})
    if body is not None and not isinstance(body, dict):
        return "the response body is not a mapping (vcrpy writes {string: …})"
    return None


def _standard_layout(response: Mapping[str, Any]) -> dict[str, Any]:
    """A response in the layout old vcrpy-httpx wrote (status_code, content) in today's layout."""
    return {"status": {"code": response.get("status_code"), "message": response.get("reason_phrase") or ""},
            "headers": response.get("headers") or {}, "body": {"string": response.get("content") or ""}}


def read_cassette(path: Path) -> CassetteFile:
    """Load `path` safely. Raises CassetteError (missing, unreadable, hostile or malformed)."""
    from tvdb.files import FileTooLarge, NotARegularFile, read_regular_file

    try:
        text = read_regular_file(path, MAX_CASSETTE_BYTES).decode("utf-8")
    except FileNotFoundError:
        raise CassetteError(f"{path}: no such cassette") from None
    except FileTooLarge as exc:
        raise CassetteError(f"{path}: refused: {exc.size:,} bytes is over the {MAX_CASSETTE_BYTES // 2**20} MiB "
                            "a cassette may hold") from None
    except NotARegularFile as exc:
        raise CassetteError(f"{path}: not a cassette file: it {exc}") from None
    except UnicodeDecodeError:
        raise CassetteError(f"{path}: not UTF-8 text, so not a YAML cassette") from None
    except OSError as exc:
        raise CassetteError(f"{path}: cannot be read: {exc.strerror or exc}") from None
    return parse_cassette(text, path)


def _unicode(body: Any) -> Any:
    if isinstance(body, bytes):
        try:
            return body.decode("utf-8")
        except UnicodeDecodeError:
            return body  # stays bytes: YAML !!binary (a PDF upload, contracts.md §3.6)
    return body


def to_vcr(item: Mapping[str, Any]) -> tuple[Any, dict[str, Any]]:
    """One interaction dict as vcrpy's (Request, response); the tvdb annotation rides on the response."""
    from vcr.request import Request

    raw = item["request"]
    request = Request(raw["method"], raw["uri"], raw.get("body"), raw.get("headers") or {})
    response = copy.deepcopy(dict(item["response"]))
    response["status"] = {"message": "", **response["status"]}  # vcrpy < 8.2 stored no reason phrase
    body = response.get("body")
    if isinstance(body, dict) and isinstance(body.get("string"), str):
        body["string"] = body["string"].encode("utf-8")
    elif not isinstance(body, dict):
        response["body"] = {"string": body.encode() if isinstance(body, str) else (body or b"")}
    if isinstance(item.get("tvdb"), dict):
        response["tvdb"] = dict(item["tvdb"])
    return request, response


def serialize(requests: Iterable[Any], responses: Iterable[Mapping[str, Any]], metadata: Mapping[str, Any]) -> str:
    """vcrpy's format as YAML text (bodies that are not UTF-8 stay bytes: !!binary)."""
    interactions = []
    for request, response in zip(requests, responses, strict=True):
        resp = dict(response)
        note = resp.pop("tvdb", None)
        body = resp.get("body")
        if isinstance(body, dict):
            resp["body"] = {**body, "string": _unicode(body.get("string"))}
        req = request._to_dict()
        req["body"] = _unicode(req["body"])
        item: dict[str, Any] = {"request": req, "response": resp}
        if note:
            item["tvdb"] = note
        interactions.append(item)
    data: dict[str, Any] = {"version": FORMAT_VERSION, "interactions": interactions}
    if metadata:
        data["metadata"] = dict(metadata)
    try:
        text: str = yaml.dump(data, Dumper=_Dumper, allow_unicode=True)
    except yaml.representer.RepresenterError as exc:
        raise CassetteError(f"cassette not saved: it holds a value YAML cannot store safely ({exc})") from None
    return text


def write_atomically(path: Path, text: str) -> None:
    """Replace `path` with `text` in one rename; the old file stays whole until then."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            f.write(text)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


class CassetteStore:
    """The vcrpy persister for one session (`persister=` of `use_cassette`).

    `secrets` are the configured keys (scrubbed and scanned for); `metadata` becomes
    `metadata.tvdb`; `annotate(request, response)` gives a new interaction's `tvdb` note;
    `fresh` ignores an existing file (a `--record` run replaces it); `now` stamps new interactions.
    """

    def __init__(self, *, secrets: Iterable[str | None] = (), metadata: Mapping[str, Any] | None = None,
                 annotate: Annotate | None = None, fresh: bool = False,
                 now: Callable[[], dt.datetime] = lambda: dt.datetime.now(dt.UTC)) -> None:
        self.secrets = tuple(s for s in secrets if s)
        self.scrubber = Scrubber(self.secrets)
        self.metadata = dict(metadata or {})
        self.annotate = annotate
        self.fresh = fresh
        self.now = now
        self.loaded: CassetteFile | None = None
        self.rerecord_hint: str | None = None  # how to re-record, for miss messages
        self.match_filter = self.scrubber.match_request  # what the cassette runs on each request
        self.saves = 0

    def load_cassette(self, cassette_path: str | Path, serializer: Any = None) -> tuple[Any, ...]:
        from vcr.persisters.filesystem import CassetteNotFoundError

        path = Path(cassette_path)
        if self.fresh or not path.is_file() or not path.read_bytes().strip():
            raise CassetteNotFoundError()
        self.loaded = read_cassette(path)
        pairs = [to_vcr(item) for item in self.loaded.interactions]
        requests = [p[0] for p in pairs]
        responses = [p[1] for p in pairs]
        return (requests, responses, self.loaded.metadata) if self.loaded.metadata else (requests, responses)

    def save_cassette(self, cassette_path: str | Path, cassette_dict: Mapping[str, Any],
                      serializer: Any = None) -> None:
        """Scrub, annotate, serialise, scan, write atomically. Raises CassetteError on a finding."""
        path = Path(cassette_path)
        stamp = self.now().astimezone(dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
        requests, responses = [], []
        for request, response in zip(cassette_dict["requests"], cassette_dict["responses"], strict=True):
            request = self.scrubber.request(copy.deepcopy(request))
            response = self.scrubber.response(copy.deepcopy(dict(response)))
            if "tvdb" not in response and self.annotate is not None:
                note = self.annotate(request, response)
                if note is not None:
                    response["tvdb"] = {**note, "recorded_at": stamp}
            requests.append(request)
            responses.append(response)
        metadata = dict(cassette_dict.get("metadata") or {})
        if self.metadata:
            metadata["tvdb"] = {**self.metadata, "recorded_at": stamp}
        text = serialize(requests, responses, metadata)
        findings = scan_text(text, str(path), self.secrets)
        if findings:
            shown = "\n  ".join(str(f) for f in findings[:5])
            raise CassetteError(
                f"cassette {path} not written: the secret scan found {len(findings)} key-shaped "
                f"string(s) after scrubbing:\n  {shown}\nNothing was written; the old cassette (if any) "
                "is unchanged. Add the secret to the configured keys or report the header/field it came in."
            )
        write_atomically(path, text)
        self.saves += 1


def json_body(body: Any) -> Any:
    """A JSON body as Python, or None when it is not JSON."""
    if isinstance(body, bytes | bytearray):
        try:
            body = bytes(body).decode("utf-8")
        except UnicodeDecodeError:
            return None
    if not isinstance(body, str) or not body.strip():
        return None
    try:
        return json.loads(body)
    except ValueError:
        return None


def decode_body(response: dict[str, Any]) -> dict[str, Any]:
    """Store the body as the client read it: gzip/deflate decoded, `content-encoding` removed and
    `content-length` made true (CASES C01/C02). A header that lies about an already-plain body is
    dropped rather than trusted; an encoding we cannot decode (zstd) is left as recorded."""
    import gzip
    import zlib

    headers = dict(response.get("headers") or {})
    name = next((k for k in headers if k.lower() == "content-encoding"), None)
    body = response.get("body")
    if name is None or not isinstance(body, dict):
        return response
    values = headers[name] if isinstance(headers[name], list) else [headers[name]]
    encoding = str(values[0]).strip().lower() if values else ""
    raw = body.get("string") or b""
    raw = raw.encode("utf-8") if isinstance(raw, str) else bytes(raw)
    if encoding not in ("gzip", "x-gzip", "deflate", "identity", ""):
        return response
    decoded = raw
    try:
        if encoding in ("gzip", "x-gzip"):
            decoded = gzip.decompress(raw)
        elif encoding == "deflate":
            try:
                decoded = zlib.decompress(raw)
            except zlib.error:
                decoded = zlib.decompress(raw, -zlib.MAX_WBITS)
    except (OSError, EOFError, zlib.error):
        decoded = raw  # the header lies: the body is already plain
    del headers[name]
    for k in [k for k in headers if k.lower() == "content-length"]:
        headers[k] = [str(len(decoded))]
    return {**response, "headers": headers, "body": {**body, "string": decoded}}
