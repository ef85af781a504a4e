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

Training (`forward`) replaces rounding by additive uniform noise for the rate term and by
straight-through rounding for the synthesis input ("mixed quantization", Minnen & Singh 2020).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import torch
from torch import nn

from .. import mixture
from ..layers import GDN, RateGain, conv, deconv


@dataclass(frozen=True)
class HyperpriorConfig:
    """Everything needed to rebuild the architecture; stored next to the weights."""

    channels: int = 96          # N: width of the transforms
    latent_channels: int = 128  # M: channels of y
    hyper_channels: int = 64    # channels of z
    beta_min: float = 0.0003
    beta_max: float = 0.08

    def to_dict(self) -> dict:
        return asdict(self)


def _round_ste(x: torch.Tensor) -> torch.Tensor:
    """Round in the forward pass, identity gradient in the backward pass."""
    return x + (torch.round(x) - x).detach()


class HyperpriorCodec(nn.Module):
    """The trained transforms and priors; the bitstream lives in `codec.py`."""

    name = "hyperprior"

    #: Total downsampling of the image down to z: inputs are padded to a multiple of this.
    stride = 64

    config_class = HyperpriorConfig

    def __init__(self, config: HyperpriorConfig = HyperpriorConfig()):
        super().__init__()
        self.config = config
        n, m, nz = config.channels, config.latent_channels, config.hyper_channels
        k = mixture.COMPONENTS
        self.g_a = nn.Sequential(
            conv(3, n), GDN(n), conv(n, n), GDN(n), conv(n, n), GDN(n), conv(n, m),
        )
        self.g_s = nn.Sequential(
            deconv(m, n), GDN(n, inverse=True), deconv(n, n), GDN(n, inverse=True),
            deconv(n, n), GDN(n, inverse=True), deconv(n, 3),
        )
        self.h_a = nn.Sequential(
            conv(m, n, 3, 1), nn.LeakyReLU(inplace=True),
            conv(n, n), nn.LeakyReLU(inplace=True),
            conv(n, nz),
        )
        self.h_s = nn.Sequential(
            deconv(nz, m), nn.LeakyReLU(inplace=True),
            deconv(m, m * 3 // 2), nn.LeakyReLU(inplace=True),
            conv(m * 3 // 2, 3 * k * m, 1, 1),
        )
        self.gain = RateGain(m, config.beta_min, config.beta_max)
        self.inverse_gain = RateGain(m, config.beta_min, config.beta_max, exponent=0.5)
        self.hyper_gain = RateGain(nz, config.beta_min, config.beta_max, exponent=0.0)
        self.inverse_hyper_gain = RateGain(nz, config.beta_min, config.beta_max, exponent=0.0)
        # Factorized prior of z: one K-component mixture per channel, shared over positions.
        self.z_logits = nn.Parameter(torch.zeros(k, nz))
        self.z_means = nn.Parameter(torch.linspace(-1.0, 1.0, k).unsqueeze(1).repeat(1, nz))
        self.z_log_scales = nn.Parameter(torch.full((k, nz), 0.5))

    # --- pieces shared by training and coding -------------------------------------------------

    def z_prior(self, shape: torch.Size, dtype: torch.dtype = torch.float32) -> mixture.MixtureParams:
        """The factorized prior of z broadcast to shape (B, C, H, W) as (B, K, C, H, W) tensors."""
        b, c, h, w = shape

        def expand(p: torch.Tensor) -> torch.Tensor:
            return p.to(dtype)[None, :, :, None, None].expand(b, -1, c, h, w)

        scales = self.z_log_scales.exp().clamp(mixture.SCALE_MIN, mixture.SCALE_MAX)
        return mixture.MixtureParams(expand(self.z_logits), expand(self.z_means), expand(scales))

    def y_prior(self, z_hat: torch.Tensor, beta: torch.Tensor) -> mixture.MixtureParams:
        """Per-element mixture parameters of ŷ, predicted from the quantized hyper-latents."""
        raw = self.h_s(z_hat / self.inverse_hyper_gain(beta).to(z_hat.dtype))
        return mixture.split_params(raw, self.config.latent_channels)

    def analysis(self, x: torch.Tensor, beta: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """x (B,3,H,W) in [0,1], H and W multiples of `stride` -> gained, unrounded (y, z)."""
        y = self.g_a(x).float() * self.gain(beta)  # under bf16 autocast, latents stay float32
        # h_a sees the gained latents, so z carries their β-dependent scale to h_s.
        z = self.h_a(y).float() * self.hyper_gain(beta)
        return y, z

    def synthesis(self, y_hat: torch.Tensor, beta: torch.Tensor) -> torch.Tensor:
        """Quantized gained latents -> image (B,3,H,W), not clamped."""
        return self.g_s(y_hat * self.inverse_gain(beta).to(y_hat.dtype))

    # --- training -------------------------------------------------------------------------------

    def forward(self, x: torch.Tensor, beta: torch.Tensor) -> dict:
        """Training pass. Returns the reconstruction and the bits of y and z per image batch."""
        y, z = self.analysis(x, beta)
        z_noisy = z + torch.empty_like(z).uniform_(-0.5, 0.5)
        z_bits = mixture.bits(mixture.bin_likelihood(z_noisy, self.z_prior(z.shape)))  # (B,)
        y_params = self.y_prior(_round_ste(z), beta)
        y_noisy = y + torch.empty_like(y).uniform_(-0.5, 0.5)
        y_bits = mixture.bits(mixture.bin_likelihood(y_noisy, y_params))  # (B,)
        x_hat = self.synthesis(_round_ste(y), beta)
        return {"x_hat": x_hat, "y_bits_per_image": y_bits, "z_bits_per_image": z_bits}
