"""The flow codec with a side view at the decoder (distributed source coding on FlowCodec).

The encoder and the entropy model are the flow codec's, blind to the side view s. Only the
decoder uses s, in two places (the Wyner–Ziv decoder: quantization cell from the file, detail
from the side view)::

    ŷ ──f⁻¹──► x̂₀ ──block matching against s (1/2 res), refined at full res──► d, cost
    s ──warp by d──► s̃ ──f·gain──► y_s           (the aligned side view in latent space)
    ŷ₁ = ŷ + tanh(w(ŷ − y_s, agreement, β)) ⊙ clamp(y_s − ŷ, −½, ½)
    x̂ = fusion(f⁻¹(ŷ₁), s̃, s̃ warped by d ± 1 px, agreement)

* **In the latents**: the file says that y lies in the rounding cell [ŷ − ½, ŷ + ½] of every
  latent; the side view says where in the cell, where it is trustworthy. The flow is invertible,
  so the decoder can push the aligned side view through f and read its latents y_s. The network
  w decides per latent how far to move from the cell's centre towards y_s, and the move can never
  leave the cell: a wrong side view costs at most the quantization error that the file allows
  in the latents.
* **In the pixels**: a small CNN after f⁻¹ corrects what the latent step cannot (the side view's
  detail where it agrees with the reconstruction), as in the previous generation's
  hyperprior-based models.
* **Alignment** (`layers/stereo.py`): classical block matching of x̂₀ against s, a cost volume
  over every disparity at 1/2 resolution, then a full-resolution refinement that tries sub-pixel
  offsets around it. It has no parameters: on held-out Middlebury pairs it aligned the side view
  5-8 dB better (PSNR of s̃ against the left view) than the learned 1/4-resolution matcher of the
  hyperprior-based models. The block's mean absolute difference at the chosen disparity says
  where the views agree: agreement = exp(−cost / `agreement_scale`), which both networks see.

Training minimizes D(x, x̂(ŷ, s)) + β·R(ŷ) with the encoder (the flow itself) blind to s: the
distributed objective. The shipped side stage trained on the frozen flow (`--train-only`), so
only the decoder learned; training the flow with it too would let the encoder learn to spend
fewer bits on what the decoder can borrow (not done yet). The probability tables come from ẑ (and earlier slices of ŷ) only,
so a wrong or missing side view can never desynchronize the range decoder.

Joint mode (`dsc-joint`, the upper bound): the same weights and decoder, and an encoder that sees
s too. The flow's analysis must stay the exact inverse of the synthesis, so the encoder does not
take s as an input; it uses s to choose the integers, refining ŷ by gradient steps on
D(x, x̂(ŷ, s)) + β·R (`codec/refine.py`, the encoder's effort), which only an encoder holding s
can compute. So a joint model always codes at effort ≥ 1 (`min_effort`).

Every new output layer starts at zero: built on the flow's weights, the model is exactly the
flow codec at step 0 (tested).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from flowcodec_cli.models.flow import FlowCodec, FlowConfig
from flowcodec_cli.models.layers.stereo import SEARCH_OFFSETS, SideFusion, match, warp_horizontally

MODES = ("distributed", "joint")


@dataclass(frozen=True)
class FlowSideInfoConfig(FlowConfig):
    """The flow's fields plus the decoder's side-information stage."""

    mode: str = "distributed"   # "distributed" (decoder only) or "joint" (the encoder too)
    min_disparity: int = -8     # pixels; the side view is normally the right camera (d ≥ 0)
    max_disparity: int = 200
    match_factor: int = 2       # block matching runs at 1/match_factor resolution
    match_window: int = 5       # its block size there, in pixels
    agreement_scale: float = 0.05  # a block cost (mean |difference|, pixels in [0, 1]) of this
                                   # size gives agreement e⁻¹
    search_offsets: tuple[float, ...] = SEARCH_OFFSETS
    fusion_width: int = 48
    refine_offsets: tuple[int, ...] = (-1, 1)  # extra side warps the fusion sees, at d ± δ px
    latent_width: int = 96

    def __post_init__(self):
        super().__post_init__()
        object.__setattr__(self, "search_offsets", tuple(self.search_offsets))
        object.__setattr__(self, "refine_offsets", tuple(self.refine_offsets))
        if self.mode not in MODES:
            raise ValueError(f"mode must be one of {MODES}, not {self.mode!r}")


class LatentPull(nn.Module):
    """How far each latent moves from its rounding cell's centre towards the side view's latent.

    Inputs per latent position: the clamped pull y_s − ŷ of every channel, its magnitude, the
    views' agreement and the rate. Output: ŷ + tanh(w) ⊙ pull, inside the cell by construction.
    The last layer starts at zero, so the untrained stage leaves ŷ as it is."""

    def __init__(self, channels: int, width: int):
        super().__init__()
        self.net = nn.Sequential(
            nn.Conv2d(2 * channels + 2, width, 3, padding=1), nn.LeakyReLU(0.1),
            nn.Conv2d(width, width, 3, padding=1), nn.LeakyReLU(0.1),
            nn.Conv2d(width, channels, 1),
        )
        nn.init.zeros_(self.net[-1].weight)
        nn.init.zeros_(self.net[-1].bias)

    def forward(self, y_hat: torch.Tensor, y_side: torch.Tensor, agreement: torch.Tensor,
                rate: torch.Tensor) -> torch.Tensor:
        pull = (y_side - y_hat).clamp(-0.5, 0.5)
        agreement = F.adaptive_avg_pool2d(agreement, y_hat.shape[2:])
        rate = rate.reshape(-1, 1, 1, 1).expand(-1, 1, *y_hat.shape[2:]).to(y_hat.dtype)
        w = self.net(torch.cat([pull, pull.abs(), agreement.to(y_hat.dtype), rate], 1))
        return y_hat + torch.tanh(w) * pull


class FlowSideInfoCodec(FlowCodec):
    """The flow codec whose synthesis borrows from a side view (see the module docstring)."""

    name = "flow-side-info"
    config_class = FlowSideInfoConfig
    side_info_at_decoder = True
    # nearest rounding: the decoder moves ŷ towards the side view's latents, so a unit of ŷ
    # does not cost what it costs the flow (codec/rdoq.py's rounding is not measured here)
    rdoq = False

    def __init__(self, config: FlowSideInfoConfig = FlowSideInfoConfig()):
        super().__init__(config)
        self.side_info_at_encoder = config.mode == "joint"
        self.min_effort = 1 if self.side_info_at_encoder else 0
        self.latent_pull = LatentPull(config.latent_channels, config.latent_width)
        self.fusion = SideFusion(config.fusion_width, len(config.refine_offsets))

    def analysis(self, x: torch.Tensor, beta: torch.Tensor,
                 side: torch.Tensor | None = None) -> torch.Tensor:
        """The flow's analysis; a joint encoder uses the side view only to refine ŷ (refine.py)."""
        return super().analysis(x, beta)

    def align(self, x0: torch.Tensor, side: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Where the side view's content is, seen from the reconstruction x̂₀: the disparity (px,
        full resolution) and the views' agreement there, both (B,1,H,W)."""
        c = self.config
        disparity, cost = match(x0, side, c.min_disparity, c.max_disparity, c.match_factor,
                                c.match_window, c.search_offsets)
        return disparity, torch.exp(-cost / c.agreement_scale)

    def synthesis(self, y_hat: torch.Tensor, beta: torch.Tensor, side: torch.Tensor) -> torch.Tensor:
        """ŷ → x̂₀ → align s → move ŷ inside its cells towards s's latents → f⁻¹ → fusion."""
        with torch.no_grad():  # x̂₀ only says where to look
            x0 = super().synthesis(y_hat, beta)
        side = side.to(x0.dtype)
        disparity, agreement = self.align(x0, side)
        aligned = warp_horizontally(side, disparity)
        with torch.no_grad():  # a target for the latents, not a path for the flow's gradients
            y_side = self.analysis(aligned, beta)
        y1 = self.latent_pull(y_hat, y_side.to(y_hat.dtype), agreement, self._rate(beta))
        x1 = super().synthesis(y1, beta)
        hypotheses = [warp_horizontally(side, disparity + delta) for delta in self.config.refine_offsets]
        return self.fusion(x1, aligned, agreement, hypotheses)
