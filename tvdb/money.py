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
