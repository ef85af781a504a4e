"""Building blocks shared by the models: strided convolutions, GDN, and rate gains.

Why these blocks: GDN (generalized divisive normalization, Ballé et al. 2016) gaussianizes
natural-image features far better per parameter than ReLU, which matters for a model that must
train in CPU-hours. Gain vectors (Cui et al. 2021) make one set of weights variable-rate: the
latents are scaled per channel by a gain that depends on β before rounding, so a larger β means
a coarser effective quantization step.
"""

from __future__ import annotations

import math

import torch
from torch import nn
import torch.nn.functional as F


def conv(cin: int, cout: int, kernel: int = 5, stride: int = 2) -> nn.Conv2d:
    """A 'same'-padded convolution that downsamples by `stride`."""
    return nn.Conv2d(cin, cout, kernel, stride=stride, padding=kernel // 2)


def deconv(cin: int, cout: int, kernel: int = 5, stride: int = 2) -> nn.ConvTranspose2d:
    """The exact spatial mirror of `conv`: upsamples by `stride`."""
    return nn.ConvTranspose2d(
        cin, cout, kernel, stride=stride, padding=kernel // 2, output_padding=stride - 1
    )


class SubpixelConvTranspose2d(nn.ConvTranspose2d):
    """`deconv`'s layer computed, outside training, as one ordinary convolution with stride²
    times the output channels, one group per output phase (sub-pixel position), then
    `pixel_shuffle`: each phase's kernel holds the taps of the transposed kernel that reach it,
    and zeros where a tap reaches another phase.

    Why: without oneDNN (the coding path, codec/pipeline.py) ATen's transposed convolution runs
    on one thread and streams a (C_out·k², H·W) column buffer through memory. h_s's 192 → 288
    layer in float64, on a Kodak image, took 53 ms on 2 threads and 40 ms this way. Each output
    is the same sum of the same products (and exact zeros), taken in another order: float64
    results differ in the last bits, which moves a snapped table parameter (codec/entropy.py)
    about as rarely as a different CPU would, and the parameter CRC refuses a file if it ever
    does. Made from a trained layer by `of`, for a coding copy that is never trained (its
    kernel is built once); training keeps the stock layer.
    """

    @classmethod
    def of(cls, layer: nn.ConvTranspose2d) -> "SubpixelConvTranspose2d":
        stride, padding, output_padding = layer.stride[0], layer.padding[0], layer.output_padding[0]
        kernel = layer.kernel_size[0]
        if (layer.stride != (stride, stride) or layer.padding != (padding, padding)
                or layer.kernel_size != (kernel, kernel) or layer.groups != 1
                or layer.dilation != (1, 1) or kernel - 2 * padding + output_padding != stride):
            raise ValueError("only `deconv`'s layers (output size = stride × input) are sub-pixel")
        new = cls(layer.in_channels, layer.out_channels, kernel, stride=stride, padding=padding,
                  output_padding=output_padding, device="meta")
        new.weight, new.bias = layer.weight, layer.bias
        new.register_buffer("phase_kernel", new._phase_kernel().detach(), persistent=False)
        return new.train(layer.training)

    def _taps(self, phase: int) -> dict[int, int]:
        """{input offset (input index − output index // stride): kernel tap} for the outputs of
        `phase` along one axis."""
        stride, padding = self.stride[0], self.padding[0]
        return {(phase + padding - tap) // stride: tap for tap in range(self.kernel_size[0])
                if (tap - phase - padding) % stride == 0}

    def _phase_kernel(self) -> torch.Tensor:
        """(C_out·stride², C_in, r, r): each output phase's correlation kernel over offsets
        −reach … reach (zero where no tap lands), channels ordered for `pixel_shuffle`."""
        stride = self.stride[0]
        taps = [self._taps(phase) for phase in range(stride)]
        reach = max(abs(offset) for phase in taps for offset in phase)
        size = 2 * reach + 1
        kernel = self.weight.new_zeros(self.out_channels, stride, stride, self.in_channels, size, size)
        for row in range(stride):
            for col in range(stride):
                for dr, tr in taps[row].items():
                    for dc, tc in taps[col].items():
                        kernel[:, row, col, :, dr + reach, dc + reach] = self.weight[:, :, tr, tc].T
        return kernel.flatten(0, 2)

    def forward(self, x: torch.Tensor, output_size=None) -> torch.Tensor:
        if self.training or output_size is not None:
            return super().forward(x, output_size)
        stride = self.stride[0]
        bias = self.bias.to(x.dtype).repeat_interleave(stride * stride)
        reach = self.phase_kernel.shape[-1] // 2
        phases = F.conv2d(x, self.phase_kernel.to(x.dtype), bias, padding=reach)
        return F.pixel_shuffle(phases, stride)


class GDN(nn.Module):
    """Generalized divisive normalization: y_i = x_i / sqrt(beta_i + sum_j gamma_ij x_j^2).

    `inverse=True` gives IGDN (multiply instead of divide), used in the synthesis transform.
    beta and gamma are kept non-negative by squaring a free parameter (with a small pedestal),
    which is the reparametrization Ballé uses to keep optimisation stable.
    """

    _PEDESTAL = 2.0**-18

    def __init__(self, channels: int, inverse: bool = False):
        super().__init__()
        self.inverse = inverse
        self.beta_raw = nn.Parameter(torch.sqrt(torch.ones(channels) + self._PEDESTAL))
        self.gamma_raw = nn.Parameter(torch.sqrt(0.1 * torch.eye(channels) + self._PEDESTAL))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        channels = x.shape[1]
        beta = self.beta_raw.clamp(min=1e-3) ** 2 - self._PEDESTAL
        gamma = self.gamma_raw.clamp(min=0.0) ** 2 - self._PEDESTAL
        norm = F.conv2d(x * x, gamma.view(channels, channels, 1, 1).to(x.dtype), beta.to(x.dtype))
        norm = torch.sqrt(norm.clamp(min=1e-9))
        return x * norm if self.inverse else x / norm


class RateGain(nn.Module):
    """Per-channel gain as a function of β, for continuous variable rate with one set of weights.

    A small set of anchor β values, log-spaced over the supported range, each owns a learned
    log-gain vector; any β in between interpolates linearly in log β. Encoder and decoder call
    this with the β stored in the `.fcx` header, on the CPU in float64, so both sides get the same
    gain bit for bit.

    The initial gains follow the high-rate rule for uniform quantization: the optimal step size
    grows like sqrt(β), so gain ~ β^(-1/2) (relative to the geometric middle of the range).
    """

    def __init__(self, channels: int, beta_min: float, beta_max: float, anchors: int = 8,
                 exponent: float = -0.5, reference: float | None = None):
        super().__init__()
        log_betas = torch.linspace(math.log(beta_min), math.log(beta_max), anchors, dtype=torch.float64)
        self.register_buffer("log_betas", log_betas, persistent=False)
        # gain = (β / reference)^exponent at initialization; reference defaults to the middle.
        mid = 0.5 * (log_betas[0] + log_betas[-1]) if reference is None else math.log(reference)
        init = (exponent * (log_betas - mid)).float().unsqueeze(1).repeat(1, channels)
        self.log_gain = nn.Parameter(init)

    def forward(self, beta: torch.Tensor) -> torch.Tensor:
        """beta: (B,) tensor -> gains (B, C, 1, 1), in the dtype of `beta`."""
        log_beta = beta.log().clamp(self.log_betas[0].item(), self.log_betas[-1].item())
        position = (log_beta - self.log_betas[0]) / (self.log_betas[1] - self.log_betas[0])
        low = position.floor().clamp(0, len(self.log_betas) - 2)
        frac = (position - low).unsqueeze(1)
        low = low.long()
        table = self.log_gain.to(beta.dtype)
        log_gain = table[low] * (1 - frac) + table[low + 1] * frac
        return log_gain.exp()[:, :, None, None]
