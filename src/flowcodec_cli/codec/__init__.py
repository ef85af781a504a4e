"""The coding core: image → tensor → analysis → latents → probability tables → range coder → .fcx.

Holds the container (`fcx`), the entropy coder (`entropy`), the pipeline (`pipeline`), tiling and
the runtime β → β′ map; and its analog sibling `jscc`, which sends the latents over a simulated
noisy channel instead of through the range coder. It may import `models`, `zoo` and `errors`; never `files`, `training`
or `evaluation` (tests/test_layout.py enforces it): it codes pictures, not files.

`encode`, `decode` and the rest are loaded on first use (PEP 562), so that reading a header
(`codec.fcx`, `flowcodec info`, the fuzzers) never imports torch."""

from importlib import import_module

_EXPORTS = {
    "CodecError": "pipeline", "EncodeStats": "pipeline", "LoadedCodec": "pipeline",
    "SideInfoError": "pipeline", "decode": "pipeline", "encode": "pipeline",
    "DEFAULT_TILE": "tiles", "TILE_CONTEXT": "tiles",
}

__all__ = sorted(_EXPORTS)


def __getattr__(name: str):
    if name in _EXPORTS:
        return getattr(import_module(f"flowcodec_cli.codec.{_EXPORTS[name]}"), name)
    raise AttributeError(f"module 'flowcodec_cli.codec' has no attribute {name!r}")
