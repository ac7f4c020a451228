"""The two tables every benchmark prints: cases (median and quartiles) and per-round ratios."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any


def cases(
    rows: Sequence[Mapping[str, Any]],
    *,
    unit: str,
    width: int,
    digits: int,
    spread: int,
    last: tuple[str, str, int] = ("calls/round", "calls_per_round", 12),
) -> list[str]:
    """Header and one line per row: label, median, p25-p75 and a last column.

    Rows carry ``median_<unit>``, ``p25_<unit>`` and ``p75_<unit>``; ``last`` is the
    last column's title, the row key it shows and its width.
    """
    title, key, last_width = last
    lines = [
        f"{'case':<{width}} {'median ' + unit:>10} {'p25-p75 ' + unit:>{spread}}"
        f" {title:>{last_width}}",
        "-" * (width + 10 + spread + last_width + 3),
    ]
    for row in rows:
        quartiles = f"{row[f'p25_{unit}']:.{digits}f}-{row[f'p75_{unit}']:.{digits}f}"
        lines.append(
            f"{row['label']:<{width}} {row[f'median_{unit}']:>10.{digits}f} "
            f"{quartiles:>{spread}} {row[key]:>{last_width}}"
        )
    return lines


def ratios(
    table: Mapping[str, Mapping[str, float]], *, width: int, digits: int, spread: int
) -> list[str]:
    """The per-round ratio table (medians and quartiles of ratios taken within a round)."""
    lines = [
        f"{'ratio (per round, same round)':<{width}} {'median':>10} {'p25-p75':>{spread}}",
        "-" * (width + 10 + spread + 2),
    ]
    for name, r in table.items():
        quartiles = f"{r['p25']:.{digits}f}-{r['p75']:.{digits}f}"
        lines.append(f"{name:<{width}} {r['median']:>9.{digits}f}x {quartiles:>{spread}}")
    return lines
