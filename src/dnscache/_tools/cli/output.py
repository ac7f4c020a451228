"""What every command prints with: messages, durations, tables, JSON and a progress bar."""

from __future__ import annotations

import json
import math
import sys
import time
from collections.abc import Sequence
from typing import Any, TextIO

from .options import PROG


def say(message: str, stream: TextIO | None = None) -> None:
    """One line on stderr (or ``stream``)."""
    print(message, file=sys.stderr if stream is None else stream)


def emit_json(value: Any) -> None:
    """``value`` as indented JSON on stdout, with a final newline."""
    json.dump(value, sys.stdout, indent=2)
    sys.stdout.write("\n")


def _micro() -> str:
    """The micro sign where the output can show it, else "us"."""
    encoding = getattr(sys.stdout, "encoding", None) or "ascii"
    try:
        "µ".encode(encoding)
    except (UnicodeEncodeError, LookupError):
        return "us"
    return "µs"


def fmt_ns(ns: float) -> str:
    """A duration in nanoseconds, in the unit that reads best."""
    if ns < 1_000:
        return f"{ns:.0f} ns"
    if ns < 1_000_000:
        return f"{ns / 1_000:.1f} {_micro()}"
    if ns < 1_000_000_000:
        return f"{ns / 1_000_000:.1f} ms"
    return f"{ns / 1_000_000_000:.2f} s"


def fmt_seconds(value: float | None) -> str:
    """A time left or ago, in whole seconds, minutes, hours or days; "-" for None."""
    if value is None:
        return "-"
    if math.isinf(value):
        return "forever"
    value = max(value, 0.0)
    if value < 90:
        return f"{value:.0f}s"
    if value < 90 * 60:
        return f"{value / 60:.0f}m"
    if value < 36 * 3600:
        return f"{value / 3600:.0f}h"
    return f"{value / 86400:.0f}d"


def percentile(samples: Sequence[float], fraction: float) -> float:
    """Nearest-rank percentile (no interpolation: p99 is a latency that happened)."""
    ordered = sorted(samples)
    rank = max(1, math.ceil(fraction * len(ordered)))
    return ordered[rank - 1]


def table(rows: Sequence[Sequence[str]], right: Sequence[bool] = ()) -> str:
    """Rows of cells as aligned columns; the first row is the header."""
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    lines = []
    for row in rows:
        cells = []
        for i, cell in enumerate(row):
            align_right = i < len(right) and right[i]
            cells.append(cell.rjust(widths[i]) if align_right else cell.ljust(widths[i]))
        lines.append("  ".join(cells).rstrip())
    return "\n".join(lines)


class Progress:
    """A progress bar on stderr when it is a terminal; otherwise one line per phase, or nothing."""

    WIDTH = 30
    INTERVAL = 0.05  # seconds between redraws: drawing must not cost what we measure

    def __init__(self, stream: TextIO | None = None, *, plain: bool = True) -> None:
        self._stream = sys.stderr if stream is None else stream
        self._plain = plain
        isatty = getattr(self._stream, "isatty", None)
        self._tty = bool(isatty and isatty())
        self._label = ""
        self._total = 1
        self._drawn = 0.0

    def phase(self, label: str, total: int) -> None:
        self._label, self._total, self._drawn = label, max(total, 1), 0.0
        if self._tty:
            self.update(0, force=True)
        elif self._plain:
            self._stream.write(f"{PROG}: {label} ({total})...\n")
            self._stream.flush()

    def update(self, done: int, force: bool = False) -> None:
        if not self._tty:
            return
        now = time.monotonic()
        if not force and now - self._drawn < self.INTERVAL:
            return
        self._drawn = now
        filled = self.WIDTH * done // self._total
        bar = "#" * filled + "-" * (self.WIDTH - filled)
        self._stream.write(f"\r{self._label:<24} [{bar}] {done}/{self._total}\x1b[K")
        self._stream.flush()

    def close(self) -> None:
        if self._tty:
            self._stream.write("\r\x1b[K")
            self._stream.flush()
