"""Plain-text tables for the command line: one line per row, whatever the cells hold."""

from __future__ import annotations

from collections.abc import Sequence

ELLIPSIS = "…"


def one_line(text: str, width: int | None = None) -> str:
    """``text`` on one line: runs of whitespace (newlines too) folded to one space, and cut to
    ``width`` characters with a trailing … when longer."""
    folded = " ".join(text.split())
    if width is not None and len(folded) > width:
        return folded[: max(width - 1, 0)] + ELLIPSIS
    return folded


def counted(count: int, noun: str) -> str:
    """``count`` and ``noun`` in agreement: ``counted(1, "dead letter")`` is "1 dead letter",
    any other count takes the plural in -s ("0 dead letters")."""
    return f"{count} {noun}" if count == 1 else f"{count} {noun}s"


def table(
    header: Sequence[str],
    rows: Sequence[Sequence[object]],
    right_aligned: Sequence[int] = (),
) -> list[str]:
    """Lines of a table whose columns are as wide as their widest cell (nothing cut here: cut a
    cell with :func:`one_line` first). ``right_aligned``: indexes of numeric columns. The last
    column is not padded, so no line ends in spaces."""
    cells = [[one_line(str(cell)) for cell in row] for row in [header, *rows]]
    widths = [max(len(row[index]) for row in cells) for index in range(len(header))]
    lines = []
    for row in cells:
        padded = [
            cell.rjust(widths[index]) if index in right_aligned else cell.ljust(widths[index])
            for index, cell in enumerate(row)
        ]
        padded[-1] = row[-1].rjust(widths[-1]) if len(row) - 1 in right_aligned else row[-1]
        lines.append("  ".join(padded).rstrip())
    return lines
