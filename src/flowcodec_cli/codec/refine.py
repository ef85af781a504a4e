"""Encoder effort (`encode --effort N`): refining each tile's latents for the image at hand, by
iterative inference (Yang, Bamler & Mandt, NeurIPS 2020).

The analysis transform is amortized: one network pass guesses the latents of any image, and the
rounded guess does not minimize this image's D + β·R. At effort N > 0 the encoder starts from
that guess and takes `effort.STEPS[N]` gradient steps on the tile's continuous latents y, then
codes the best rounded iterate with the unchanged coder. The decoder and the format do not change.

Each step descends a relaxation of the real objective in which rounding is annealed:

    ỹ = soft_round(y, α), α growing from 4 to 16 over the steps (ỹ → round(y))
    R = bits of ỹ under the tables from ẑ = round(h_a(y)) (and, with a context model, from the
        earlier slices of round(y)) + bits of ẑ, each rounding straight-through
    D = MSE of synthesis(refined(ỹ)) against the tile's pixels, clamped to [0, 1] as decoded
        (refined: the model's latent residual prediction, what the decoder adds to ŷ)

and every iterate is scored on the real objective of what a file would hold: ŷ = round(y),
ẑ = round(h_a(y)), the model's bits of both, and the MSE of the decoder's 8-bit pixels. The best
is coded, effort 0's integers (the analysis rounded by `rdoq.py`) included, so effort N is never
worse than effort 0 on the model's own objective (the range coder writes the model's bits ±1%).
The descent itself starts from the unrounded analysis. ẑ follows y at every step.

Why this relaxation (measured on 256x192 crops of held-out Middlebury photos, flow and
hyperprior, β 0.0005-0.02): descending the real objective with straight-through rounding gains
2-6% of D + β·R in its first few steps and then drifts away, because its gradient is the same
anywhere in a rounding bin. Soft rounding's gradient is large near a bin's edge and small at its
centre, so the nearly undecided latents move first: 4-8% in 16 steps. Adam, which moves every
latent by about the same step, gained 4% where plain gradient descent gained 7%. Scoring the
iterates needs the extra decode: descending on hard values with soft rounding's gradient alone
gained 2-3%. The descent converges by about 16 steps (48 steps gain no more).

Which β: the user's, not the network's. `--beta` promises the real D + β·R
(`operating_points.py`); the network runs at the β′ whose rounded output minimized that objective
on held-out photos, so β′ steers the amortized guess and the tables, and the refinement then
minimizes, for this image, exactly the objective the operating-point map was fitted to.

Tiles: each tile is refined on its own window, as it is analysed, so memory stays bounded by the
tile. Only the tile's latents move; the context the window borrows from its neighbours is held at
the rounded analysis (what they code at effort 0; they are refined too, so a tile's edge is
refined against an estimate of its neighbours), and D counts the tile's own pixels. A one-tile
image is refined exactly.

Determinism: a fixed number of steps, no randomness, no clock, and the kernels of the rest of the
coding (no oneDNN: `pipeline.deterministic`); sums that choose the best iterate are taken in a
fixed order. The same input, β and effort give the same bytes, with 1 or 2 threads
(tests/test_effort.py; on a 768x512 photo the two files had the same size and PSNR).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import NamedTuple

import numpy as np
import torch

from flowcodec_cli.codec.effort import MAX_EFFORT, STEPS  # noqa: F401 - the pipeline's refine.STEPS
from flowcodec_cli.codec.tiles import to_rgb
from flowcodec_cli.errors import CodecError
from flowcodec_cli.models import mixture
from flowcodec_cli.models.base import lagrangian
from flowcodec_cli.models.entropy_model import round_ste

STEP_SIZE = 0.002
"""Gradient descent's step on the latents, divided by √steps: more steps, smaller ones
(measured at 2 to 48 steps). In units of the loss `_relaxed` returns."""

SHARPNESS = (4.0, 16.0)
"""α of soft rounding at the first and the last step, geometric in between."""


@dataclass(frozen=True)
class TileWindow:
    """What one tile's refinement sees: the pixels of its window and their analysis."""

    x: torch.Tensor                 # (1, 3, H, W) in [0, 1]: the window (context and padding)
    y: torch.Tensor                 # (1, C, h, w): the window's analysis, gained, unrounded
    latents: tuple[slice, slice]    # the tile's rows and columns of y
    pixels: tuple[slice, slice]     # the tile's image pixels in x (no context, no padding)
    side: torch.Tensor | None       # the side view's window, for a model that decodes with it

    def tile_latents(self, latents: torch.Tensor) -> torch.Tensor:
        return latents[(..., *self.latents)]

    def tile_pixels(self, pixels: torch.Tensor) -> torch.Tensor:
        return pixels[(..., *self.pixels)]


