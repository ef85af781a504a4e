"""What the command line's inputs become: (source, destination) jobs, and reading a source.

`plan_outputs` turns the command line's inputs and `-o` into (source, destination) pairs:

* `-` as an input reads stdin; `-o -` writes stdout (one input only).
* one input: `-o FILE`, or `-o DIR/` / an existing directory → `DIR/<stem><suffix>`;
* several inputs or a directory input: `-o DIR` (created if missing) → `DIR/<stem><suffix>`;
* no `-o`: `<stem><suffix>` beside each input (stdout for stdin).

`check_destinations` then refuses what could only be written wrongly (binary data to a terminal,
an output suffix that names no format). The destinations are written by
`files.atomic.write_atomic`.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import Callable

from flowcodec_cli.files.atomic import STDIO

# The image files an encode takes from a directory, matched case-insensitively. Here rather than
# in images.py, which imports numpy and Pillow: planning (and refusing) needs neither.
IMAGE_SUFFIXES = {".png", ".jpg", ".jpeg", ".ppm", ".pgm", ".pnm", ".tif", ".tiff", ".webp", ".bmp",
                  ".gif"}


def _expand(inputs: list[str], accepted: set[str]) -> tuple[list[str], bool]:
    """Replace directories by their accepted files (sorted). Returns (files, had_directory).
    Raises ValueError naming the directories when they were all there was and hold no file."""
    files: list[str] = []
    directories: list[str] = []
    for item in inputs:
        if item != STDIO and os.path.isdir(item):
            directories.append(item)
            files += sorted(str(p) for p in Path(item).iterdir()
                            if p.is_file() and p.suffix.lower() in accepted)
        else:
            files.append(item)
    if directories and not files:
        raise ValueError(f"no input files: {', '.join(directories)} "
                         f"{'holds' if len(directories) == 1 else 'hold'} no "
                         f"{'/'.join(sorted(accepted))} files")
    return files, bool(directories)


def plan_outputs(inputs: list[str], output: str | None, suffix: str,
                 accepted: set[str]) -> list[tuple[str, str]]:
    """(source, destination) pairs; raises ValueError for contradictory arguments."""
    files, had_directory = _expand(inputs, accepted)
    if not files:
        raise ValueError("no input files")
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


def check_destinations(pairs: list[tuple[str, str]],
                       check_suffix: Callable[[str], object] | None = None) -> None:
    """Refuse, with the plan and before any work, destinations that could only be written
    wrongly: stdout when it is a terminal (binary data there is garbage and can leave the
    terminal in a strange state: gzip refuses too), and a file whose suffix `check_suffix`
    rejects with ValueError (decode: a suffix that names no image format). Raises ValueError."""
    for _, dst in pairs:
        if dst == STDIO:
            if sys.stdout.isatty():
                raise ValueError("binary data not written to a terminal: redirect stdout "
                                 "or pass -o FILE")
        elif check_suffix is not None:
            try:
                check_suffix(Path(dst).suffix)
            except ValueError as exc:
                raise ValueError(f"{dst}: {exc}") from None


def read_input(src: str) -> bytes:
    """The bytes of a source: a file, or stdin for '-'."""
    if src == STDIO:
        return sys.stdin.buffer.read()
    with open(src, "rb") as f:
        return f.read()
