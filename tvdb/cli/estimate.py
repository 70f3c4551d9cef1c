"""Rendering of `tvdb run --estimate`."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import TYPE_CHECKING

from rich.console import Console
from rich.table import Table

if TYPE_CHECKING:
    from tvdb.config import Settings
    from tvdb.scenarios.loader import LoadedScenario


def print_estimate(loaded: LoadedScenario, settings: Settings, *, as_json: bool) -> int:
    """Print the forecast; returns 0 when it fits every budget, 3 when it does not."""
    from tvdb.clock import SystemClock
    from tvdb.scenarios.estimate import estimate

    est = estimate(loaded, settings, SystemClock())
    if as_json:
        sys.stdout.write(json.dumps(est.as_json(), indent=2) + "\n")
        return 0 if est.fits else 3
    console = Console()
    docs = Table(title=f"Estimate for scenario {est.scenario} (nothing spent, nothing written)", title_justify="left")
    for col in ("document", "status", "pages", "chunks", "tokens"):
        docs.add_column(col, justify="left" if col in ("document", "status") else "right")
    base = loaded.path.parent
    for d in est.documents:
        name = str(Path(d.path).relative_to(base)) if Path(d.path).is_relative_to(base) else d.path
        docs.add_row(name, d.status if not d.error_code else f"failed: {d.error_code}", str(d.pages),
                     str(d.chunks), str(d.tokens))
    console.print(docs)
    by_stage = est.would_cost_nusd
    unknown = {"parse" if s == "llamaparse" else "embed" for s, _ in est.unpriced}

    def usd(stage: str) -> str:
        return "unknown" if stage in unknown else f"${by_stage[stage] / 1e9:.6f}"

    modes = ", ".join(f"{k} {v}" for k, v in est.modes.items())
    total = "unknown" if unknown else f"${sum(by_stage.values()) / 1e9:.6f}"
    console.print(
        f"The run would send {est.requests['parse']} parse and {est.requests['embed']} embedding requests "
        f"({modes}), worth {total} at live prices (parse {usd('parse')}, embed {usd('embed')}); "
        f"real spend ${est.forecast.total_usd:.6f}.",
        highlight=False,
    )
    for service, model in est.unpriced:
        blocked = any(service == s for s, _ in est.forecast.unpriced)
        console.print(f"[red]✗[/] no known price for {service} {model}"
                      + (": real calls would be refused" if blocked else " (mock: shown as unknown)"))
    budgets = Table(title="Budgets", title_justify="left")
    for col in ("budget", "window", "limit", "used", "reserved", "this run", "fits"):
        budgets.add_column(col)
    for c in est.forecast.checks:
        row = c.as_dict()
        money = row["unit"] == "usd"
        suffix = "_usd" if money else ""
        cells = [f"${row[k + suffix]:.6f}" if money else str(row[k])
                 for k in ("limit", "used", "reserved", "requested")]
        budgets.add_row(c.name, c.window, *cells, "[green]yes[/]" if c.fits else "[red]no[/]")
    console.print(budgets)
    if not est.forecast.total_nusd:
        console.print("[dim]No service runs in real mode, so this run spends nothing; "
                      "in real mode it would spend the amount above.[/]")
    return 0 if est.fits else 3
