"""Channel-conditional context and latent residual prediction (Minnen & Singh, ICIP 2020), grown
onto the hyperprior entropy model.

    ŷ is split into channel slices, decoded one after another (coarse channels first):

    slice i:  h_s(ẑ) params of slice i ──► + context_i(ŷ of slices < i) ──► tables of slice i
              ŷ_i ──► + ½·tanh(lrp_i(ŷ of slices ≤ i)) ──► synthesis

With `checkerboard` (He et al., CVPR 2021, inside each slice as in ELIC), every slice is coded in
two halves: its anchors (row + column even) under the tables above, then the other half, whose
parameters `spatial_i` also corrects from the anchors of the same slice around it (a 3×3
neighbourhood of a non-anchor holds four anchors). Measured before building it: a linear
predictor of a non-anchor's mean from its four anchor neighbours saved 5.9% of y's bits at
β 0.05, 2.6% at 0.008 and 0.6% at 0.0005 on the held-out Middlebury views (fit on the even views,
measured on the odd ones) — the low rates, where the flow is weakest.

The context networks feed tables, so the codec runs them in float64 (the entropy model's coding
copy); the residual predictors feed only the synthesis and run in float32 like it.

Decoding stays parallel inside a slice (or half-slice: the elements of one are coded at once);
only the slices (halves) are sequential. The last layer of every network here starts at zero,
so a grown model computes exactly what the model it was grown from computed until training
moves it.

Nothing is pixel-serial. Slices are contiguous runs of `order`, a permutation of the latent
channels (by default the identity; `context_order` of a model's config puts the coarse,
high-energy channels first).
"""

from __future__ import annotations

import torch
from torch import nn

from flowcodec_cli.models.layers.basic import conv
from flowcodec_cli.models.layers.flow import TapSumConv2d


def checkerboard(height: int, width: int) -> torch.Tensor:
    """The anchors of a slice, (height, width) bool: row + column even (relative to the tile's
    latents, so every tile has the same pattern)."""
    rows, cols = torch.arange(height)[:, None], torch.arange(width)[None, :]
    return (rows + cols) % 2 == 0


