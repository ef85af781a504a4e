"""`python -m flowcodec_cli` is the same as the `flowcodec` command."""

from .cli import main

main()
