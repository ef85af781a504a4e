"""The entropy model of the latents: a mean-scale Gaussian-mixture hyperprior, one component that
training and coding share.

    y ──h_a──► z ──×hgain(β)──► round ──► ẑ ──÷hgain(β)──h_s──► (w, μ, σ) of every ŷ element
                                          ▲
                     factorized prior ────┘ (one K-mixture per channel of z)

The contract between a model and the coding core (`codec/pipeline.py`) is this component plus the
model's own transforms (`models/base.py`). The component provides, in any float dtype:

- `hyper_analysis(y, β) → z`: the unrounded, gained hyper-latents of gained latents y.
- `z_prior(shape, dtype) → MixtureParams` (B, K, C, H, W): the factorized prior of ẑ. Its
  parameters are computed in float32 whatever `dtype` is asked for, so the encoder and decoder,
  and training, see the same numbers.
- `y_prior(ẑ, β) → MixtureParams` (B, K, C, H, W): the mixture of every ŷ element, in the dtype of
  ẑ. The coding core calls it on a float64 copy of this component (`for_coding`), on the CPU, so
  that the tables it feeds are the same bit for bit on every machine and thread count; training
  calls the very same method in float32 / bf16.
- `rounded_bits(ŷ, ẑ, y_params) → (y bits, z bits)` per image: the information content of rounded
  latents, the rate estimate of the codec, the evaluation and the analysis.
- `noisy_bits(y, z, β, noise) → (y bits, z bits, ỹ)`: the training rate, with rounding replaced by
  additive noise (whose density is the bin probability of the discretized mixture).

The state-dict names of this component (h_a, h_s, hyper_gain, inverse_hyper_gain, z_logits,
z_means, z_log_scales) are part of the weights format; `models/base.py` keeps them at the top level
of every weights file.
"""

from __future__ import annotations

import copy

import torch
from torch import nn

from flowcodec_cli.models import mixture
from flowcodec_cli.models.layers.basic import RateGain, conv, deconv


class HyperpriorEntropyModel(nn.Module):
    """h_a: y (latent ch.) → z (hyper ch., 4× smaller); h_s: ẑ → K·3 parameters per y element."""

    #: Downsampling from y to z (two stride-2 layers in h_a).
    stride = 4

    def __init__(self, latent: int, width: int, hyper: int, components: int,
                 beta_min: float, beta_max: float):
        super().__init__()
        self.latent_channels = latent
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
        self.z_logits = nn.Parameter(torch.zeros(components, hyper))
        self.z_means = nn.Parameter(torch.linspace(-1.0, 1.0, components).unsqueeze(1).repeat(1, hyper))
        self.z_log_scales = nn.Parameter(torch.full((components, hyper), 0.5))

    def for_coding(self) -> "HyperpriorEntropyModel":
        """A float64 copy in eval mode: what the coding core builds its tables with."""
        return copy.deepcopy(self).double().eval()

    def hyper_analysis(self, y: torch.Tensor, beta: torch.Tensor) -> torch.Tensor:
        # h_a sees the gained latents, so z carries their β-dependent scale to h_s.
        return self.h_a(y).float() * self.hyper_gain(beta)

    def z_prior(self, shape: torch.Size, dtype: torch.dtype = torch.float32) -> mixture.MixtureParams:
        """The factorized prior of z broadcast to shape (B, C, H, W) as (B, K, C, H, W) tensors."""
        b, c, h, w = shape

        def expand(p: torch.Tensor) -> torch.Tensor:
            return p.to(dtype)[None, :, :, None, None].expand(b, -1, c, h, w)

        scales = self.z_log_scales.float().exp().clamp(mixture.SCALE_MIN, mixture.SCALE_MAX)
        return mixture.MixtureParams(expand(self.z_logits.float()), expand(self.z_means.float()),
                                     expand(scales))

    def y_prior(self, z_hat: torch.Tensor, beta: torch.Tensor) -> mixture.MixtureParams:
        """Per-element mixture parameters of ŷ, predicted from the quantized hyper-latents."""
        raw = self.h_s(z_hat / self.inverse_hyper_gain(beta.to(z_hat.dtype)).to(z_hat.dtype))
        return mixture.split_params(raw, self.latent_channels, self.components)

    def rounded_bits(self, y_hat: torch.Tensor, z_hat: torch.Tensor,
                     y_params: mixture.MixtureParams) -> tuple[torch.Tensor, torch.Tensor]:
        """Information content (bits per image, (B,)) of rounded ŷ under `y_params` and of ẑ."""
        y_bits = mixture.bits(mixture.bin_likelihood(y_hat.to(y_params.means.dtype), y_params))
        z_prior = self.z_prior(z_hat.shape, y_params.means.dtype)
        z_bits = mixture.bits(mixture.bin_likelihood(z_hat.to(z_prior.means.dtype), z_prior))
        return y_bits, z_bits

    def noisy_bits(self, y: torch.Tensor, z: torch.Tensor, beta: torch.Tensor,
                   noise: str) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Training rate: (y bits, z bits) per image with noise for rounding, and the noisy y."""
        z_noisy = z + torch.empty_like(z).uniform_(-0.5, 0.5)
        z_bits = mixture.bits(mixture.bin_likelihood(z_noisy, self.z_prior(z.shape)))
        y_params = self.y_prior(round_ste(z), beta)
        y_noisy = y + quantization_noise(y, noise)
        y_bits = mixture.bits(mixture.bin_likelihood(y_noisy, y_params))
        return y_bits, z_bits, y_noisy


UNIFORM_NOISE_STD = (1 / 12) ** 0.5  # the standard deviation of U(-1/2, 1/2)


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
