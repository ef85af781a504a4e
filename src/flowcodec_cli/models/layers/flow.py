"""Invertible layers for the flow codec: each has `forward` and an exact `inverse`.

Why these: a Glow-like flow (Kingma & Dhariwal 2018) is built from four invertible layers whose
inverses cost the same as their forward passes and need no iterative solver.

- `HaarSqueeze`: the orthonormal 2-D Haar wavelet, (C, H, W) → (4C, H/2, W/2). It is an
  orthogonal matrix per 2×2 block, so it is its own transpose-inverse and preserves squared error:
  quantization error in its output costs exactly that much MSE in its input.
- `ActNorm`: a per-channel affine map (scale kept positive through exp).
- `InvertibleConv1x1`: a learned channel mixing; its inverse is the matrix inverse, computed in
  float64 and used in the weights' own dtype.
- `AffineCoupling`: half of the channels are scaled and shifted by functions of the other half
  (and of β). Inverting needs only the untouched half, so the networks inside never need to be
  inverted. The log-scale is soft-bounded (tanh) so neither direction can amplify quantization
  error by more than e^`SCALE_BOUND` per layer.

The main path (squeeze, ActNorm, 1×1 convolution, the affine update) always runs in float32, even
under bf16 autocast in training: bf16 would add ~1e-2 of error per pass, which is the whole
distortion budget at 40 dB. Only the coupling networks may run in bf16 (their outputs are
functions of the kept half, recomputed identically in both directions).

No log-determinants are computed: the codec's rate is measured on the latents by the
hyperprior, not by a change of variables.
"""

from __future__ import annotations

import torch
from torch import nn
import torch.nn.functional as F

SCALE_BOUND = 1.0


def _float32(x: torch.Tensor) -> torch.Tensor:
    return x if x.dtype == torch.float64 else x.float()


def _no_autocast(x: torch.Tensor) -> torch.autocast:
    """`with _no_autocast(x):` keeps the main path out of bf16 autocast on x's device."""
    return torch.autocast(x.device.type, enabled=False)


