"""errors.py is the one table of exit codes: docs/cli.md and cli.py's docstring must say the same,
every exception reaches its documented code with its one-line message, and the old import paths
of the exception classes still work."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

from flowcodec_cli import cli, errors
from flowcodec_cli.errors import EXIT_CODES, RULES, classify

ROOT = Path(__file__).resolve().parents[1]


def docs_exit_codes() -> dict[int, str]:
    """code → meaning, from the table under "## Exit codes" in docs/cli.md (markdown removed)."""
    text = (ROOT / "docs" / "cli.md").read_text(encoding="utf-8")
    section = text.split("## Exit codes", 1)[1].split("\n## ", 1)[0]
    rows = re.findall(r"^\|\s*(\d+)\s*\|([^|]*)\|", section, flags=re.MULTILINE)
    assert rows, "no exit-code table in docs/cli.md"
    table = {int(code): meaning.strip().replace("`", "") for code, meaning in rows}
    assert len(table) == len(rows), "a code is listed twice in docs/cli.md"
    return table


def docstring_exit_codes() -> dict[int, str]:
    """code → short meaning, from the `0 ok · 1 internal error · ...` list of cli.py's
    docstring."""
    block = re.search(r"^ +0 ok .*?(?=\n\n)", cli.__doc__, flags=re.MULTILINE | re.DOTALL)
    assert block, "no exit-code list in cli.py's docstring"
    items = re.split(r"\s*·\s*|\n\s*", block.group(0).strip())
    return {int(item.split(" ", 1)[0]): item.split(" ", 1)[1] for item in items}


def test_docs_table_matches_errors():
    assert docs_exit_codes() == {code: entry.meaning for code, entry in EXIT_CODES.items()}


def test_cli_docstring_matches_errors():
    assert docstring_exit_codes() == {code: entry.short for code, entry in EXIT_CODES.items()}


def test_exit_code_constants_are_the_table():
    constants = {name: value for name, value in vars(errors).items() if name.startswith("EXIT_")
                 and isinstance(value, int)}
    assert sorted(constants.values()) == sorted(EXIT_CODES)
    for name, value in constants.items():
        assert getattr(cli, name) == value  # cli.EXIT_* stays a public name


def test_rules_use_documented_codes_and_no_rule_is_shadowed():
    for i, rule in enumerate(RULES):
        assert rule.code in EXIT_CODES and rule.code not in (errors.EXIT_OK, errors.EXIT_USAGE)
        for earlier in RULES[:i]:
            assert not issubclass(rule.kind, earlier.kind), (
                f"{rule.kind.__name__} comes after its base {earlier.kind.__name__} in RULES")


def test_every_error_class_of_the_project_has_a_code():
    classes = [value for value in vars(errors).values()
               if isinstance(value, type) and issubclass(value, BaseException)
               and value.__module__ == errors.__name__]
    assert len(classes) >= 9
    for kind in classes:
        assert classify(kind("x")).code != errors.EXIT_INTERNAL, kind


@pytest.mark.parametrize("exc, code, message", [
    (errors.OutputExists("out/a.png"), 7, "out/a.png exists (use --force to overwrite)"),
    (errors.ImageError("not a recognized image file"), 3, "not a recognized image file"),
    (errors.FormatError("not an .fcx file (bad magic)"), 4, "not an .fcx file (bad magic)"),
    (errors.CorruptStream("bad stream"), 4, "bad stream"),
    (FileNotFoundError(2, "No such file or directory", "a.png"), 3, "no such file"),
    (IsADirectoryError(21, "Is a directory", "d"), 3, "is a directory"),
    (PermissionError(13, "Permission denied", "a.png"), 3, "permission denied"),
    (errors.DesyncError("tables differ"), 8, "tables differ"),
    (errors.SideInfoError("needs --side-info"), 6, "needs --side-info"),
    (errors.CodecError("unknown model 'x'"), 5, "unknown model 'x'"),
    (errors.WeightsError("SHA256 mismatch"), 5, "SHA256 mismatch"),
    (errors.WeightsMissing("not installed"), 5, "not installed"),
    (OSError(28, "No space left on device"), 3, "No space left on device"),
    (OSError("no strerror"), 3, "no strerror"),
    (ValueError("oops"), 1, "internal error: ValueError: oops"),
    (KeyError("k"), 1, "internal error: KeyError: 'k'"),
])
def test_classify(exc, code, message):
    assert classify(exc) == (code, message)
    assert (classify(exc).code, classify(exc).message) == (code, message)


def test_bases_that_callers_rely_on():
    assert issubclass(errors.FormatError, ValueError)
    assert issubclass(errors.CorruptStream, ValueError)
    assert issubclass(errors.ImageError, ValueError)
    assert issubclass(errors.SideInfoError, errors.CodecError)
    assert issubclass(errors.WeightsMissing, errors.WeightsError)
    assert issubclass(errors.DesyncError, RuntimeError)


def test_old_import_paths_name_the_same_classes():
    from flowcodec_cli import codec, zoo
    from flowcodec_cli.codec import entropy, fcx, loaded, pipeline
    from flowcodec_cli.files import atomic, images
    assert fcx.FormatError is errors.FormatError
    assert entropy.CorruptStream is errors.CorruptStream
    assert entropy.DesyncError is errors.DesyncError
    assert loaded.CodecError is pipeline.CodecError is codec.CodecError is errors.CodecError
    assert pipeline.SideInfoError is codec.SideInfoError is errors.SideInfoError
    assert zoo.WeightsError is errors.WeightsError
    assert zoo.WeightsMissing is errors.WeightsMissing
    assert images.ImageError is errors.ImageError
    assert atomic.OutputExists is errors.OutputExists


def test_errors_and_cli_import_nothing_heavy():
    """`flowcodec --help` must stay instant: neither module may pull in torch or numpy."""
    code = ("import sys, flowcodec_cli.errors, flowcodec_cli.cli; "
            "print(sorted(m for m in ('torch', 'numpy', 'PIL', 'tqdm') if m in sys.modules))")
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          timeout=60, check=True)
    assert proc.stdout.strip() == "[]"
