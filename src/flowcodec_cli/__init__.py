"""flowcodec: a learned image codec that writes real bitstreams (.fcx).

    codec/       the coding core: container, entropy coding, the encode/decode pipeline, tiles
    models/      the networks: flow, hyperprior, side information, the shared entropy model
    training/    the training loop, data, checkpoints, ablations, model cards, operating points
    evaluation/  `flowcodec bench`, metrics, classical codecs, anchors, analyses
    files/       images in and out, input → output jobs, the one atomic writer
    cli/         the command line: coding (encode, decode), inspection, tools, the shared runner
    zoo.py       the registered, sha256-pinned weights; errors.py exit codes
    api.py       the Python API below; pillow.py the Pillow plug-in for .fcx files
    batch.py     folder trees coded resumably, here or on a Dask cluster (`encode_tree`)

The coding core never imports training or evaluation (tests/test_layout.py).

The Python API (docs/python.md) is this package's public names: `encode`, `decode`, `info` and
the exceptions they raise. They are loaded on first use (PEP 562), so that importing the package,
as `flowcodec --help` does, imports neither torch nor Pillow.

Importing it pins MKL's numerics for the whole process (codec/blas.py: pixels must not depend on
the thread count or the CPU), which only works before torch's first BLAS call.
"""

from importlib import import_module

from flowcodec_cli.codec import blas

blas.pin()

_EXPORTS = {
    "decode": "api", "encode": "api", "info": "api",
    **{name: "errors" for name in ("CodecError", "DesyncError", "FormatError", "ImageError",
                                   "SideInfoError", "WeightsError", "WeightsMissing")},
}

__all__ = sorted(_EXPORTS)


def __getattr__(name: str):
    if name in _EXPORTS:
        return getattr(import_module(f"flowcodec_cli.{_EXPORTS[name]}"), name)
    raise AttributeError(f"module 'flowcodec_cli' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted({*globals(), *__all__})