class _Iterate(NamedTuple):
    """One point of the descent: its real objective and the integers a file would hold."""
    objective: float
    y_hat: torch.Tensor
    z_hat: torch.Tensor


def check_supported(model, effort: int) -> None:
    """Refuse an effort level that does not exist, a model without an entropy model (the VQ-VAE,
    whose indices are not latents on a grid), or a model whose encoder cannot compute its
    decoder's distortion (a distributed model decodes with a view its encoder never sees)."""
    if not 0 <= effort <= MAX_EFFORT:
        raise CodecError(f"--effort {effort}: the levels are 0 to {MAX_EFFORT}")
    if effort and getattr(model, "codes_indices", False):
        raise CodecError(f"--effort {effort}: model {model.name!r} has no entropy model to refine "
                         "its latents against (its rate is its number of stages): use --effort 0")
    if effort and model.side_info_at_decoder and not model.side_info_at_encoder:
        raise CodecError(f"--effort {effort}: model {model.name!r} decodes with side information "
                         "its encoder never sees, so its encoder cannot refine (use --effort 0)")


def refine(model, window: TileWindow, network_beta: torch.Tensor, beta: float, steps: int,
           start: tuple[torch.Tensor, torch.Tensor]) -> tuple[torch.Tensor, torch.Tensor]:
    """The tile's (ŷ, ẑ) with the lowest real D + β·R among `start` (what effort 0 codes: the
    analysis, rounded by `rdoq.py`) and `steps` steps from the analysis (see the module
    docstring). `network_beta`: the β the network runs at; `beta`: the user's, the slope of the
    objective."""
    fixed = model.entropy_model.refined(torch.round(window.y))  # the borrowed context
    y = window.tile_latents(window.y).clone()
    y_start, z_start = (t.to(y.device, y.dtype) for t in start)
    best = _scored(model, window, fixed, y_start, z_start, network_beta, beta)
    step_size = STEP_SIZE / math.sqrt(steps)
    for step in range(steps):
        alpha = SHARPNESS[0] * (SHARPNESS[1] / SHARPNESS[0]) ** (step / max(1, steps - 1))
        with torch.enable_grad():
            y.requires_grad_(True)
            loss = _relaxed(model, window, fixed, y, network_beta, beta, alpha)
            # Only y's gradient: the weights are shared and must not accumulate any.
            gradient, = torch.autograd.grad(loss, y)
        y = torch.add(y.detach(), gradient, alpha=-step_size)  # plain gradient descent
        point = _rounded(model, window, fixed, y, network_beta, beta)
        if point.objective < best.objective:  # ties keep the earlier
            best = point
    return best.y_hat, best.z_hat


def soft_round(y: torch.Tensor, alpha: float) -> torch.Tensor:
    """Rounding made smooth (Agustsson & Theis, NeurIPS 2020): the identity as α → 0, round(y)
    as α → ∞; steep near a bin's edge, flat at its centre."""
    floor = torch.floor(y).detach()
    return floor + 0.5 + 0.5 * torch.tanh(alpha * (y - floor - 0.5)) / math.tanh(alpha / 2)


