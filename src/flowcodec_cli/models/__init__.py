"""The models: one file per architecture (flow, hyperprior, side_info), the base class and the
entropy-model component every model shares, and their building blocks (`layers/`). This file is
the registry: one name per architecture. Imports only torch; never codec, training or evaluation."""

from __future__ import annotations

from flowcodec_cli.models.flow import FlowCodec
from flowcodec_cli.models.hyperprior import HyperpriorCodec
from flowcodec_cli.models.side_info import SideInfoCodec

MODEL_CLASSES: dict[str, type] = {}


def register(cls: type) -> type:
    if cls.name in MODEL_CLASSES:
        raise ValueError(f"model name {cls.name!r} registered twice")
    MODEL_CLASSES[cls.name] = cls
    return cls


register(HyperpriorCodec)
register(FlowCodec)
register(SideInfoCodec)


def build_model(name: str, config: dict | None = None):
    """Instantiate an architecture from its registry name and a (partial) config dict."""
    cls = MODEL_CLASSES[name]
    return cls(cls.config_class(**(config or {})))
