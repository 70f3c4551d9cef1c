"""How money reads in every message: as many decimals as the amount needs, never a misleading $0.00.

A leaf module (no tvdb imports), so errors, the ledger, alerts and the CLI format amounts the same way.
"""

from __future__ import annotations


def format_usd(value: float | None) -> str:
    """`$1.2345`, `$0.50`, `$0.00002`, `$0`; None → `unknown` (a missing price is never shown as $0).

    Amounts below $1 keep every significant digit down to the nano-dollar the ledger stores, so a
    $0.00002 budget never prints as `$0.00`; amounts from $1 keep four decimals (at least two).
    """
    if value is None:
        return "unknown"
    if value == 0:
        return "$0"
    sign = "-" if value < 0 else ""
    text = f"{abs(value):,.9f}".rstrip("0")
    if text == "0.":  # below the ledger's nano-dollar, yet not zero: still never `$0.00`
        from decimal import Decimal

        return f"{sign}${Decimal(f'{abs(value):.3g}'):f}"
    whole, _, frac = text.partition(".")
    if abs(value) >= 1:
        frac = frac[:4]
    return f"{sign}${whole}.{frac.ljust(2, '0')}"


def format_usd_pair(a: float | None, b: float | None) -> tuple[str, str]:
    """Two amounts side by side (`A → B`): as `format_usd`, with more decimals (down to the ledger's
    nano-dollar) when that would print two different amounts the same, e.g. $1.23456 and $1.23459."""
    first, second = format_usd(a), format_usd(b)
    if first != second or a is None or b is None or a == b:
        return first, second
    for places in range(5, 10):
        first, second = _fixed(a, places), _fixed(b, places)
        if first != second:
            break
    return first, second


def _fixed(value: float, places: int) -> str:
    return f"{'-' if value < 0 else ''}${abs(value):,.{places}f}"
