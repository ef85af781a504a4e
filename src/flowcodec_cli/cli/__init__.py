"""The `flowcodec` command line: a thin click layer over the codec (`flowcodec_cli.codec`).

No torch at import time: `flowcodec --help` stays instant (commands import what they need when
they run). Every failure is one line on stderr naming the file and the problem, and a documented
exit code (the table is errors.EXIT_CODES; docs/cli.md and this list are tested against it):

    0 ok · 1 internal error · 2 usage · 3 unreadable input · 4 corrupt/invalid .fcx
    5 model or weights problem · 6 side information missing or wrong · 7 output exists (no --force)
    8 encoder/decoder desync detected

With several files, a failure does not stop the others; the exit code is the first failure's.

The commands live by what they do: `coding` (encode, decode), `inspection` (info, analyze,
models), `tools` (train, bench), `channel` (a simulated transmission over a noisy channel), and
`runner`, what every command that codes files shares,
with `workers`, the processes of --jobs.
"""

from __future__ import annotations

import click

from flowcodec_cli.cli import channel, coding, inspection, tools
from flowcodec_cli.codec.rate_request import DEFAULT_BETA, DEFAULT_QUALITY  # noqa: F401 - public
from flowcodec_cli.errors import (  # noqa: F401 - cli.EXIT_* and cli.Failure are public names
    EXIT_DESYNC, EXIT_EXISTS, EXIT_FORMAT, EXIT_INPUT, EXIT_INTERNAL, EXIT_MODEL, EXIT_OK,
    EXIT_SIDE_INFO, EXIT_USAGE, Failure, classify)


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="flowcodec-cli")
def main() -> None:
    """flowcodec: a learned image codec that writes real bitstreams (.fcx)."""


for _command in (coding.encode, coding.decode, inspection.info, inspection.analyze,
                 inspection.models, tools.train, tools.bench, channel.channel):
    main.add_command(_command)


if __name__ == "__main__":
    main()
