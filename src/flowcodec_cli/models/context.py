"""Channel-conditional context and latent residual prediction (Minnen & Singh, ICIP 2020), grown
onto the hyperprior entropy model.

    ŷ is split into channel slices, decoded one after another (coarse channels first):

    slice i:  h_s(ẑ) params of slice i ──► + context_i(ŷ of slices < i) ──► tables of slice i
              ŷ_i ──► + ½·tanh(lrp_i(ŷ of slices ≤ i)) ──► synthesis

The context networks feed tables, so the codec runs them in float64 (the entropy model's coding
copy); the residual predictors feed only the synthesis and run in float32 like it.

Decoding stays parallel inside a slice (every element of a slice is coded with one set of tables);
only the slices are sequential. The last layer of every network here starts at zero, so a grown
model computes exactly what the model it was grown from computed until training moves it.

Slices are contiguous runs of `order`, a permutation of the latent channels (by default the
identity; `context_order` of a model's config puts the coarse, high-energy channels first).
"""

from __future__ import annotations

import torch
from torch import nn

from flowcodec_cli.models.layers.basic import conv


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
                 order: tuple[int, ...], hidden: int, residual_prediction: bool = True):
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
        return grouped[:, :, self.channels(index)].reshape(b, -1, h, w)

    def corrected_raw(self, raw: torch.Tensor, y_hat: torch.Tensor, index: int) -> torch.Tensor:
        """Slice `index`'s raw parameters, corrected by the slices decoded before it."""
        own = self.slice_raw(raw, index)
        if index == 0:
            return own
        return own + self.context[index - 1](self.decoded(y_hat, index).to(own.dtype))

    def refined(self, y_hat: torch.Tensor) -> torch.Tensor:
        """ŷ plus the predicted rounding residual of every slice, |residual| < ½."""
        out = y_hat.clone()
        for i, net in enumerate(self.lrp):
            residual = 0.5 * torch.tanh(net(self.decoded(y_hat, i + 1)).to(y_hat.dtype))
            out[:, self.channels(i)] = y_hat[:, self.channels(i)] + residual
        return out
