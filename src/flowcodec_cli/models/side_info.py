"""Side-information codecs (distributed source coding): the hyperprior codec plus a second view.

Two ways of using a correlated side image s (neural DSC, Whang et al.; seed 004):

* ``distributed`` (the product, model ``dsc``): the encoder and the entropy model never see s.
  Only the synthesis does::

      x ──g_a──► y ──► ŷ ──(tables from ẑ alone)──► range coder          (as in hyperprior.py)
      ŷ ──g_s──► x̂₀ ──match(x̂₀, s)──► d̄, confidence ──warp s by d̄──► s̃
      x̂ = x̂₀ + fusion(x̂₀, s̃, confidence)

  Training minimizes D(x, x̂(ŷ, s)) + β·R(ŷ) with the encoder blind to s: the distributed
  objective. The encoder is free to spend fewer bits on detail the decoder can borrow from s.

* ``joint`` (the upper bound, model ``dsc-joint``): the encoder sees s too. It aligns s to x
  with its own matcher and adds a convolution of the aligned side view to the first layer of
  g_a, so it can code what s does not explain. The decoder is the distributed one.

The probability tables depend on ẑ only, never on s, so side information cannot desynchronize
the range coder: a wrong side image still decodes, to a worse picture. (A conditional entropy
model p(ŷ | s) would save more bits in the joint setting; it is not built.)

The state-dict names of the hyperprior are kept (g_a, g_s, h_a, h_s, gains), and every new
output layer starts at zero: `flowcodec train --model dsc --init-from weights/hyperprior.safetensors`
starts from exactly the trained hyperprior.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import torch

from flowcodec_cli.models.layers.basic import conv
from flowcodec_cli.models.layers.stereo import DisparityMatcher, SideFusion, warp_horizontally
from flowcodec_cli.models.hyperprior import HyperpriorCodec, HyperpriorConfig

MODES = ("distributed", "joint")


@dataclass(frozen=True)
class SideInfoConfig(HyperpriorConfig):
    """The hyperprior's fields plus where the side information goes."""

    mode: str = "distributed"   # "distributed" (decoder only) or "joint" (encoder and decoder)
    match_features: int = 32
    min_disparity: int = -16    # pixels; the side view is normally the right camera (d ≥ 0)
    max_disparity: int = 192
    fusion_width: int = 48
    refine_offsets: tuple[int, ...] = ()  # extra side warps at d̄ + δ px (e.g. (-2, -1, 1, 2))

    def __post_init__(self):
        object.__setattr__(self, "refine_offsets", tuple(self.refine_offsets))  # JSON gives a list
        if self.mode not in MODES:
            raise ValueError(f"mode must be one of {MODES}, not {self.mode!r}")

    def to_dict(self) -> dict:
        return asdict(self)


class SideInfoCodec(HyperpriorCodec):
    """The hyperprior codec whose synthesis (and, in joint mode, analysis) sees a side view."""

    name = "side-info"
    config_class = SideInfoConfig
    side_info_at_decoder = True

    def __init__(self, config: SideInfoConfig = SideInfoConfig()):
        super().__init__(config)
        self.side_info_at_encoder = config.mode == "joint"
        match = dict(features=config.match_features, min_disparity=config.min_disparity,
                     max_disparity=config.max_disparity)
        self.matcher = DisparityMatcher(**match)
        self.fusion = SideFusion(config.fusion_width, len(config.refine_offsets))
        if self.side_info_at_encoder:
            self.encoder_matcher = DisparityMatcher(**match)
            self.side_analysis = conv(3 + 1, config.channels)  # like g_a[0]: same stride and size
            torch.nn.init.zeros_(self.side_analysis.weight)
            torch.nn.init.zeros_(self.side_analysis.bias)

    def analysis(self, x: torch.Tensor, beta: torch.Tensor,
                 side: torch.Tensor | None = None) -> torch.Tensor:
        """x → y; in joint mode (only) the side view enters the first layer of g_a."""
        if not self.side_info_at_encoder:
            return super().analysis(x, beta)
        disparity, confidence = self.encoder_matcher(x, side)
        aligned = warp_horizontally(side, disparity)
        confidence = torch.nn.functional.interpolate(confidence, size=x.shape[2:], mode="nearest")
        h = self.g_a[0](x) + self.side_analysis(torch.cat([aligned, confidence.to(aligned.dtype)], 1))
        return self.g_a[1:](h).float() * self.gain(beta)

    def synthesis(self, y_hat: torch.Tensor, beta: torch.Tensor, side: torch.Tensor) -> torch.Tensor:
        """ŷ → x̂₀ (the hyperprior's g_s), then the correction borrowed from the side view."""
        x0 = super().synthesis(y_hat, beta)
        # Detached: g_s is trained to reconstruct, not to make its output easy to match.
        disparity, confidence = self.matcher(x0.detach().clamp(0, 1), side)
        aligned = warp_horizontally(side, disparity)
        hypotheses = [warp_horizontally(side, disparity + delta).to(x0.dtype)
                      for delta in self.config.refine_offsets]
        return self.fusion(x0, aligned.to(x0.dtype), confidence.to(x0.dtype), hypotheses)

