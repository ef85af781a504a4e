"""Number and table formatting shared by the Markdown reports (results.md, stereo.md) and the
plot title, so that every report prints a missing value, a count and a table the same way."""

from __future__ import annotations


def fmt(value, digits: int = 3, signed: bool = False) -> str:
    """A number with fixed digits, 'n/a' for a missing one."""
    if value is None:
        return "n/a"
    return f"{value:+.{digits}f}" if signed else f"{value:.{digits}f}"


def count(n: int, noun: str) -> str:
    """'1 image', '2 images'."""
    return f"{n} {noun}" + ("" if n == 1 else "s")


def table(headers: list[str], rows: list[list[str]]) -> str:
    """A Markdown table, first column left-aligned, the numeric ones right-aligned."""
    align = ["---"] + ["--:"] * (len(headers) - 1)
    lines = ["| " + " | ".join(headers) + " |", "| " + " | ".join(align) + " |"]
    lines += ["| " + " | ".join(row) + " |" for row in rows]
    return "\n".join(lines)
