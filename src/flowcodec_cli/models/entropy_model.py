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
- `hyper_params(ẑ, β) → raw` (B, 3K·C, H, W): what h_s predicts from ẑ, in the dtype of ẑ.
- `slice_count` and `slice_channels(i)`: ŷ is coded in channel slices, one after another (one
  slice of all channels without a context model, `models/context.py` with one).
- `slice_prior(raw, ŷ, i) → MixtureParams` (B, K, c_i, H, W): the mixture of slice i's elements,
  from raw and the slices before i (only those channels of ŷ are read, and with the checkerboard
  slice i's anchors). The coding core computes the same numbers half a slice at a time (below)
  on a float64 copy of this component (`for_coding`), on the CPU, so that the tables it feeds
  are the same bit for bit on every machine and thread count.
- `phases`, `channel_raw(raw, ŷ, i)` and `phase_prior(corrected, ŷ, i, phase)`: how the coder
  codes slice i in `phases` halves (2 with the context model's checkerboard: the anchors, then
  the rest given them), each half's positions and mixtures from the slice's parameters
  corrected by the slices before it, computed once per slice (`codec/loaded.py`).
- `y_prior(ẑ, β, ŷ) → MixtureParams` (B, K, C, H, W): every slice's mixture at once, given all of
  ŷ (what training and evaluation use; the decoder gets the same numbers slice by slice).
- `refined(ŷ) → ŷ′`: ŷ plus the predicted rounding residual (the latent residual
  prediction), what the synthesis decodes; ŷ itself without a context model.
- `rounded_bits(ŷ, ẑ, y_params) → (y bits, z bits)` per image: the information content of rounded
  latents, the rate estimate of the codec, the evaluation and the analysis.
- `noisy_bits(y, z, β, noise) → (y bits, z bits, ỹ)`: the training rate, with rounding
  replaced by additive noise (whose density is the bin probability of the discretized mixture).

The state-dict names of this component (h_a, h_s, hyper_gain, inverse_hyper_gain, z_logits,
z_means, z_log_scales) are part of the weights format; `models/base.py` keeps them at the top level
of every weights file.
"""

from __future__ import annotations

import copy

import torch
from torch import nn

from flowcodec_cli.models import mixture
from flowcodec_cli.models.context import ChannelContext, checkerboard_half
from flowcodec_cli.models.layers.basic import RateGain, SubpixelConvTranspose2d, conv, deconv


class HyperpriorEntropyModel(nn.Module):
    """h_a: y (latent ch.) → z (hyper ch., 4× smaller); h_s: ẑ → K·3 parameters per y element."""

    #: Downsampling from y to z (two stride-2 layers in h_a).
    stride = 4

    def __init__(self, latent: int, width: int, hyper: int, components: int,
                 beta_min: float, beta_max: float, context_slices: tuple[int, ...] = (),
                 context_order: tuple[int, ...] = (), context_hidden: int = 32,
                 context_lrp: bool = True, context_checkerboard: bool = False):
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
        self.context = (ChannelContext(latent, components, tuple(context_slices), tuple(context_order),
                                       context_hidden, context_lrp, context_checkerboard)
                        if context_slices else None)

    def for_coding(self) -> "HyperpriorEntropyModel":
        """A float64 copy in eval mode: what the coding core builds its tables with (h_s's
        transposed convolutions as sub-pixel ones, the context networks' first layers summing
        taps: faster on the coding path, the same functions)."""
        coding = copy.deepcopy(self).double().eval()
        coding.h_s = nn.Sequential(*(SubpixelConvTranspose2d.of(layer)
                                     if isinstance(layer, nn.ConvTranspose2d) else layer
                                     for layer in coding.h_s))
        if coding.context is not None:
            coding.context.sum_taps()
        return coding

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

    def hyper_params(self, z_hat: torch.Tensor, beta: torch.Tensor) -> torch.Tensor:
        """h_s's raw output (B, 3K·C, H, W) from the quantized hyper-latents."""
        return self.h_s(z_hat / self.inverse_hyper_gain(beta.to(z_hat.dtype)).to(z_hat.dtype))

    @property
    def slice_count(self) -> int:
        return len(self.context.sizes) if self.context is not None else 1

    def slice_channels(self, index: int) -> torch.Tensor | slice:
        """The latent channels of slice `index` (all of them without a context model)."""
        return self.context.channels(index) if self.context is not None else slice(None)

    def slice_prior(self, raw: torch.Tensor, y_hat: torch.Tensor | None,
                    index: int) -> mixture.MixtureParams:
        """The mixture of slice `index`, given the slices before it (read from ŷ) and, with the
        checkerboard, the slice's own anchors (they decide only the other half's mixtures)."""
        if self.context is None:
            return mixture.split_params(raw, self.latent_channels, self.components)
        corrected = self.context.corrected_raw(raw, y_hat, index)
        return mixture.split_params(corrected, self.context.sizes[index], self.components)

    @property
    def phases(self) -> int:
        """The halves each slice is coded in: 2 with the checkerboard (anchors first), else 1."""
        return 1 if self.context is None else self.context.phases

    def channel_raw(self, raw: torch.Tensor, y_hat: torch.Tensor, index: int) -> torch.Tensor:
        """Slice `index`'s raw parameters from raw and the slices before it: what both halves of
        a checkerboard slice start from (the coder computes it once per slice)."""
        return raw if self.context is None else self.context.channel_corrected(raw, y_hat, index)

    def phase_prior(self, corrected: torch.Tensor, y_hat: torch.Tensor, index: int,
                    phase: int) -> tuple[int | None, mixture.MixtureParams]:
        """The checkerboard half coded in `phase` of slice `index` (0: the anchors, 1: the rest;
        None: the whole slice, without the checkerboard) and its elements' mixtures (B, K, c, n),
        raster order, from `channel_raw`'s output; the rest are corrected by the anchors in ŷ
        (the correction computed for them alone)."""
        channels = self.latent_channels if self.context is None else self.context.sizes[index]
        if self.phases == 1:
            return None, _flat(mixture.split_params(corrected, channels, self.components))
        chosen = checkerboard_half(corrected, phase)
        if phase:
            chosen = chosen + self.context.spatial_correction(y_hat, index, chosen.dtype, phase)
        return phase, _flat(mixture.split_params(chosen.unsqueeze(3), channels, self.components))

    def y_prior(self, z_hat: torch.Tensor, beta: torch.Tensor,
                y_hat: torch.Tensor | None = None) -> mixture.MixtureParams:
        """Per-element mixture parameters of ŷ from ẑ (and, with a context model, from ŷ itself:
        each slice sees only the slices before it, as the decoder does)."""
        return self.params_given(self.hyper_params(z_hat, beta), y_hat)

    def params_given(self, raw: torch.Tensor, y_hat: torch.Tensor | None) -> mixture.MixtureParams:
        """Every slice's mixture, in the latents' channel order, from raw and ŷ."""
        if self.context is None:
            return self.slice_prior(raw, None, 0)
        parts = [self.slice_prior(raw, y_hat, i) for i in range(self.slice_count)]
        order = torch.cat([self.context.channels(i) for i in range(self.slice_count)])
        inverse = torch.argsort(order)
        return mixture.MixtureParams(*(torch.cat(p, 2)[:, :, inverse] for p in zip(*parts)))

    def refined(self, y_hat: torch.Tensor) -> torch.Tensor:
        """What the synthesis decodes: ŷ plus the predicted rounding residual (LRP)."""
        return y_hat if self.context is None else self.context.refined(y_hat)

    def rounded_bits(self, y_hat: torch.Tensor, z_hat: torch.Tensor,
                     y_params: mixture.MixtureParams) -> tuple[torch.Tensor, torch.Tensor]:
        """Information content (bits per image, (B,)) of rounded ŷ under `y_params` and of ẑ."""
        return self.y_bits(y_hat, y_params), self.z_bits(z_hat, y_params.means.dtype)

    @staticmethod
    def y_bits(y_hat: torch.Tensor, y_params: mixture.MixtureParams) -> torch.Tensor:
        """Bits per image of rounded latents (or one slice of them) under their mixtures."""
        return mixture.bits(mixture.bin_likelihood(y_hat.to(y_params.means.dtype), y_params))

    def z_bits(self, z_hat: torch.Tensor, dtype: torch.dtype = torch.float32) -> torch.Tensor:
        """Bits per image of rounded hyper-latents under the factorized prior."""
        z_prior = self.z_prior(z_hat.shape, dtype)
        return mixture.bits(mixture.bin_likelihood(z_hat.to(dtype), z_prior))

    def noisy_bits(self, y: torch.Tensor, z: torch.Tensor, beta: torch.Tensor, noise: str
                   ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Training rate: (y bits, z bits) per image with noise for rounding, and the noisy y.
        The context sees rounded ŷ (straight-through), as the decoder will."""
        z_noisy = z + torch.empty_like(z).uniform_(-0.5, 0.5)
        z_bits = mixture.bits(mixture.bin_likelihood(z_noisy, self.z_prior(z.shape)))
        raw = self.hyper_params(round_ste(z), beta)
        y_params = self.params_given(raw, round_ste(y) if self.context is not None else None)
        y_noisy = y + quantization_noise(y, noise)
        y_bits = mixture.bits(mixture.bin_likelihood(y_noisy, y_params))
        return y_bits, z_bits, y_noisy


def _flat(params: mixture.MixtureParams) -> mixture.MixtureParams:
    """(B, K, c, H, W) → (B, K, c, H·W): elements in raster order, as a coded segment holds them."""
    return mixture.MixtureParams(*(p.flatten(3) for p in params))


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
