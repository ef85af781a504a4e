"""docs/cli.md and `--help` list the same options for every documented command: a new option
must be documented, and a documented option must exist."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from flowcodec_cli import cli

DOC = (Path(__file__).resolve().parents[1] / "docs" / "cli.md").read_text()
OPTION = re.compile(r"(?<![\w-])(--?[A-Za-z][\w-]*)")


def section(command: str) -> str:
    match = re.search(rf"^## {command}\n(.*?)(?=^## )", DOC, re.S | re.M)
    assert match, f"docs/cli.md has no '## {command}' section"
    return match.group(1)


def documented(command: str) -> set[str]:
    """Options in the section's synopsis block, its table's first column, and the sentence
    that names options shared with another command."""
    text = section(command)
    found = set()
    synopsis = re.search(r"```\n(.*?)```", text, re.S)
    if synopsis:
        found |= set(OPTION.findall(synopsis.group(1)))
    for line in text.splitlines():
        if line.startswith("| `"):
            found |= set(OPTION.findall(line.split("|")[1]))
        elif "options as `" in line or ("same" in line and "options" in line):
            found |= set(OPTION.findall(line))
    return found - {"-h", "--help"}


def in_help(command: str) -> set[str]:
    params = cli.main.commands[command].params
    return {opt for p in params if p.param_type_name == "option"
            for opt in (*p.opts, *p.secondary_opts)} - {"-h", "--help"}


@pytest.mark.parametrize("command", ["encode", "decode", "info", "bench", "channel"])
def test_docs_and_help_list_the_same_options(command):
    assert documented(command) == in_help(command)


def test_quality_tables_are_the_measured_scale():
    """The -q tables of README.md and docs/cli.md are the measured scale (data/quality.json):
    re-measured weights must come with refreshed tables (runs the same rounding as the docs)."""
    from flowcodec_cli.codec import quality
    typical = {q: (bpp, db) for q, bpp, db in quality.typical("flow")}
    readme = (Path(__file__).resolve().parents[1] / "README.md").read_text()
    header = re.search(r"^\| Q \| ([\d |]+)\|\n\|[-|]+\n\| bpp \| ([^\n]+)\|\n\| PSNR \| ([^\n]+)\|",
                       readme, re.M)
    assert header, "README.md has no -q table"
    qs = [int(q) for q in header.group(1).split("|")]
    bpps = [float(b) for b in header.group(2).split("|")]
    dbs = [float(d.replace("dB", "")) for d in header.group(3).split("|")]
    assert [(f"{typical[q][0]:.2f}", f"{typical[q][1]:.1f}") for q in qs] == \
        [(f"{b:.2f}", f"{d:.1f}") for b, d in zip(bpps, dbs)]
    for q, (bpp, db) in typical.items():
        row = re.search(rf"^\| {q} \| [\d.]+ dB \| ([\d.]+) \| ([\d.]+) dB \|", DOC, re.M)
        if row:
            assert (row.group(1), row.group(2)) == (f"{bpp:.2f}", f"{db:.1f}"), q