def checkerboard_half(values: torch.Tensor, half: int) -> torch.Tensor:
    """The elements of one checkerboard half of values (..., H, W), the anchors (half 0) or the
    rest (1), as (..., H·W/2) in raster order: what a coded half holds. By strided views of
    2 × 2 blocks (a gather by index took 7× longer). H and W must be even: a tile's latent grid
    is padded to the stride of z, a multiple of 4."""
    *lead, height, width = values.shape
    if height % 2 or width % 2:
        raise ValueError(f"checkerboard halves need an even latent grid, not {height}x{width}")
    blocks = values.reshape(*lead, height // 2, 2, width // 2, 2)
    rows = (blocks[..., :, 0, :, half], blocks[..., :, 1, :, 1 - half])  # even rows, odd rows
    return torch.stack(rows, -2).flatten(-3)


def checkerboard_place(target: torch.Tensor, values: torch.Tensor, half: int) -> None:
    """The mirror of `checkerboard_half`: write a half's values (..., H·W/2) into target
    (..., H, W), in place (target must be contiguous)."""
    *lead, height, width = target.shape
    blocks = target.view(*lead, height // 2, 2, width // 2, 2)
    rows = values.reshape(*lead, height // 2, 2, width // 2)
    blocks[..., :, 0, :, half] = rows[..., :, 0, :]
    blocks[..., :, 1, :, 1 - half] = rows[..., :, 1, :]


def _zero_init(layer: nn.Conv2d) -> nn.Conv2d:
    nn.init.zeros_(layer.weight)
    nn.init.zeros_(layer.bias)
    return layer


def _net(cin: int, hidden: int, cout: int) -> nn.Sequential:
    """A 3×3 layer (each element sees its neighbours in the slices already decoded), a 1×1
    layer and a zero-initialized 1×1 output: a small, local, parallel predictor (its cost runs
    on every decode, in float64 for the context)."""
    return nn.Sequential(
        conv(cin, hidden, 3, 1), nn.LeakyReLU(inplace=True),
        conv(hidden, hidden, 1, 1), nn.LeakyReLU(inplace=True),
        _zero_init(conv(hidden, cout, 1, 1)),
    )


class ChannelContext(nn.Module):
    """The per-slice context networks and residual predictors of one entropy model."""

    def __init__(self, channels: int, components: int, sizes: tuple[int, ...],
                 order: tuple[int, ...], hidden: int, residual_prediction: bool = True,
                 checkerboard: bool = False):
        super().__init__()
        order = tuple(order) or tuple(range(channels))
        if sorted(order) != list(range(channels)) or sum(sizes) != channels or min(sizes) < 1:
            raise ValueError(f"context slices {sizes} and order must cover {channels} channels")
        self.params_per_channel = 3 * components
        bounds = [sum(sizes[:i]) for i in range(len(sizes) + 1)]
        for i in range(len(sizes)):
            self.register_buffer(f"channels_{i}", torch.tensor(order[bounds[i]:bounds[i + 1]]),
                                 persistent=False)
        self.sizes = tuple(sizes)
        p = self.params_per_channel
        self.context = nn.ModuleList(
            _net(bounds[i], hidden, p * sizes[i]) for i in range(1, len(sizes)))
        # without residual prediction (the ablation's context-only arm) ŷ goes to f⁻¹ as it is
        self.lrp = nn.ModuleList(_net(bounds[i + 1], hidden, sizes[i])
                                 for i in range(len(sizes) if residual_prediction else 0))
        # with the checkerboard, each slice's non-anchors see the anchors of their own slice
        self.spatial = nn.ModuleList(_net(sizes[i], hidden, p * sizes[i])
                                     for i in range(len(sizes) if checkerboard else 0))

    def sum_taps(self) -> None:
        """Make the table-feeding networks' first layers `TapSumConv2d`s, for the coding copy
        (float64, CPU, no oneDNN): with more inputs than outputs it skips ATen's im2col buffer;
        the last slice's 128 → 32 layer took 19 ms on a Kodak image, 6 ms this way. Same
        function, float64 sums in another order (see `SubpixelConvTranspose2d`)."""
        for net in (*self.context, *self.spatial):
            net[0] = TapSumConv2d.of(net[0])

    @property
    def phases(self) -> int:
        """The coded halves of a slice: anchors then the rest (2), or the whole slice (1)."""
        return 2 if len(self.spatial) else 1

    def channels(self, index: int) -> torch.Tensor:
        """The latent channels of slice `index`, in coding order."""
        return getattr(self, f"channels_{index}")

    def decoded(self, y_hat: torch.Tensor, index: int) -> torch.Tensor:
        """ŷ of slices 0 … index − 1, stacked along channels (B, C_<i, H, W)."""
        return torch.cat([y_hat[:, self.channels(j)] for j in range(index)], 1)

    def slice_raw(self, raw: torch.Tensor, index: int) -> torch.Tensor:
        """The hyper-synthesis output of slice `index`: (B, 3K·C, H, W) → (B, 3K·c_i, H, W)."""
        b, _, h, w = raw.shape
        grouped = raw.view(b, self.params_per_channel, -1, h, w)
        return grouped.index_select(2, self.channels(index)).reshape(b, -1, h, w)

    def corrected_raw(self, raw: torch.Tensor, y_hat: torch.Tensor, index: int) -> torch.Tensor:
        """Slice `index`'s raw parameters, corrected by the slices decoded before it and, with the
        checkerboard, the non-anchors' also by the anchors of slice `index` in ŷ."""
        return self.spatially_corrected(self.channel_corrected(raw, y_hat, index), y_hat, index)

    def channel_corrected(self, raw: torch.Tensor, y_hat: torch.Tensor, index: int) -> torch.Tensor:
        """Slice `index`'s raw parameters, corrected by the slices decoded before it: all of the
        slice's anchors' parameters (and all of a slice's without the checkerboard)."""
        own = self.slice_raw(raw, index)
        if index == 0:
            return own
        return own + self.context[index - 1](self.decoded(y_hat, index).to(own.dtype))

    def spatially_corrected(self, corrected: torch.Tensor, y_hat: torch.Tensor,
                            index: int) -> torch.Tensor:
        """`channel_corrected`'s parameters with the non-anchors' corrected by the anchors of
        slice `index` in ŷ (only the anchors are read); unchanged without the checkerboard."""
        if not len(self.spatial):
            return corrected
        anchors = checkerboard(*y_hat.shape[2:]).to(y_hat.device)
        return torch.where(anchors, corrected,
                           corrected + self.spatial_correction(y_hat, index, corrected.dtype))

    def spatial_correction(self, y_hat: torch.Tensor, index: int, dtype: torch.dtype,
                           half: int | None = None) -> torch.Tensor:
        """What the anchors of slice `index` in ŷ add to the non-anchors' parameters: (B, 3K·c_i,
        H, W), or in one checkerboard half only, (B, 3K·c_i, H·W/2). The coder asks for the
        non-anchors' (half 1): past the 3×3 layer, the network then runs on half the elements."""
        anchors = checkerboard(*y_hat.shape[2:]).to(y_hat.device)
        own = y_hat[:, self.channels(index)].to(dtype) * anchors
        net = self.spatial[index]
        if half is None:
            return net(own)
        return net[1:](checkerboard_half(net[0](own), half).unsqueeze(3)).squeeze(3)

    def refined(self, y_hat: torch.Tensor) -> torch.Tensor:
        """ŷ plus the predicted rounding residual of every slice, |residual| < ½."""
        out = y_hat.clone()
        for i, net in enumerate(self.lrp):
            residual = 0.5 * torch.tanh(net(self.decoded(y_hat, i + 1)).to(y_hat.dtype))
            out[:, self.channels(i)] = y_hat[:, self.channels(i)] + residual
        return out
