"""Building blocks for side information: find where the content is in the other view, and use it.

The side image is a neighbouring view (say the right camera of a stereo pair), not an aligned
copy: a point at column x of the coded (left) view appears at column x − d of the side view,
with a disparity d that varies with depth (up to about 200 px on Middlebury at this size). So
before the decoder can borrow detail from the side view it must align it:

    view, side ──block matching at 1/2 res, every d (winner takes all)──► d₀
               ──best of d₀ + δ at full res, δ ∈ {0, ±½, …, ±2}──► d and its block cost
    side ──warp by d (and d ± 1 px), bilinear, full res──► aligned side hypotheses
    view, hypotheses, agreement ──fusion CNN──► residual correction of the view

Matching is a cost volume over horizontal offsets, the classical stereo tool: O(offsets) per
position, where cross-attention would cost O(width). It has no parameters (a learned matcher of
normalized-correlation features at 1/4 resolution, the previous generation's, aligned the side
view 5-8 dB worse on held-out pairs; see `block_match`).

The fusion's output layer starts at zero, so a side-information stage grown onto trained weights
starts out exactly as the model it grew from.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

def shift_right(x: torch.Tensor, offset: int) -> torch.Tensor:
    """out[..., c] = x[..., c − offset], zero where c − offset is outside the image."""
    if offset == 0:
        return x
    if offset > 0:
        return F.pad(x, (offset, 0))[..., : x.shape[-1]]
    return F.pad(x, (0, -offset))[..., -offset:]


def warp_horizontally(image: torch.Tensor, disparity: torch.Tensor) -> torch.Tensor:
    """out(x, y) = image(x − disparity(x, y), y), bilinear; `disparity` (B,1,h,w) in pixels at any
    resolution is upsampled to the image's."""
    b, _, h, w = image.shape
    disparity = F.interpolate(disparity, size=(h, w), mode="bilinear", align_corners=False)[:, 0]
    ys, xs = torch.meshgrid(torch.arange(h, device=image.device, dtype=disparity.dtype),
                            torch.arange(w, device=image.device, dtype=disparity.dtype), indexing="ij")
    source_x = xs.unsqueeze(0) - disparity
    grid = torch.stack([(2 * source_x + 1) / w - 1, ((2 * ys + 1) / h - 1).expand(b, -1, -1)], -1)
    return F.grid_sample(image, grid.to(image.dtype), mode="bilinear", padding_mode="border",
                         align_corners=False)


class SideFusion(nn.Module):
    """Residual correction of a reconstruction from the aligned side view, at 1/2 resolution.

    Inputs: the reconstruction, the aligned side view, their difference, the match confidence,
    and `hypotheses` more warps of the side view (disparity d̄ + δ for the model's offsets δ).
    Where the views agree the network can copy detail across, where the match is poor
    (occlusions, the image border the side camera does not see) it learns to leave the
    reconstruction alone.
    """

    def __init__(self, width: int = 48, hypotheses: int = 0):
        super().__init__()
        inputs = 4 * (3 + 3 + 3 + 1 + 3 * hypotheses)
        self.net = nn.Sequential(
            nn.Conv2d(inputs, width, 3, padding=1), nn.LeakyReLU(0.1),
            nn.Conv2d(width, width, 3, padding=2, dilation=2), nn.LeakyReLU(0.1),
            nn.Conv2d(width, width, 3, padding=1), nn.LeakyReLU(0.1),
            nn.Conv2d(width, 12, 3, padding=1),
        )
        nn.init.zeros_(self.net[-1].weight)
        nn.init.zeros_(self.net[-1].bias)

    def forward(self, image: torch.Tensor, aligned: torch.Tensor, confidence: torch.Tensor,
                hypotheses: list[torch.Tensor] = ()) -> torch.Tensor:
        confidence = F.interpolate(confidence, size=image.shape[2:], mode="bilinear", align_corners=False)
        stacked = torch.cat([image, aligned, aligned - image, confidence, *hypotheses], 1)
        return image + F.pixel_shuffle(self.net(F.pixel_unshuffle(stacked, 2)), 2)


