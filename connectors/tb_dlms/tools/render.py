"""Plain-text tables, coloured only for a human at a terminal.

Colour codes in a log file or a CI transcript are noise, so colour is on only when stdout is a
terminal and neither NO_COLOR (https://no-color.org) nor TERM=dumb says otherwise.
"""
from __future__ import annotations

import os
from typing import IO, Any, Sequence

_CODES = {"green": "32", "red": "31", "yellow": "33", "bold": "1", "dim": "2", "cyan": "36"}


def want_colour(stream: IO, choice: str = "auto") -> bool:
    if choice in ("always", "never"):
        return choice == "always"
    if os.environ.get("NO_COLOR") or os.environ.get("TERM") == "dumb":
        return False
    return bool(getattr(stream, "isatty", lambda: False)())


class Painter:
    def __init__(self, enabled: bool) -> None:
        self.enabled = enabled

    def __call__(self, text: str, *styles: str) -> str:
        if not self.enabled or not styles:
            return text
        codes = ";".join(_CODES[s] for s in styles)
        return f"\033[{codes}m{text}\033[0m"


def cell(value: Any) -> str:
    if value is None:
        return "-"
    if isinstance(value, float):
        # Fixed point: an energy register of 25762145.5 Wh must not turn into 2.57621e+07.
        return f"{value:.6f}".rstrip("0").rstrip(".") if abs(value) < 1e15 else f"{value:g}"
    text = str(value)
    return text if len(text) <= 48 else text[:45] + "..."


def table(headers: Sequence[str], rows: Sequence[Sequence[Any]], paint: Painter | None = None,
          styles: Sequence[str | None] | None = None, indent: str = "  ") -> list[str]:
    """Aligned columns; ``styles[i]`` colours row i after alignment (codes do not count as width)."""
    texts = [[cell(v) for v in row] for row in rows]
    widths = [max([len(h)] + [len(r[i]) for r in texts]) for i, h in enumerate(headers)]

    def line(values: Sequence[str]) -> str:
        # strict=False: a report never fails over a row longer than the header.
        return indent + "  ".join(v.ljust(w) for v, w in zip(values, widths, strict=False)).rstrip()

    paint = paint or Painter(False)
    out = [paint(line(headers), "bold")]
    for i, row in enumerate(texts):
        style = styles[i] if styles else None
        out.append(paint(line(row), style) if style else line(row))
    return out