class HaarSqueeze(nn.Module):
    """Orthonormal Haar analysis (C,H,W) → (4C,H/2,W/2): per channel LL, LH, HL, HH."""

    def __init__(self, channels: int):
        super().__init__()
        self.channels = channels
        basis = torch.tensor([[[1., 1.], [1., 1.]], [[1., -1.], [1., -1.]],
                              [[1., 1.], [-1., -1.]], [[1., -1.], [-1., 1.]]]) / 2
        self.register_buffer("kernel", basis.unsqueeze(1).repeat(channels, 1, 1, 1), persistent=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        with _no_autocast(x):
            x = _float32(x)
            return F.conv2d(x, self.kernel.to(x.dtype), stride=2, groups=self.channels)

    def inverse(self, y: torch.Tensor) -> torch.Tensor:
        with _no_autocast(y):
            y = _float32(y)
            return F.conv_transpose2d(y, self.kernel.to(y.dtype), stride=2, groups=self.channels)


class ActNorm(nn.Module):
    """y = x · exp(log_scale) + bias, per channel (initialized to the identity)."""

    def __init__(self, channels: int):
        super().__init__()
        self.log_scale = nn.Parameter(torch.zeros(1, channels, 1, 1))
        self.bias = nn.Parameter(torch.zeros(1, channels, 1, 1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x * self.log_scale.exp().to(x.dtype) + self.bias.to(x.dtype)

    def inverse(self, y: torch.Tensor) -> torch.Tensor:
        return (y - self.bias.to(y.dtype)) * (-self.log_scale).exp().to(y.dtype)


class InvertibleConv1x1(nn.Module):
    """y = W x per pixel. W starts as `init` (an orthogonal matrix) or, without one, as a random
    rotation seeded from the layer's shape (Glow's choice)."""

    def __init__(self, channels: int, seed: int = 0, init: torch.Tensor | None = None):
        super().__init__()
        if init is None:
            generator = torch.Generator().manual_seed(1000 * channels + seed)
            init, _ = torch.linalg.qr(torch.randn(channels, channels, generator=generator))
        self.weight = nn.Parameter(init.clone().float())

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        with _no_autocast(x):
            x = _float32(x)
            return F.conv2d(x, self.weight.to(x.dtype)[:, :, None, None])

    def inverse(self, y: torch.Tensor) -> torch.Tensor:
        with _no_autocast(y):
            y = _float32(y)
            inv = torch.linalg.inv(self.weight.double()).to(y.dtype)
            return F.conv2d(y, inv[:, :, None, None])


# Bytes of intermediate products a codec convolution keeps per block of output rows. Why: on
# ATen's im2col + GEMM path (the one that is deterministic for any thread count, see
# codec/pipeline.py) a whole image's im2col matrix or tap products stream through memory; in
# blocks of rows they stay in cache. Measured on one thread: a 7 → 32 3×3 layer on 256×384 took
# 29 ms whole and 11 ms in blocks, the coupling's 32 → 12 output layer 57 ms and 22 ms. Each
# output element is the same dot product either way, so the bits do not change (tests/test_flow.py).
_BLOCK_BYTES = 2 << 20


def _row_blocks(height: int, width: int, floats_per_pixel: int) -> list[tuple[int, int]]:
    """[start, stop) output rows of each block: ~_BLOCK_BYTES of float32 per block, ≥ 4 rows."""
    rows = max(4, _BLOCK_BYTES // (4 * floats_per_pixel * (width + 2)))
    return [(start, min(height, start + rows)) for start in range(0, height, rows)]


class BlockedConv2d(nn.Conv2d):
    """A stride-1, zero-padded k×k convolution that, outside training, runs on blocks of output
    rows (see _BLOCK_BYTES). Training keeps the stock convolution (and its oneDNN speed)."""

    def __init__(self, cin: int, cout: int, kernel: int):
        super().__init__(cin, cout, kernel, padding=kernel // 2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.training:
            return super().forward(x)
        pad, height = self.padding[0], x.shape[2]
        blocks = _row_blocks(height, x.shape[3], self.in_channels * self.kernel_size[0] ** 2)
        if len(blocks) == 1:
            return super().forward(x)
        padded = F.pad(x, (pad, pad, pad, pad))
        weight, bias = self.weight.to(x.dtype), self.bias.to(x.dtype)
        return torch.cat([F.conv2d(padded[:, :, start:stop + 2 * pad], weight, bias)
                          for start, stop in blocks], dim=2)


class TapSumConv2d(BlockedConv2d):
    """A 3×3, stride-1, zero-padded convolution that, outside training, multiplies every kernel
    tap at once and sums nine shifted slices of the product, block of rows by block of rows.

    Why: the codec runs convolutions on ATen's im2col + GEMM path (oneDNN changes its rounding
    with the thread count, see codec/pipeline.py), and that path is slow when a layer has few output
    channels: the coupling's 32 → 12 output layer at the first level took 74 ms on a Kodak image,
    against 15 ms this way (a (9·out × in) by (in × pixels) product is one efficient GEMM).
    It is the same function up to float32 summation order, and deterministic for any thread count.
    With as many outputs as inputs, a 9× wider product does not pay: it is a BlockedConv2d.
    """

    def __init__(self, cin: int, cout: int):
        super().__init__(cin, cout, 3)

    @classmethod
    def of(cls, layer: nn.Conv2d) -> "TapSumConv2d":
        """The same convolution as `layer` (a stride-1, zero-padded 3×3 one), computed this way
        outside training; the parameters are shared."""
        if (layer.kernel_size, layer.stride, layer.padding, layer.groups) != ((3, 3), (1, 1), (1, 1), 1):
            raise ValueError("only stride-1, zero-padded 3×3 convolutions sum taps")
        new = cls(layer.in_channels, layer.out_channels)
        new.weight, new.bias = layer.weight, layer.bias
        return new.train(layer.training)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.training or self.out_channels >= self.in_channels:
            return super().forward(x)
        batch, _, height, width = x.shape
        taps = self.weight.permute(2, 3, 0, 1).reshape(9 * self.out_channels, self.in_channels)
        taps = taps.to(x.dtype)
        out = self.bias.to(x.dtype).view(1, -1, 1, 1).expand(batch, -1, height, width).clone()
        for start, stop in _row_blocks(height, width, 9 * self.out_channels):
            rows = stop - start
            # the block's input rows and its one-pixel zero border (rows only at the image's edges)
            block_in = F.pad(x[:, :, max(0, start - 1):stop + 1],
                             (1, 1, int(start == 0), int(stop == height)))
            products = torch.matmul(taps, block_in.flatten(2)).view(
                batch, 3, 3, self.out_channels, rows + 2, width + 2)
            block = out[:, :, start:stop]
            for row in range(3):
                for col in range(3):
                    block += products[:, row, col, :, row:row + rows, col:col + width]
        return out


class AffineCoupling(nn.Module):
    """x = (x_a, x_b) → (x_a, x_b · exp(s(x_a, β)) + t(x_a, β)).

    The network sees x_a plus one constant channel holding the normalized log β, so the transform
    can adapt to the rate. Its last layer starts at zero: every coupling starts as the identity.
    """

    def __init__(self, channels: int, hidden: int):
        super().__init__()
        self.keep = channels // 2
        change = channels - self.keep
        self.net = nn.Sequential(
            BlockedConv2d(self.keep + 1, hidden, 3), nn.LeakyReLU(inplace=True),
            nn.Conv2d(hidden, hidden, 1), nn.LeakyReLU(inplace=True),
            TapSumConv2d(hidden, 2 * change),
        )
        nn.init.zeros_(self.net[-1].weight)
        nn.init.zeros_(self.net[-1].bias)

    def _scale_shift(self, x_a: torch.Tensor, rate: torch.Tensor):
        rate_map = rate.to(x_a.dtype)[:, None, None, None].expand(-1, 1, *x_a.shape[2:])
        log_s, t = self.net(torch.cat([x_a, rate_map], dim=1)).chunk(2, dim=1)
        log_s = SCALE_BOUND * torch.tanh(log_s.to(x_a.dtype) / SCALE_BOUND)
        return log_s, t.to(x_a.dtype)

    def forward(self, x: torch.Tensor, rate: torch.Tensor) -> torch.Tensor:
        x_a, x_b = x[:, :self.keep], x[:, self.keep:]
        log_s, t = self._scale_shift(x_a, rate)
        return torch.cat([x_a, x_b * log_s.exp() + t], dim=1)

    def inverse(self, y: torch.Tensor, rate: torch.Tensor) -> torch.Tensor:
        y_a, y_b = y[:, :self.keep], y[:, self.keep:]
        log_s, t = self._scale_shift(y_a, rate)
        return torch.cat([y_a, (y_b - t) * (-log_s).exp()], dim=1)


class FlowStep(nn.Module):
    """One Glow step: ActNorm → invertible 1×1 convolution → affine coupling."""

    def __init__(self, channels: int, hidden: int, seed: int, mix_init: torch.Tensor | None = None):
        super().__init__()
        self.norm = ActNorm(channels)
        self.mix = InvertibleConv1x1(channels, seed, mix_init)
        self.coupling = AffineCoupling(channels, hidden)

    def forward(self, x: torch.Tensor, rate: torch.Tensor) -> torch.Tensor:
        return self.coupling(self.mix(self.norm(x)), rate)

    def inverse(self, y: torch.Tensor, rate: torch.Tensor) -> torch.Tensor:
        return self.norm.inverse(self.mix.inverse(self.coupling.inverse(y, rate)))


# Orthonormal colour transform (rows: luma, two colour differences). At initialization it
# decorrelates RGB the way a codec's YCbCr does, but keeps squared error, so D is unchanged.
COLOUR = torch.tensor([[1., 1., 1.], [1., 0., -1.], [1., -2., 1.]]) / torch.tensor([[3.], [2.], [6.]]).sqrt()

# Subband orders the flow steps of one level pass through. A coupling changes the second half
# given the first, so these four orders let every subband be predicted from three different
# sets of the others: {LL, LH}→{HL, HH}, {HL, HH}→{LL, LH}, {LL, HL}→{LH, HH}, {LH, HH}→{LL, HL}.
SUBBAND_ORDERS = ((0, 1, 2, 3), (2, 3, 0, 1), (0, 2, 1, 3), (1, 3, 0, 2))


def wavelet_mix_inits(channels: int, steps: int, colour: bool) -> list[torch.Tensor]:
    """Initial 1×1 matrices for the `steps` flow steps after a Haar squeeze to `channels`.

    Why: with these (and every coupling at its identity) the untrained flow is an orthonormal
    Haar wavelet-packet transform of a decorrelated colour space, a sound transform coder, instead
    of Glow's random rotations, which mix low and high frequencies and destroy energy compaction.
    Each matrix is a permutation (the first also applies `COLOUR` at the first level).
    The squeeze leaves the channels as (source channel, subband) with the subband fastest.
    """
    n = channels // 4
    # label of each position: (subband, source index)
    labels = [(sub, c) for c in range(n) for sub in range(4)]
    mats = []
    for s in range(steps):
        order = SUBBAND_ORDERS[s % len(SUBBAND_ORDERS)]
        target = [(sub, c) for sub in order for c in range(n)]
        where = {label: i for i, label in enumerate(labels)}
        w = torch.zeros(channels, channels, dtype=torch.float64)
        for new, label in enumerate(target):
            w[new, where[label]] = 1.0
        if s == 0 and colour:
            # mix the colour channels of each subband: new (sub, k) = Σ_c COLOUR[k, c]·old (sub, c)
            w = torch.block_diag(*[COLOUR.double()] * 4) @ w
        mats.append(w)
        labels = target
    return mats
