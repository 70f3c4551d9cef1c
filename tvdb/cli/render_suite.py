"""How `tvdb replay --all` and `tvdb replay merge` look: the terminal table, progress lines, and the
Markdown summary for `$GITHUB_STEP_SUMMARY` or a pull-request comment. All from the suite JSON
object (`{"runs": [...], "totals": {...}}`), so merged shards render exactly like one machine's run."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from rich.console import Console
from rich.text import Text

from tvdb.cli.output import Col, Format, Kind, TableData, clean, data_lines, emit_table
from tvdb.money import format_usd
from tvdb.words import counted

_MARK = {"passed": ("✓", "green"), "failed": ("✗", "red"), "error": ("✗", "red"), "skipped": ("–", "yellow")}
_MD_MARK = {"passed": "✅ passed", "failed": "❌ failed", "error": "❌ error", "skipped": "⏭️ skipped"}


def _replay(entry: Mapping[str, Any]) -> Mapping[str, Any]:
    value = entry.get("replay")
    return value if isinstance(value, Mapping) else {}


def _expectations(entry: Mapping[str, Any]) -> str:
    items = entry.get("expectations") or []
    if entry.get("outcome") in ("skipped", "error") and not items:
        return "–"
    return f"{sum(1 for x in items if x.get('passed'))}/{len(items)}"


def progress_line(entry: Mapping[str, Any]) -> Text:
    """One line per finished scenario on stderr: `✓ passed  scenarios/x.yaml  3 calls  0.4 s`."""
    outcome = str(entry.get("outcome"))
    mark, style = _MARK.get(outcome, ("?", ""))
    calls = _replay(entry).get("replayed_calls", 0)
    return Text.assemble((f"{mark} {outcome:<7}", style), " ", clean(entry.get("scenario_path")),
                         f"  {counted(calls, 'call')}  {float(entry.get('duration_s') or 0):.2f} s")


def summary_line(totals: Mapping[str, Any]) -> str:
    parts = [f"{totals['passed']} passed", f"{totals['failed']} failed"]
    if totals.get("skipped"):
        parts.append(f"{totals['skipped']} skipped")
    if totals.get("errors"):
        parts.append(counted(totals["errors"], "error"))
    return (f"{counted(totals['scenarios'], 'scenario')}: " + ", ".join(parts)
            + f" · replayed {counted(totals['replayed_calls'], 'call')}, "
              f"avoided {format_usd(totals.get('avoided_usd'))}")


def render_suite(out: Console, doc: Mapping[str, Any], fmt: Format) -> None:
    """The table of scenarios, then what went wrong in each failed one and why each skipped one was
    skipped, then the totals line."""
    runs: Sequence[Mapping[str, Any]] = doc["runs"]
    cols = [Col("scenario", Kind.TEXT), Col("file", Kind.PATH, key="scenario_path"), Col("result", Kind.WORD),
            Col("expectations", Kind.NUM), Col("calls replayed", Kind.NUM, key="replayed_calls"),
            Col("avoided", Kind.MONEY, key="avoided_usd"), Col("time", Kind.NUM, key="duration_s")]
    rows: list[list[Any]] = [[clean(e.get("scenario") or "–"), clean(e.get("scenario_path")),
                              Text(str(e.get("outcome")), style=_MARK.get(str(e.get("outcome")), ("", ""))[1]),
                              _expectations(e), str(_replay(e).get("replayed_calls", 0)),
                              format_usd(_replay(e).get("avoided_usd")) if _replay(e) else "–",
                              f"{float(e.get('duration_s') or 0):.2f} s"] for e in runs]
    shard = f" · shard {doc['shard']}" if doc.get("shard") else ""
    emit_table(out, TableData(cols, rows, title=f"Replayed scenarios{shard}"), fmt, json_obj=doc)
    if fmt is Format.JSON:
        return
    for e in runs:
        if e.get("outcome") in ("failed", "error", "skipped") and e.get("message"):
            # a skip passes the suite, so without its reason a CI log hides a scenario nobody replays
            why = "skipped: " if e.get("outcome") == "skipped" else ""
            out.print(Text.assemble((f"{e.get('scenario_path')}:", "bold"), "\n  ",
                                    data_lines(why + str(e["message"]), indent="  ")), soft_wrap=True)
    totals = doc["totals"]
    code = int(totals["exit_code"])
    verdict = Text("PASSED", style="bold green") if code == 0 else Text("FAILED", style="bold red")
    out.print(Text.assemble(summary_line(totals), "\n", verdict, f"  (exit code {code})"), soft_wrap=True)
    if totals["scenarios"] and totals.get("skipped") == totals["scenarios"]:
        # every scenario skipped passes (as documented), but a CI log must not read as a replayed suite
        out.print(Text("warning: nothing was replayed: every scenario was skipped (see why above; "
                       "--require-cassettes makes a missing cassette an error)", style="yellow"), soft_wrap=True)


def _cell(text: object) -> str:
    """Markdown table cell: one line, pipes escaped, control characters shown as escapes."""
    return clean(text).replace("\\", "\\\\").replace("|", "\\|").replace("\n", " ")


def summary_markdown(doc: Mapping[str, Any]) -> str:
    """The Markdown summary: a heading with the verdict, a table (scenario, result, calls
    replayed, dollars avoided), a totals row, then each failure's text in a collapsed block."""
    runs: Sequence[Mapping[str, Any]] = doc["runs"]
    totals = doc["totals"]
    shard = f" (shard {doc['shard']})" if doc.get("shard") else ""
    verdict = "✅" if int(totals["exit_code"]) == 0 else "❌"
    lines = [f"## {verdict} tvdb replay{shard}: {totals['passed']} of {totals['scenarios']} scenarios passed", "",
             "| scenario | result | calls replayed | dollars avoided |", "|---|---|---:|---:|"]
    for e in runs:
        replay = _replay(e)
        result = _MD_MARK.get(str(e.get("outcome")), str(e.get("outcome")))
        if e.get("outcome") == "skipped":
            result += " (no cassette)"
        elif e.get("outcome") == "failed":
            result += f" ({_expectations(e)} expectations)"
        avoided = format_usd(replay.get("avoided_usd")) if replay else "–"
        lines.append(f"| `{_cell(e.get('scenario') or '–')}` ({_cell(e.get('scenario_path'))}) | {result} | "
                     f"{replay.get('replayed_calls', 0)} | {avoided} |")
    lines.append(f"| **total** | {_cell(summary_line(totals).split(': ', 1)[1].split(' · ')[0])} | "
                 f"**{totals['replayed_calls']}** | **{format_usd(totals.get('avoided_usd'))}** |")
    for e in runs:
        if e.get("outcome") in ("failed", "error") and e.get("message"):
            body = clean_block(str(e["message"]))
            lines += ["", f"<details><summary>{_html(e.get('scenario_path'))}: {e.get('outcome')}</summary>", "",
                      "```text", body, "```", "", "</details>"]
    return "\n".join(lines) + "\n"


def clean_block(text: str) -> str:
    """Multi-line text for a fenced block: control characters escaped, no fence that would close it."""
    return "\n".join(clean(line) for line in text.splitlines()).replace("```", "`\u200b``")


def _html(text: object) -> str:
    return clean(text).replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")
