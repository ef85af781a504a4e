"""What every flowcodec model shares: the hyperprior entropy model of its latents.

A model is an analysis/synthesis pair (its own business) plus this entropy model::

    x ──analysis(β)──► y ──┬──► round ──► ŷ ────────────────────────► synthesis(β) ──► x̂
                           │                    ▲ (w, μ, σ) per element
                           └──h_a──► z ──×hgain(β)──► round ──► ẑ ──÷hgain(β)──h_s──┘
                                                   factorized prior ◄┘

`y` arrives already multiplied by the model's β-dependent gain, so one integer grid serves the
whole rate range. `codec.py` needs only what is defined here (`analysis`, `synthesis`, `h_s`,
`inverse_hyper_gain`, `z_prior`, `split`, `stride`, `config.latent_channels`,
`config.hyper_channels`), so every model codes through the same container and range coder.

Training replaces rounding by additive noise for the rate (a differentiable stand-in whose
density is the bin probability of the discretized mixture). What the synthesis sees during
training is the model's choice (`synthesis_input`).
"""

from __future__ import annotations

import math

import torch
from torch import nn

from .. import mixture
from ..layers import RateGain, conv, deconv

UNIFORM_NOISE_STD = math.sqrt(1 / 12)  # the standard deviation of U(-1/2, 1/2)


def round_ste(x: torch.Tensor) -> torch.Tensor:
    """Round in the forward pass, identity gradient in the backward pass."""
    return x + (torch.round(x) - x).detach()


def quantization_noise(like: torch.Tensor, kind: str) -> torch.Tensor:
    """Training stand-in for rounding error: U(-1/2, 1/2), or a Gaussian of the same variance
    (the FlowCodec proposal's dequantization noise)."""
    if kind == "uniform":
        return torch.empty_like(like).uniform_(-0.5, 0.5)
    if kind == "gaussian":
        return torch.randn_like(like) * UNIFORM_NOISE_STD
    raise ValueError(f"unknown noise {kind!r}")


class LatentCodec(nn.Module):
    """Base class: builds h_a, h_s, the hyper gains and the factorized prior of z as top-level
    attributes (their state-dict names are part of the weights format)."""

    #: Total downsampling from the image to z: inputs are padded to a multiple of this.
    stride: int

    @property
    def latent_stride(self) -> int:
        """Downsampling from the image to y: h_a takes y to z with two stride-2 layers."""
        return self.stride // 4

    def build_entropy_model(self, latent: int, width: int, hyper: int, components: int,
                            beta_min: float, beta_max: float) -> None:
        """h_a: y (latent ch.) → z (hyper ch., 4× smaller); h_s: ẑ → K·3 parameters per y element."""
        self.components = components
        self.h_a = nn.Sequential(
            conv(latent, width, 3, 1), nn.LeakyReLU(inplace=True),
            conv(width, width), nn.LeakyReLU(inplace=True),
            conv(width, hyper),
        )
        self.h_s = nn.Sequential(
            deconv(hyper, latent), nn.LeakyReLU(inplace=True),
            deconv(latent, latent * 3 // 2), nn.LeakyReLU(inplace=True),
            conv(latent * 3 // 2, 3 * components * latent, 1, 1),
        )
        self.hyper_gain = RateGain(hyper, beta_min, beta_max, exponent=0.0)
        self.inverse_hyper_gain = RateGain(hyper, beta_min, beta_max, exponent=0.0)
        # Factorized prior of z: one K-component mixture per channel, shared over positions.
        self.z_logits = nn.Parameter(torch.zeros(components, hyper))
        self.z_means = nn.Parameter(torch.linspace(-1.0, 1.0, components).unsqueeze(1).repeat(1, hyper))
        self.z_log_scales = nn.Parameter(torch.full((components, hyper), 0.5))

    # --- the model's own transforms ------------------------------------------------------------

    def analysis(self, x: torch.Tensor, beta: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """x (B,3,H,W) in [0,1], H and W multiples of `stride` -> gained, unrounded (y, z)."""
        raise NotImplementedError

    def synthesis(self, y_hat: torch.Tensor, beta: torch.Tensor) -> torch.Tensor:
        """Quantized gained latents -> image (B,3,H,W), not clamped."""
        raise NotImplementedError

    def synthesis_input(self, y: torch.Tensor, y_noisy: torch.Tensor) -> torch.Tensor:
        """What the synthesis sees in training instead of round(y)."""
        raise NotImplementedError

    #: training noise for the rate term (and for `synthesis_input` where a model uses it)
    noise = "uniform"

    #: Models that use a side-information image take it as a third argument `side` (B,3,H,W):
    #: in `synthesis` if `side_info_at_decoder`, in `analysis` if `side_info_at_encoder`.
    side_info_at_encoder = False
    side_info_at_decoder = False

    # --- the entropy model ---------------------------------------------------------------------

    def hyper_analysis(self, y: torch.Tensor, beta: torch.Tensor) -> torch.Tensor:
        # h_a sees the gained latents, so z carries their β-dependent scale to h_s.
        return self.h_a(y).float() * self.hyper_gain(beta)

    def split(self, raw: torch.Tensor) -> mixture.MixtureParams:
        return mixture.split_params(raw, self.config.latent_channels, self.components)

    def z_prior(self, shape: torch.Size, dtype: torch.dtype = torch.float32) -> mixture.MixtureParams:
        """The factorized prior of z broadcast to shape (B, C, H, W) as (B, K, C, H, W) tensors."""
        b, c, h, w = shape

        def expand(p: torch.Tensor) -> torch.Tensor:
            return p.to(dtype)[None, :, :, None, None].expand(b, -1, c, h, w)

        scales = self.z_log_scales.exp().clamp(mixture.SCALE_MIN, mixture.SCALE_MAX)
        return mixture.MixtureParams(expand(self.z_logits), expand(self.z_means), expand(scales))

    def y_prior(self, z_hat: torch.Tensor, beta: torch.Tensor) -> mixture.MixtureParams:
        """Per-element mixture parameters of ŷ, predicted from the quantized hyper-latents."""
        return self.split(self.h_s(z_hat / self.inverse_hyper_gain(beta).to(z_hat.dtype)))

    # --- training -------------------------------------------------------------------------------

    def forward(self, x: torch.Tensor, beta: torch.Tensor, side: torch.Tensor | None = None) -> dict:
        """Training pass. Returns the reconstruction and the bits of y and z per image (B,).
        `side`: the side-information image, for the models that use it."""
        y, z = self.analysis(x, beta, side) if self.side_info_at_encoder else self.analysis(x, beta)
        z_noisy = z + torch.empty_like(z).uniform_(-0.5, 0.5)
        z_bits = mixture.bits(mixture.bin_likelihood(z_noisy, self.z_prior(z.shape)))
        y_params = self.y_prior(round_ste(z), beta)
        y_noisy = y + quantization_noise(y, self.noise)
        y_bits = mixture.bits(mixture.bin_likelihood(y_noisy, y_params))
        y_synth = self.synthesis_input(y, y_noisy)
        x_hat = self.synthesis(y_synth, beta, side) if self.side_info_at_decoder else self.synthesis(y_synth, beta)
        return {"x_hat": x_hat, "y_bits_per_image": y_bits, "z_bits_per_image": z_bits}
