"""Every error that reaches the user, and its exit code: the one table the CLI and the docs share.

The exception classes live here, not in the modules that raise them, so that mapping them to exit
codes needs no import of those modules: the CLI imports only this file to report a failure, and
`flowcodec --help` stays instant. The raising modules re-export their classes under the old
names (`fcx.FormatError`, `entropy.DesyncError`, `codec.CodecError`, `zoo.WeightsError`,
`images.ImageError`, `atomic.OutputExists`). Nothing heavy is imported here (no torch, no numpy).

`EXIT_CODES` is the documented table (docs/cli.md, "Exit codes"; tests/test_errors.py checks
the two against each other); `RULES` says which exception gets which code and message.
"""

from __future__ import annotations

from typing import Callable, NamedTuple

EXIT_OK, EXIT_INTERNAL, EXIT_USAGE, EXIT_INPUT, EXIT_FORMAT = 0, 1, 2, 3, 4
EXIT_MODEL, EXIT_SIDE_INFO, EXIT_EXISTS, EXIT_DESYNC = 5, 6, 7, 8


class ExitCode(NamedTuple):
    short: str     # as cli.py's docstring lists it
    meaning: str   # as docs/cli.md's exit-code table lists it (without markdown)


EXIT_CODES: dict[int, ExitCode] = {
    EXIT_OK: ExitCode("ok", "success"),
    EXIT_INTERNAL: ExitCode("internal error", "internal error"),
    EXIT_USAGE: ExitCode("usage", "usage error"),
    EXIT_INPUT: ExitCode("unreadable input", "input unreadable"),
    EXIT_FORMAT: ExitCode("corrupt/invalid .fcx", "corrupt or invalid .fcx"),
    EXIT_MODEL: ExitCode("model or weights problem", "model or weights problem"),
    EXIT_SIDE_INFO: ExitCode("side information missing or wrong", "side information"),
    EXIT_EXISTS: ExitCode("output exists (no --force)", "output exists"),
    EXIT_DESYNC: ExitCode("encoder/decoder desync detected", "desync"),
}


# --- the project's exceptions (raised by the modules named in each docstring) -----------------

class OutputExists(Exception):
    """files.atomic: the destination exists and --force was not given. The message is the path."""


class ImageError(ValueError):
    """files.images: the input is not an image we can read."""


class FormatError(ValueError):
    """codec.fcx: the bytes are not a valid .fcx file (wrong magic, truncated, corrupt,
    unsupported)."""


class CorruptStream(ValueError):
    """codec.entropy: a range-coded stream that is not a valid encoding under its tables. The
    pipeline turns it into a FormatError; if one ever escapes, it is still a corrupt file."""


class DesyncError(RuntimeError):
    """codec.entropy: the tables the decoder rebuilt are not the tables the encoder used."""


class CodecError(RuntimeError):
    """codec.loaded: the file cannot be coded with the available model (unknown, other weights,
    bad β)."""


class SideInfoError(CodecError):
    """codec.pipeline: side information is required but missing, or does not fit the file."""


class WeightsError(RuntimeError):
    """zoo: weights are missing, tampered with, or do not fit the architecture."""


class WeightsMissing(WeightsError):
    """zoo: the weights file of a registered model is not installed."""


# --- exception → exit code and one-line message -----------------------------------------------

class Rule(NamedTuple):
    kind: type[BaseException]
    code: int
    message: Callable[[BaseException], str] = str


RULES: tuple[Rule, ...] = (
    # The first match wins: a subclass must come before its base (SideInfoError before
    # CodecError, FileNotFoundError before OSError); tests/test_errors.py checks it.
    Rule(OutputExists, EXIT_EXISTS, lambda exc: f"{exc} exists (use --force to overwrite)"),
    Rule(ImageError, EXIT_INPUT),
    Rule(FormatError, EXIT_FORMAT),
    Rule(CorruptStream, EXIT_FORMAT),
    Rule(FileNotFoundError, EXIT_INPUT, lambda exc: "no such file"),
    Rule(IsADirectoryError, EXIT_INPUT, lambda exc: "is a directory"),
    Rule(PermissionError, EXIT_INPUT, lambda exc: "permission denied"),
    Rule(DesyncError, EXIT_DESYNC),
    Rule(SideInfoError, EXIT_SIDE_INFO),
    Rule(CodecError, EXIT_MODEL),
    Rule(WeightsError, EXIT_MODEL),
    Rule(OSError, EXIT_INPUT, lambda exc: exc.strerror or str(exc)),
)


class Failure(NamedTuple):
    """What the user is told about one failure: the exit code and the one-line message."""
    code: int
    message: str


def classify(exc: BaseException) -> Failure:
    """The exit code and message for any exception: the first matching rule, or an internal
    error (a bug) that names the exception type, so the user never sees a traceback."""
    for rule in RULES:
        if isinstance(exc, rule.kind):
            return Failure(rule.code, rule.message(exc))
    return Failure(EXIT_INTERNAL, f"internal error: {type(exc).__name__}: {exc}")
