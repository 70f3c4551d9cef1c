"""JUnit XML for `tvdb replay --all --junit` and `tvdb replay merge`, in the shape CI tools read
(Jenkins' JUnit/xUnit plugins, GitLab, GitHub test-report actions, pytest's xunit2 family):

    <testsuites name tests failures errors time>
      <testsuite name tests failures errors skipped time timestamp hostname id package>
        <properties><property name value/>…</properties>
        <testcase classname name time>                 one per scenario
          <failure message type>text</failure> | <error …> | <skipped message/>
          <system-out>replayed N calls …</system-out>
        </testcase>
        <testcase classname name="SCENARIO :: EXPECTATION" time="0">   one per expectation
      </testsuite>
    </testsuites>

`classname` is the scenario file's path with dots (`scenarios.nightly`), so the tools group a
scenario with its expectations. A failure's text carries the miss diff of every failed document.
Text is made XML-safe (control characters become `\\xNN`), as a CI log shows it.
"""

from __future__ import annotations

import datetime as dt
import re
import xml.etree.ElementTree as ET
from collections.abc import Mapping, Sequence
from typing import Any

from tvdb.errors import ConfigError

SUITE_NAME = "tvdb replay"
_XML_ILLEGAL = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\x7f\ufffe\uffff]")
_COUNTS = ("tests", "failures", "errors", "skipped")


def _safe(text: object) -> str:
    return _XML_ILLEGAL.sub(lambda m: f"\\x{ord(m.group()):02x}", str(text))


def _first_line(text: str, limit: int = 300) -> str:
    line = text.strip().splitlines()[0] if text.strip() else ""
    return line if len(line) <= limit else line[:limit - 1] + "…"


def classname(scenario_path: str) -> str:
    """`scenarios/nightly.yaml` → `scenarios.nightly`."""
    stem = re.sub(r"\.ya?ml$", "", scenario_path.replace("\\", "/"))
    return ".".join(part for part in stem.split("/") if part not in ("", ".", "..")) or "scenario"


def _document_errors(entry: Mapping[str, Any]) -> list[str]:
    from pathlib import Path

    from tvdb.scenarios.replay import document_errors

    failed = [(str(d.get("path")), f"{d.get('error_code')}: {d.get('error_message') or ''}".rstrip(": "))
              for d in entry.get("documents") or [] if d.get("status") == "failed"]
    return document_errors(failed, Path(str(entry.get("scenario_path") or ".")).parent)


def _testcase(parent: ET.Element, cls: str, name: str, seconds: float) -> ET.Element:
    return ET.SubElement(parent, "testcase", {"classname": _safe(cls), "name": _safe(name),
                                              "time": f"{max(seconds, 0.0):.3f}"})


def _outcome(case: ET.Element, kind: str, message: str, text: str, type_: str) -> None:
    element = ET.SubElement(case, kind, {"message": _safe(_first_line(message)), "type": type_})
    element.text = _safe(text)


def _scenario_cases(suite: ET.Element, entry: Mapping[str, Any]) -> dict[str, int]:
    from tvdb.money import format_usd

    cls = classname(str(entry.get("scenario_path") or entry.get("scenario") or ""))
    name = str(entry.get("scenario") or cls)
    outcome = entry.get("outcome")
    message = str(entry.get("message") or "")
    counts = {"tests": 1, "failures": 0, "errors": 0, "skipped": 0}
    case = _testcase(suite, cls, name, float(entry.get("duration_s") or 0))
    expectations = entry.get("expectations") or []
    if outcome == "skipped":
        ET.SubElement(case, "skipped", {"message": _safe(_first_line(message))})
        counts["skipped"] = 1
    elif outcome == "error":
        _outcome(case, "error", message, message, "tvdb.error")
        counts["errors"] = 1
    elif outcome == "failed":
        failed = sum(1 for x in expectations if not x.get("passed"))
        _outcome(case, "failure", f"{failed} of {len(expectations)} expectations failed", message,
                 "tvdb.expectation")
        counts["failures"] = 1
    replay = entry.get("replay")
    if isinstance(replay, Mapping):
        out = ET.SubElement(case, "system-out")
        out.text = _safe(f"replayed {replay.get('replayed_calls', 0)} calls, avoided "
                         f"{format_usd(replay.get('avoided_usd'))} · from {replay.get('cassette')}")
    documents = _document_errors(entry)
    for x in expectations:
        sub = _testcase(suite, cls, f"{name} :: {x.get('description')}", 0.0)
        counts["tests"] += 1
        if not x.get("passed"):
            detail = str(x.get("detail") or "")
            extra = [d for d in documents if d.split(" failed: ", 1)[-1] not in detail]  # not said twice
            _outcome(sub, "failure", detail or str(x.get("description")),
                     "\n".join([detail, *extra]).strip(), "tvdb.expectation")
            counts["failures"] += 1
    return counts


