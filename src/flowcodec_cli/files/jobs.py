"""What the command line's inputs become: (source, destination) jobs, and reading a source.

`plan_outputs` turns the command line's inputs and `-o` into (source, destination) pairs:

* `-` as an input reads stdin; `-o -` writes stdout (one input only).
* one input: `-o FILE`, or `-o DIR/` / an existing directory → `DIR/<stem><suffix>`;
* several inputs or a directory input: `-o DIR` (created if missing) → `DIR/<stem><suffix>`;
* no `-o`: `<stem><suffix>` beside each input (stdout for stdin).

The destinations are written by `files.atomic.write_atomic`.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

from flowcodec_cli.files.atomic import STDIO


def _expand(inputs: list[str], accepted: set[str]) -> tuple[list[str], bool]:
    """Replace directories by their accepted files (sorted). Returns (files, had_directory)."""
    files: list[str] = []
    had_directory = False
    for item in inputs:
        if item != STDIO and os.path.isdir(item):
            had_directory = True
            files += sorted(str(p) for p in Path(item).iterdir()
                            if p.is_file() and p.suffix.lower() in accepted)
        else:
            files.append(item)
    return files, had_directory


def plan_outputs(inputs: list[str], output: str | None, suffix: str,
                 accepted: set[str]) -> list[tuple[str, str]]:
    """(source, destination) pairs; raises ValueError for contradictory arguments."""
    files, had_directory = _expand(inputs, accepted)
    if not files:
        raise ValueError("no input files (directories contained no matching files)")
    if files.count(STDIO) > 1:
        raise ValueError("stdin ('-') can be read only once")
    many = len(files) > 1 or had_directory
    if output == STDIO:
        if many:
            raise ValueError("-o - (stdout) takes exactly one input")
        return [(files[0], STDIO)]
    to_dir = output is not None and (many or output.endswith(os.sep) or os.path.isdir(output))
    if to_dir and os.path.exists(output) and not os.path.isdir(output):
        raise ValueError(f"-o {output} is a file, but several inputs need a directory")
    pairs: list[tuple[str, str]] = []
    for src in files:
        if src == STDIO:
            name = "stdin" + suffix
            if output is None:
                pairs.append((src, STDIO))
                continue
        else:
            name = Path(src).stem + suffix
        if to_dir:
            dst = os.path.join(output, name)
        elif output is not None:
            dst = output
        else:
            dst = os.path.join(os.path.dirname(src), name)
        pairs.append((src, dst))
    seen: dict[str, str] = {}
    for _, dst in pairs:
        if dst == STDIO:
            continue
        key = os.path.normcase(os.path.realpath(dst))
        if key in seen:
            raise ValueError(f"several inputs would write {dst} (same file stem)")
        seen[key] = dst
    if to_dir:
        os.makedirs(output, exist_ok=True)
    return pairs


def read_input(src: str) -> bytes:
    """The bytes of a source: a file, or stdin for '-'."""
    if src == STDIO:
        return sys.stdin.buffer.read()
    with open(src, "rb") as f:
        return f.read()
