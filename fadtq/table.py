"""Plain-text and Markdown tables for the terminal and reports."""

from __future__ import annotations

from collections.abc import Sequence


def format_table(header: Sequence[str], rows: Sequence[Sequence[object]], markdown: bool = False) -> str:
    cells = [[str(c) for c in header]] + [["" if c is None else str(c) for c in row] for row in rows]
    widths = [max(len(row[i]) for row in cells) for i in range(len(header))]
    lines = [" | ".join(c.ljust(w) for c, w in zip(row, widths)).rstrip() for row in cells]
    rule = "-+-".join("-" * w for w in widths)
    if markdown:
        lines = [f"| {' | '.join(c.ljust(w) for c, w in zip(row, widths))} |" for row in cells]
        rule = f"|{'|'.join('-' * (w + 2) for w in widths)}|"
    return "\n".join([lines[0], rule, *lines[1:]])