def block_match(view: torch.Tensor, side: torch.Tensor, min_disparity: int, max_disparity: int,
                factor: int = 2, window: int = 5) -> torch.Tensor:
    """Classical stereo matching, winner takes all: per pixel of `view` (B,3,H,W), the integer
    disparity (in full-resolution pixels, a multiple of `factor`) whose shifted side view has the
    least mean absolute difference over a window × window block, searched at 1/`factor`
    resolution. Returns (B,1,H,W).

    Why not learned features: on held-out Middlebury pairs the learned 1/4-resolution matcher
    aligned the side view to 15-22 dB PSNR against the left view, this plain block matching to
    20-30 dB (measured on the flow's reconstructions; `refine_disparity` adds the last pixel).
    It has no parameters, so it needs no training and is the same on every machine."""
    height, width = view.shape[2:]
    if factor > 1:
        view, side = F.avg_pool2d(view, factor, ceil_mode=True), F.avg_pool2d(side, factor, ceil_mode=True)
    best = torch.full_like(view[:, :1], float("inf"))
    chosen = torch.zeros_like(best)
    for d in range(min_disparity // factor, max_disparity // factor + 1):
        cost = _block_cost(view, shift_right(side, d), window)
        better = cost < best  # ties keep the smaller disparity
        best = torch.where(better, cost, best)
        chosen = torch.where(better, torch.full_like(chosen, float(d * factor)), chosen)
    return F.interpolate(chosen, scale_factor=factor, mode="nearest")[..., :height, :width]


def _block_cost(a: torch.Tensor, b: torch.Tensor, window: int) -> torch.Tensor:
    """Mean absolute difference of a and b over a window × window block around each pixel."""
    return F.avg_pool2d((a - b).abs().mean(1, keepdim=True), window, stride=1,
                        padding=window // 2, count_include_pad=False)


SEARCH_OFFSETS = (-2.0, -1.5, -1.0, -0.5, 0.5, 1.0, 1.5, 2.0)  # sub-pixel steps of `refine_disparity`


def match(view: torch.Tensor, side: torch.Tensor, min_disparity: int = -8, max_disparity: int = 200,
          factor: int = 2, window: int = 5, offsets: tuple[float, ...] = SEARCH_OFFSETS
          ) -> tuple[torch.Tensor, torch.Tensor]:
    """Where each pixel of `view` is in `side`: `block_match` then `refine_disparity`, without
    gradients (a selection). Returns the disparity and its block cost, both (B,1,H,W); the
    defaults suit Middlebury pairs at the size the project codes them."""
    with torch.no_grad():
        view = view.clamp(0, 1)
        coarse = block_match(view, side, min_disparity, max_disparity, factor, window)
        return refine_disparity(view, side, coarse, offsets)


def refine_disparity(view: torch.Tensor, side: torch.Tensor, disparity: torch.Tensor,
                     offsets: tuple[float, ...], window: int = 7) -> tuple[torch.Tensor, torch.Tensor]:
    """Full-resolution refinement of a coarse disparity (B,1,H,W), by block matching: per pixel,
    the one of d, d + δ₁, d + δ₂, … whose warped side view is closest to `view` (mean absolute
    difference over a window × window neighbourhood). Ties keep d. Returns the refined disparity
    and its matching cost (the mean absolute difference, (B,1,H,W)): how well the views agree there.

    Why: coarse matching is a pixel or two off, which blurs every edge borrowed from the side
    view. The choice is made without gradients (a selection, like the classical winner-takes-all);
    the refined disparity is d plus a constant per pixel."""
    candidates = (0.0, *offsets)
    with torch.no_grad():
        costs = torch.cat([_block_cost(warp_horizontally(side, disparity + delta), view, window)
                           for delta in candidates], 1)
        cost, best = costs.min(1, keepdim=True)
    shifts = torch.tensor(candidates, dtype=disparity.dtype, device=disparity.device)
    return disparity + shifts[best], cost
