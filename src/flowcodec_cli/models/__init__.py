"""The models: one file per architecture (flow, hyperprior, flow_side_info,
channel, vqvae), the base class
and the entropy-model component every model shares, and their building blocks (`layers/`). This
file is the registry: one name per architecture. Imports only torch; never codec, training or evaluation."""

from __future__ import annotations

from flowcodec_cli.models.channel import ChannelCodec
from flowcodec_cli.models.flow import FlowCodec
from flowcodec_cli.models.flow_side_info import FlowSideInfoCodec
from flowcodec_cli.models.hyperprior import HyperpriorCodec
from flowcodec_cli.models.vqvae import VQVAECodec

MODEL_CLASSES: dict[str, type] = {}


def register(cls: type) -> type:
    if cls.name in MODEL_CLASSES:
        raise ValueError(f"model name {cls.name!r} registered twice")
    MODEL_CLASSES[cls.name] = cls
    return cls


register(HyperpriorCodec)
register(FlowCodec)
register(FlowSideInfoCodec)
register(ChannelCodec)
register(VQVAECodec)


def build_model(name: str, config: dict | None = None):
    """Instantiate an architecture from its registry name and a (partial) config dict."""
    cls = MODEL_CLASSES[name]
    return cls(cls.config_class(**(config or {})))


def full_config(name: str, config: dict | None = None) -> dict:
    """A (partial) config dict with every field the architecture has, defaults filled in: what
    `build_model` would build, without building it (a file written before a field existed
    stores no value for it)."""
    return MODEL_CLASSES[name].config_class(**(config or {})).to_dict()
