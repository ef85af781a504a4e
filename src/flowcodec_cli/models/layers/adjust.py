"""The encoder's latent adjustment: a small network that moves the flow's latents before they
are rounded, for a better D + β·R. Encoder only: the decoder never runs it.

Why: a flow codec's analysis is tied to its synthesis (f and f⁻¹ share their weights), so it
cannot learn what a free encoder learns: where leaving a latent off its amortized value pays,
e.g. a small latent pulled into the zero bin when its bits cost more than its distortion saves.
Encode-time refinement (`codec/refine.py`) shows the gap: a few gradient steps per image
lower the held-out BD-rate by about 5% (scripts/effort_check.py). This network amortizes part of
that refinement: it sees the latents y (which determine the image, f being a bijection) and the
rate, and adds Δ, at most one quantization bin either way, to y. The decoder is unchanged: still
the exact inverse flow of ŷ.

Its last layer starts at zero, so a model grown with it is exactly the model without it until
it trains (tests/test_flow.py).
"""

from __future__ import annotations

import torch
from torch import nn

from flowcodec_cli.models.layers.flow import BlockedConv2d

INPUT_BOUND = 4.0
"""The latents are seen clipped to ±INPUT_BOUND bins: what decides a rounding is near zero."""


class LatentAdjust(nn.Module):
    """y (B, C, h, w) in quantization bins, rate (B,) in [-1, 1] → Δ (B, C, h, w), |Δ| < 1."""

    def __init__(self, channels: int, hidden: int):
        super().__init__()
        self.net = nn.Sequential(
            BlockedConv2d(channels + 1, hidden, 3), nn.LeakyReLU(inplace=True),
            nn.Conv2d(hidden, hidden, 1), nn.LeakyReLU(inplace=True),
            BlockedConv2d(hidden, channels, 3),
        )
        nn.init.zeros_(self.net[-1].weight)
        nn.init.zeros_(self.net[-1].bias)

    def forward(self, y: torch.Tensor, rate: torch.Tensor) -> torch.Tensor:
        rate_map = rate.to(y.dtype)[:, None, None, None].expand(-1, 1, *y.shape[2:])
        seen = y.clamp(-INPUT_BOUND, INPUT_BOUND) / INPUT_BOUND
        return torch.tanh(self.net(torch.cat([seen, rate_map], dim=1)))