def junit_xml(entries: Sequence[Mapping[str, Any]], *, now: dt.datetime, hostname: str,
              properties: Mapping[str, str] | None = None, suite_name: str = SUITE_NAME) -> bytes:
    """The JUnit document of `tvdb replay --all --json` run entries (one testsuite)."""
    root = ET.Element("testsuites", {"name": SUITE_NAME})
    suite = ET.SubElement(root, "testsuite", {"name": _safe(suite_name)})
    if properties:
        props = ET.SubElement(suite, "properties")
        for key, value in properties.items():
            ET.SubElement(props, "property", {"name": _safe(key), "value": _safe(value)})
    counts = dict.fromkeys(_COUNTS, 0)
    for entry in entries:
        for field, n in _scenario_cases(suite, entry).items():
            counts[field] += n
    seconds = sum(float(e.get("duration_s") or 0) for e in entries)
    suite.attrib.update({k: str(v) for k, v in counts.items()})
    suite.attrib.update(time=f"{seconds:.3f}", timestamp=now.astimezone(dt.UTC).strftime("%Y-%m-%dT%H:%M:%S"),
                        hostname=_safe(hostname) or "localhost", id="0", package="tvdb")
    _total(root)
    return _serialize(root)


def _total(root: ET.Element) -> None:
    suites = root.findall("testsuite")
    for key in ("tests", "failures", "errors"):
        root.set(key, str(sum(int(s.get(key) or 0) for s in suites)))
    root.set("time", f"{sum(float(s.get('time') or 0) for s in suites):.3f}")


def _serialize(root: ET.Element) -> bytes:
    ET.indent(root)
    return bytes(ET.tostring(root, encoding="utf-8", xml_declaration=True)) + b"\n"


def parse_junit(data: bytes, source: str) -> ET.Element:
    """A JUnit document's root as `testsuites` (a bare `testsuite` root is wrapped). Raises ConfigError."""
    try:
        root = ET.fromstring(data)
    except ET.ParseError as exc:
        raise ConfigError(f"{source}: not a JUnit XML file ({exc})") from None
    if root.tag == "testsuite":
        wrapper = ET.Element("testsuites", {"name": SUITE_NAME})
        wrapper.append(root)
        root = wrapper
    if root.tag != "testsuites":
        raise ConfigError(f"{source}: not a JUnit XML file (its root is <{root.tag}>, not <testsuites>)")
    return root


def merge_junit(documents: Sequence[tuple[str, bytes]]) -> bytes:
    """One JUnit document holding every shard's testsuites (ids renumbered, totals added up).

    Raises ConfigError for a file that is not JUnit XML, or when two files hold the same testcase
    (the shards overlap: they were not run with the same `I/N` split of the same scenarios)."""
    root = ET.Element("testsuites", {"name": SUITE_NAME})
    seen: dict[tuple[str, str], str] = {}
    for source, data in documents:
        suites = parse_junit(data, source).findall("testsuite")
        mine = {(c.get("classname") or "", c.get("name") or "") for s in suites for c in s.findall("testcase")}
        for key in sorted(mine & seen.keys()):
            raise ConfigError(f"{source} and {seen[key]} both hold testcase {key[0]}.{key[1]!r}: "
                              "the shards overlap (run every shard with the same N and scenarios)")
        seen.update(dict.fromkeys(mine, source))
        for suite in suites:
            suite.set("id", str(len(root.findall("testsuite"))))
            root.append(suite)
    _total(root)
    return _serialize(root)