def _relaxed(model, window: TileWindow, fixed: torch.Tensor, y: torch.Tensor,
             network_beta: torch.Tensor, beta: float, alpha: float) -> torch.Tensor:
    """The objective with soft rounding, times 3·pixels / β: a sum over the tile's dimensions
    (so a latent's gradient does not depend on the tile's size) in units of β (the gains make
    the gradient of D + β·R grow like β, so one step size serves every β)."""
    entropy_model = model.entropy_model
    y_soft = soft_round(y, alpha)
    z_hat = round_ste(entropy_model.hyper_analysis(y, network_beta))
    y_params = entropy_model.y_prior(z_hat, network_beta, round_ste(y))
    bits = _bits(y_soft, y_params).sum() + _bits(z_hat, entropy_model.z_prior(z_hat.shape)).sum()
    x_hat = _synthesis(model, window, fixed, entropy_model.refined(y_soft), network_beta)
    x = window.tile_pixels(window.x)
    pixels = x.shape[2] * x.shape[3]
    return lagrangian(((x_hat - x) ** 2).mean(), bits, pixels, beta) * (3 * pixels / beta)


@torch.no_grad()
def _rounded(model, window: TileWindow, fixed: torch.Tensor, y: torch.Tensor,
             network_beta: torch.Tensor, beta: float) -> _Iterate:
    """The real D + β·R of y rounded, as a file would hold it, with the integers."""
    z_hat = torch.round(model.entropy_model.hyper_analysis(y, network_beta))
    return _scored(model, window, fixed, torch.round(y), z_hat, network_beta, beta)


@torch.no_grad()
def _scored(model, window: TileWindow, fixed: torch.Tensor, y_hat: torch.Tensor,
            z_hat: torch.Tensor, network_beta: torch.Tensor, beta: float) -> _Iterate:
    """The real D + β·R of the integers (ŷ, ẑ) of a file."""
    entropy_model = model.entropy_model
    y_bits = _bits(y_hat, entropy_model.y_prior(z_hat, network_beta, y_hat))
    z_bits = _bits(z_hat, entropy_model.z_prior(z_hat.shape))
    x_hat = _synthesis(model, window, fixed, entropy_model.refined(y_hat), network_beta)
    x = window.tile_pixels(window.x)
    objective = lagrangian(_decoded_mse(x_hat, x), _total(y_bits) + _total(z_bits),
                           x.shape[2] * x.shape[3], beta)
    return _Iterate(objective, y_hat, z_hat)


def _synthesis(model, window: TileWindow, fixed: torch.Tensor, tile_latents: torch.Tensor,
               beta: torch.Tensor) -> torch.Tensor:
    """The tile's pixels decoded from its latents (in the window's borrowed context), clamped
    to [0, 1] as the decoder clamps them: no gradient pushes beyond what it shows."""
    latents = fixed.clone()
    latents[(..., *window.latents)] = tile_latents
    if model.side_info_at_decoder:
        x_hat = model.synthesis(latents, beta, window.side)
    else:
        x_hat = model.synthesis(latents, beta)
    return window.tile_pixels(x_hat).clamp(0, 1)


def _bits(values: torch.Tensor, params: mixture.MixtureParams) -> torch.Tensor:
    """The information content of each value's bin (bits, elementwise)."""
    return -torch.log2(mixture.bin_likelihood(values, params))


def _total(bits: torch.Tensor) -> float:
    """A sum that does not depend on the thread count (float64, numpy's fixed pairwise order):
    which iterate is best must not either."""
    return float(np.sum(bits.detach().cpu().double().numpy()))


def _decoded_mse(x_hat: torch.Tensor, x: torch.Tensor) -> float:
    """The MSE of the decoder's 8-bit pixels (`tiles.to_rgb`), exact in integers, on [0, 1]."""
    error = to_rgb(x_hat[0].cpu()).astype(np.int64) - to_rgb(x[0].cpu()).astype(np.int64)
    return float(np.sum(error * error)) / (255.0 ** 2 * error.size)
