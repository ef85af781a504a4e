"""FlowCodec: a Glow-like normalizing flow as the analysis transform, its exact inverse as the
synthesis transform, and the shared Gaussian-mixture hyperprior as the "flexible prior".

Data path (one set of weights, run forwards to encode and backwards to decode)::

    x − ½ ──► [Haar squeeze → S × (ActNorm → 1×1 conv → affine coupling(β))] × L ──► f(x)
    f(x) ──×gain(β)──► y ──round──► ŷ ──(hyperprior GMM tables, range coder; models/entropy_model.py)
    ŷ ──÷gain(β)──► [S × (coupling⁻¹ → 1×1 conv⁻¹ → ActNorm⁻¹) → Haar⁻¹] × L ──► + ½ ──► x̂

With L levels, y has 3·4^L channels at 1/2^L of the image size: the same number of values as
the image, nothing discarded. Without quantization, synthesis(analysis(x)) = x up to float32
rounding (tested, and measured on Kodak by `flowcodec bench`). All the loss is quantization:
the gain sets the step size per channel, and the training loss (proposal §3) is
L = D + β·R with the rounding replaced by dequantization noise on y, which the synthesis sees too.

Why a Haar squeeze: it is orthonormal, so at initialization (every coupling the identity) the
codec is already a Haar-wavelet transform coder, and the couplings learn the non-linear
prediction steps (a learned lifting scheme) on top of it.

β conditioning: per-channel gains (initialized at the high-rate optimum, step = sqrt(6β / ln 2)
for L = D + β·R with R in bits per dimension) and a log-β input to every coupling network.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass

import torch
from torch import nn

from flowcodec_cli.models import mixture
from flowcodec_cli.models.layers.flow import FlowStep, HaarSqueeze, wavelet_mix_inits
from flowcodec_cli.models.layers.basic import RateGain
from flowcodec_cli.models.base import LatentCodec
from flowcodec_cli.models.entropy_model import round_ste


@dataclass(frozen=True)
class FlowConfig:
    """Everything needed to rebuild the architecture; stored next to the weights."""

    levels: int = 3             # L Haar squeezes: y at 1/2^L resolution
    steps: int = 4              # S flow steps per level (the depth ablation varies it)
    hidden: int = 32            # width of the coupling networks at level 1 (doubles per level)
    hyper_width: int = 192      # width of h_a
    hyper_channels: int = 64    # channels of z
    beta_min: float = 0.0001
    beta_max: float = 0.05
    components: int = mixture.COMPONENTS  # K of the Gaussian mixture (ablation: 1)
    noise: str = "uniform"      # training dequantization noise: "uniform" or "gaussian"
    # What f⁻¹ decodes in training: "noise" (the proposal: y + ε, the same ε as the rate term)
    # or "round" (straight-through rounding: the decoder sees what it will see in a file)
    synthesis_input: str = "noise"
    # Initial 1×1 convolutions: "rotation" (Glow: random rotations) or "wavelet" (colour
    # transform + subband permutations: the untrained flow is a Haar wavelet-packet coder)
    mix_init: str = "wavelet"
    # Channel-conditional context (models/context.py): slice sizes in decode order, the channel
    # order they cut (empty: the identity), and the width of their networks. No slices: the
    # plain hyperprior entropy model.
    context_slices: tuple[int, ...] = ()
    context_order: tuple[int, ...] = ()
    context_hidden: int = 32
    context_lrp: bool = True    # latent residual prediction after the slices (ablation: off)
    context_checkerboard: bool = False  # each slice in two halves, anchors first (context.py)

    def __post_init__(self):  # JSON gives lists
        object.__setattr__(self, "context_slices", tuple(self.context_slices))
        object.__setattr__(self, "context_order", tuple(self.context_order))

    @property
    def latent_channels(self) -> int:
        return 3 * 4 ** self.levels

    def to_dict(self) -> dict:
        return asdict(self)


class FlowCodec(LatentCodec):
    """Invertible multi-scale flow + hyperprior entropy model."""

    name = "flow"
    config_class = FlowConfig
    invertible = True  # synthesis(analysis(x)) = x without quantization (bench measures it)
    rdoq = True

    def __init__(self, config: FlowConfig = FlowConfig()):
        super().__init__()
        self.config = config
        self.stride = 2 ** config.levels * 4  # h_a downsamples y twice more
        self.noise = config.noise
        self.squeezes = nn.ModuleList()
        self.levels = nn.ModuleList()
        channels = 3
        for level in range(config.levels):
            self.squeezes.append(HaarSqueeze(channels))
            channels *= 4
            hidden = config.hidden * 2 ** level
            mixes = (wavelet_mix_inits(channels, config.steps, colour=level == 0)
                     if config.mix_init == "wavelet" else [None] * config.steps)
            self.levels.append(nn.ModuleList(
                FlowStep(channels, hidden, seed=10 * level + s, mix_init=mixes[s])
                for s in range(config.steps)))
        m = config.latent_channels
        self.build_entropy_model(m, config.hyper_width, config.hyper_channels, config.components,
                                 config.beta_min, config.beta_max,
                                 context_slices=config.context_slices,
                                 context_order=config.context_order,
                                 context_hidden=config.context_hidden,
                                 context_lrp=config.context_lrp,
                                 context_checkerboard=config.context_checkerboard)
        self.gain = RateGain(m, config.beta_min, config.beta_max, exponent=-0.5,
                             reference=math.log(2) / 6)

    def _rate(self, beta: torch.Tensor) -> torch.Tensor:
        """log β scaled to [-1, 1] over the model's range: the couplings' β input."""
        lo, hi = math.log(self.config.beta_min), math.log(self.config.beta_max)
        return (2 * (beta.log() - lo) / (hi - lo) - 1).clamp(-1, 1)

    def flow(self, x: torch.Tensor, beta: torch.Tensor) -> torch.Tensor:
        """The bijection f: image (B,3,H,W) → (B, 3·4^L, H/2^L, W/2^L)."""
        rate = self._rate(beta)
        h = x.float() - 0.5
        for squeeze, steps in zip(self.squeezes, self.levels):
            h = squeeze(h)
            for step in steps:
                h = step(h, rate)
        return h

    def flow_inverse(self, h: torch.Tensor, beta: torch.Tensor) -> torch.Tensor:
        """f⁻¹, the same layers in reverse order, each inverted."""
        rate = self._rate(beta)
        for squeeze, steps in zip(reversed(self.squeezes), reversed(self.levels)):
            for step in reversed(steps):
                h = step.inverse(h, rate)
            h = squeeze.inverse(h)
        return h + 0.5

    def analysis(self, x: torch.Tensor, beta: torch.Tensor) -> torch.Tensor:
        return self.flow(x, beta) * self.gain(beta)

    def synthesis(self, y_hat: torch.Tensor, beta: torch.Tensor) -> torch.Tensor:
        return self.flow_inverse(y_hat / self.gain(beta).to(y_hat.dtype), beta)

    def rounding_distortion(self, beta: torch.Tensor) -> torch.Tensor:
        """The squared pixel error of a unit change of each latent channel, (1, C, 1, 1), for
        the encoder's rounding (`codec/rdoq.py`): the quantization step squared, 1/gain², exact
        if f were orthonormal (the Haar squeezes are; the couplings and 1×1 mixes only roughly)."""
        return self.gain(beta).double().reciprocal().square()

    def synthesis_input(self, y: torch.Tensor, y_noisy: torch.Tensor) -> torch.Tensor:
        if self.config.synthesis_input == "round":
            return round_ste(y)
        # The proposal's dequantization: the inverse flow decodes the noisy latents.
        return y_noisy
