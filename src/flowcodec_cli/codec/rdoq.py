"""Rate-distortion optimized rounding (RDOQ): how the encoder turns a tile's latents y into the
integers ŷ it codes, at every effort level (effort > 0 starts its refinement from these).

Rounding to the nearest integer minimizes the distortion alone. A latent near the middle of two
integers costs about the same distortion either way, but often far fewer bits one way: the side
nearer its mixture's mode. So for each element the encoder picks floor(y) or ceil(y), whichever
has the lower

    (y − q)² · d_c  +  w · β · bits(q)

with bits(q) from the slice's own tables (exactly the decoder's: built from ẑ and the slices
already chosen, so each slice is chosen after the one before it, and with the checkerboard each
half of a slice after the other, anchors first), β the user's (the objective the operating points
promise, `operating_points.py`), and d_c the model's squared pixel error per unit of channel c
(`rounding_distortion`: for the flow its quantization step squared, exact for an orthonormal f).
Classical encoders do the same with their coefficients (RDOQ in HEVC and AV1's trellis); the
decoder and the format do not change.

Why w = 0.25 and not the 1 of the Lagrangian: the choice is greedy per slice and ignores two
costs of leaving the nearest integer: later slices' tables are predicted from these values (the
context model), and the residual predictor (LRP) learned nearest rounding's residuals. Measured
with real files on 320x448 central crops of the held-out Middlebury left views (never Kodak;
`python scripts/rdoq_check.py`, docs/flow.md "Rounding"), BD-rate (PSNR) against nearest rounding
over β 0.0005-0.05, on 8 views: w = 0.15, 0.25, 0.5, 1 → −0.70%, −0.75%, −0.27%, +2.11%; on the
other 7 views at w = 0.25: −0.91%. The saving is at low rates (9% fewer bytes for 0.4 dB at
β = 0.05, where the curve's slope makes that a gain), where the flow is weakest.

Only models that say what a unit of their latents costs in pixels round this way (`rdoq`, and
`rounding_distortion`: the flow); the hyperprior (a non-linear synthesis) and the side-information
flows (their decoder moves ŷ towards the side view: not measured) keep nearest rounding. Caches
of encoded results key on `cache_tag`, so a change of RATE_WEIGHT never reuses old files.

Determinism: float64 elementwise arithmetic on the CPU, the same choice with any thread count.
"""

from __future__ import annotations

import torch

from flowcodec_cli.models import mixture

RATE_WEIGHT = 0.25
"""w above: the weight of a choice's bits against its squared error (measured, see above)."""


class SliceRounding:
    """One tile's choices, made segment by segment (a channel slice, or with the checkerboard
    half of one) as the coder learns each segment's tables."""

    def __init__(self, y: torch.Tensor, distortion: torch.Tensor, beta: float):
        self.y = y.detach().cpu().double()                # (1, C, h, w), unrounded, gained
        self.distortion = distortion.detach().cpu().double()  # (1, C, 1, 1): d_c
        self.beta = beta

    def __call__(self, segment, params: mixture.MixtureParams) -> torch.Tensor:
        """The integers (1, c, n) of `segment` (`loaded.Segment`) under its elements' mixtures
        `params` (float64, (1, K, c, n))."""
        y = segment.values(self.y)
        low = torch.floor(y)
        high = low + 1
        d = self.distortion[:, segment.channels].flatten(2)   # (1, c, 1)
        weight = RATE_WEIGHT * self.beta

        def cost(q: torch.Tensor) -> torch.Tensor:
            bits = -torch.log2(mixture.bin_likelihood(q, params))
            return (y - q) ** 2 * d + weight * bits

        return torch.where(cost(high) < cost(low), high, low)  # a tie keeps the lower


def for_tile(model, y: torch.Tensor, network_beta: torch.Tensor, beta: float) -> SliceRounding | None:
    """The rounding of a tile's latents y (None: nearest, for a model without `rdoq`)."""
    if not getattr(model, "rdoq", False):
        return None
    return SliceRounding(y, model.rounding_distortion(network_beta), beta)


def cache_tag(model_class: type) -> str:
    """What a cache of a kind of model's files keys on besides its weights: the rounding."""
    return f"-rdoq{RATE_WEIGHT:g}" if getattr(model_class, "rdoq", False) else ""
