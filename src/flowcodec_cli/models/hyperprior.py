"""Mean-scale hyperprior codec with a Gaussian-mixture entropy model and rate gains.

Data path (Ballé 2018 / Minnen 2018 notation)::

    x ──g_a──► y ──×gain(β)──┬──► round ──► ŷ ──────────────────┐
                             │                                  │
                             └──h_a──► z ──×hgain(β)──► round ──► ẑ
                                              │                 │
                           factorized prior ◄─┘                 │
                                              │                 │
                  ẑ ──÷hgain(β)──h_s──► (w, μ, σ) per element ─► GMM tables ─► range coder
                                                                │
    x̂ ◄──g_s── ÷gain(β) ◄───────────────────────────────────────┘

There is no serial autoregressive context, so decoding is fully parallel. `gain(β)` scales the
latents per channel before rounding; it is what lets one set of weights cover the whole rate range
(larger β → smaller gain → coarser quantization → fewer bits).

Training (`LatentCodec.forward`) replaces rounding by additive uniform noise for the rate term
and by straight-through rounding for the synthesis input ("mixed quantization", Minnen & Singh
2020). The entropy model (h_a, h_s, priors) lives in `entropy_model.py`, shared with the flow codec.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import torch
from torch import nn

from flowcodec_cli.models import mixture
from flowcodec_cli.models.layers.basic import GDN, RateGain, conv, deconv
from flowcodec_cli.models.base import LatentCodec
from flowcodec_cli.models.entropy_model import round_ste


@dataclass(frozen=True)
class HyperpriorConfig:
    """Everything needed to rebuild the architecture; stored next to the weights."""

    channels: int = 96          # N: width of the transforms
    latent_channels: int = 128  # M: channels of y
    hyper_channels: int = 64    # channels of z
    beta_min: float = 0.0003
    beta_max: float = 0.08
    components: int = mixture.COMPONENTS  # K of the Gaussian mixture

    def to_dict(self) -> dict:
        return asdict(self)


class HyperpriorCodec(LatentCodec):
    """The trained transforms and priors; the bitstream lives in `codec/pipeline.py`."""

    name = "hyperprior"
    stride = 64
    config_class = HyperpriorConfig

    def __init__(self, config: HyperpriorConfig = HyperpriorConfig()):
        super().__init__()
        self.config = config
        n, m = config.channels, config.latent_channels
        self.g_a = nn.Sequential(
            conv(3, n), GDN(n), conv(n, n), GDN(n), conv(n, n), GDN(n), conv(n, m),
        )
        self.g_s = nn.Sequential(
            deconv(m, n), GDN(n, inverse=True), deconv(n, n), GDN(n, inverse=True),
            deconv(n, n), GDN(n, inverse=True), deconv(n, 3),
        )
        self.build_entropy_model(m, n, config.hyper_channels, config.components,
                                 config.beta_min, config.beta_max)
        self.gain = RateGain(m, config.beta_min, config.beta_max)
        self.inverse_gain = RateGain(m, config.beta_min, config.beta_max, exponent=0.5)

    def analysis(self, x: torch.Tensor, beta: torch.Tensor) -> torch.Tensor:
        return self.g_a(x).float() * self.gain(beta)  # under bf16 autocast, latents stay float32

    def synthesis(self, y_hat: torch.Tensor, beta: torch.Tensor) -> torch.Tensor:
        return self.g_s(y_hat * self.inverse_gain(beta).to(y_hat.dtype))

    def synthesis_input(self, y: torch.Tensor, y_noisy: torch.Tensor) -> torch.Tensor:
        return round_ste(y)
