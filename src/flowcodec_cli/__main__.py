"""`python -m flowcodec_cli` is the same as the `flowcodec` command."""

from flowcodec_cli.cli import main

main()
