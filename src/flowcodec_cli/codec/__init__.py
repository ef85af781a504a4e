"""The coding core: image → tensor → analysis → latents → probability tables → range coder → .fcx.

Holds the container (`fcx`), the entropy coder (`entropy`), the pipeline (`pipeline`), tiling and
the runtime β → β′ map. It may import `models`, `files` and `zoo`; never `training` or
`evaluation` (tests/test_layout.py enforces it)."""

from flowcodec_cli.codec.pipeline import (CodecError, EncodeStats, LoadedCodec, SideInfoError,
                                          decode, encode)
from flowcodec_cli.codec.tiles import DEFAULT_TILE, TILE_CONTEXT

__all__ = ["DEFAULT_TILE", "TILE_CONTEXT", "CodecError", "EncodeStats", "LoadedCodec",
           "SideInfoError", "decode", "encode"]
