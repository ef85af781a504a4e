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


@pytest.mark.parametrize("command", ["encode", "decode", "info", "bench"])
def test_docs_and_help_list_the_same_options(command):
    assert documented(command) == in_help(command)
