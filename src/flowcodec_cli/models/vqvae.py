"""VQ-VAE: the vector-quantized baseline the flow codec is measured against (issue 19,
objective 3), a residual VQ-VAE with a learned prior over its code indices; with `side_info`, the
conditional VQ-VAE of Neural DSC (seed 004), whose decoder also sees a side view.

Data path (stage numbers 1-based here, 0-based in code)::

    x ──g_a──► y (B, D, H/8, W/8)
    y ──residual VQ (layers/vq.py), first n stages──► i₁ … i_n, each (B, H/8, W/8) in [0, K)
    i_k ──categorical p_k(· | q_<k), q_<k = c₁[i₁] + … + c_{k−1}[i_{k−1}]──► range coder
    q_n = c₁[i₁] + … + c_n[i_n] ──(⊕ si_net(s), side_info only)──g_s──► x̂

- **Rate from β.** The rate is set by n, the number of stages sent. `stages_for_beta` maps the
  project's β to n (β_max → 1 stage, β_min → `stages`, linear in log β), so training, pipeline
  and bench keep speaking β. A file's header carries `beta_for_stages(n)`, the β in the middle
  of n's range (`network_beta`), so the decoder's n never hangs on how a logarithm rounds, and
  bench sweeps those βs, one per stage count (`default_betas`). The training loop draws β per
  sample, so each sample is reconstructed from its own first n stages: quantizer dropout, one
  model for the whole range.
  Why residual VQ: it is the strong VQ baseline (SoundStream, EnCodec), and it spans a rate
  range from one set of weights as the other codecs here do, so the comparison is like for like.
- **Not rate-aware.** The encoder does not see β and nothing trades bits against distortion:
  `distortion_only` (training/loss.py) drops the β·R term, and the loss is the MSE plus this
  model's `aux_loss`: commitment·‖r_k − sg(c_k)‖² (mean over the stages a sample uses) and the
  prior's cross-entropy in bits per dimension, not weighted by β. The prior's inputs are detached,
  so the cross-entropy trains the prior alone; the codebooks learn by EMA.
- **Prior.** Stage k's indices are coded with a categorical whose logits a small CNN computes
  from q_<k at every position (zeros for stage 1), plus a learned per-stage embedding and bias
  (`IndexPrior`). It needs only the stages before k, all decoded already, so a stage decodes in
  parallel: nothing is pixel-serial. `prior_logits` is a pure function (no dropout, no batch
  norm, no state) so that the coding core can evaluate it in float64 on the encoder and the
  decoder alike and build identical tables.
- **Coding** (codec/indices.py): the coding core runs `prior_logits` and `dequantize` on a
  float64 CPU copy (`for_coding`) and turns the logits into integer tables (codec/categorical.py);
  `analysis` and `synthesis` take the β every model takes and ignore it (the stages carry it).
- **Side information** (`side_info=True`, seed 004's SI Net + Cond Net): an encoder-like network
  brings the side view s to the latent resolution, and the decoder sees it concatenated with q_n.
  Unlike seed 004, s is first aligned to the decoder's reconstruction from q_n alone, and
  the SI net grown on a trained model starts as its g_a (`side_features` says why).
  The encoder and the prior stay blind to s (`side_info_at_decoder`), so a wrong or missing side
  view can never desynchronize the range decoder. `vqvae` with `side_info=False` trained on the
  same `--stereo` pairs is the separate control, as `dsc-separate` is for `dsc`.
"""

from __future__ import annotations

import copy
import math
from dataclasses import asdict, dataclass

import torch
import torch.nn.functional as F
from torch import nn

from flowcodec_cli.models.layers.basic import conv, deconv
from flowcodec_cli.models.layers.stereo import match, warp_horizontally
from flowcodec_cli.models.layers.vq import ResidualQuantizer


@dataclass(frozen=True)
class VQVAEConfig:
    """Everything needed to rebuild the architecture; stored next to the weights."""

    width: int = 128            # channels of g_a, g_s (and si_net)
    latent_dim: int = 64        # D: channels of y and of every code vector
    codebook_size: int = 256    # K codes per stage: 8 bits per position per stage before the prior
    stages: int = 12            # residual stages; n = stages at β_min
    commitment: float = 0.25    # weight of ‖r_k − sg(c_k)‖² in the loss
    ema_decay: float = 0.99     # of the codebooks' running means
    dead_steps: int = 100       # a code unused this many steps (of its stage's) is restarted
    prior_hidden: int = 64      # width of the index prior's CNN
    beta_min: float = 0.0001    # β ↔ stage count (`stages_for_beta`)
    beta_max: float = 0.05
    side_info: bool = False     # the decoder also sees a side view (seed 004)
    align_side: bool = True     # side_info: block-match the side view to the decoder's own
                                # first reconstruction before si_net (see `side_features`)

    def to_dict(self) -> dict:
        return asdict(self)


def stages_for_beta(beta, beta_min: float, beta_max: float, stages: int) -> torch.Tensor:
    """The number of stages sent at β (tensor or float): 1 at β ≥ β_max, `stages` at β ≤ β_min,
    linear in log β between, rounded half up. Non-increasing in β. Computed in float64, so the
    encoder and the decoder get the same count from the same β."""
    beta = torch.as_tensor(beta, dtype=torch.float64)
    lo, hi = math.log(beta_min), math.log(beta_max)
    t = ((hi - beta.log()) / (hi - lo)).clamp(0, 1)
    return torch.floor(1 + t * (stages - 1) + 0.5).long()


def beta_for_stages(n: int, beta_min: float, beta_max: float, stages: int) -> float:
    """The β in the middle (in log β) of the βs that send n stages, to 4 significant digits;
    β_max for n = 1 and β_min for n = `stages`. Half a stage from either neighbour, so
    `stages_for_beta` gives n back however the last bit of a logarithm rounds."""
    if n <= 1 or stages <= 1:
        return float(beta_max)
    if n >= stages:
        return float(beta_min)
    lo, hi = math.log(beta_min), math.log(beta_max)
    return float(f"{math.exp(hi - (n - 1) / (stages - 1) * (hi - lo)):.4g}")


class ResidualBlock(nn.Module):
    """x + 1×1(ReLU(3×3(ReLU(x)))), as in the VQ-VAE paper."""

    def __init__(self, width: int):
        super().__init__()
        self.conv3 = nn.Conv2d(width, width, 3, padding=1)
        self.conv1 = nn.Conv2d(width, width, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.conv1(F.relu(self.conv3(F.relu(x))))


def analysis_net(width: int, out: int) -> nn.Sequential:
    """Image (B,3,H,W) → (B,out,H/8,W/8): three stride-2 5×5 convolutions, two residual blocks."""
    return nn.Sequential(
        conv(3, width), nn.ReLU(), conv(width, width), nn.ReLU(), conv(width, width),
        ResidualBlock(width), ResidualBlock(width), nn.ReLU(), nn.Conv2d(width, out, 1),
    )


def synthesis_net(cin: int, width: int) -> nn.Sequential:
    """The mirror of `analysis_net`: (B,cin,h,w) → (B,3,8h,8w)."""
    return nn.Sequential(
        nn.Conv2d(cin, width, 1), ResidualBlock(width), ResidualBlock(width), nn.ReLU(),
        deconv(width, width), nn.ReLU(), deconv(width, width), nn.ReLU(), deconv(width, 3),
    )


class IndexPrior(nn.Module):
    """Logits of p_k(i | q_<k) at every position: 3×3 conv → + stage embedding → ReLU → 3×3 conv
    → + stage bias. Stage 1's context is zeros, so its distribution is the same at every position
    (inside the image; the zero padding makes the border differ)."""

    def __init__(self, dim: int, hidden: int, codes: int, stages: int):
        super().__init__()
        self.conv_in = nn.Conv2d(dim, hidden, 3, padding=1)
        self.stage_embedding = nn.Parameter(torch.zeros(stages, hidden))
        self.conv_out = nn.Conv2d(hidden, codes, 3, padding=1)
        self.stage_bias = nn.Parameter(torch.zeros(stages, codes))

    def forward(self, context: torch.Tensor, stage: torch.Tensor) -> torch.Tensor:
        """context (P,D,h,w) = q_<k of each row's stage k = `stage` (P,), 0-based → (P,K,h,w)."""
        h = F.relu(self.conv_in(context) + self.stage_embedding[stage][:, :, None, None])
        return self.conv_out(h) + self.stage_bias[stage][:, :, None, None]


class VQVAECodec(nn.Module):
    """Residual VQ-VAE with an index prior (see the module docstring).

    Not a `LatentCodec` (models/base.py): there is no hyperprior and no integer grid. It keeps the
    parts of that contract the training loop and the pipeline read: `name`, `config`, `stride`,
    `latent_stride`, the side-information flags, `min_effort`, and `forward`'s dict."""

    name = "vqvae"
    config_class = VQVAEConfig
    stride = 8
    latent_stride = 8
    side_info_at_encoder = False
    min_effort = 0
    #: β sets the stage count, not a rate weight: training/loss.py drops the β·R term and weighs
    #: every sample alike; the prior's bits enter the loss through `aux_loss`, unweighted by β
    distortion_only = True
    #: the coding core codes its code indices (codec/indices.py), not a mixture-coded y: there is
    #: no `entropy_model`, so refinement, operating points and the bound analysis refuse it
    codes_indices = True
    #: grown on trained weights (training/checkpoints.load_grown), si_net starts as g_a: a random
    #: si_net feeding g_s's zero-initialized side half gets no gradient of its own and gives
    #: g_s nothing consistent to learn from (the first vqvae-side learned nothing in 1,452 steps)
    grown_copies = {"si_net": "g_a"}

    def __init__(self, config: VQVAEConfig = VQVAEConfig()):
        super().__init__()
        self.config = c = config
        self.side_info_at_decoder = c.side_info
        self.g_a = analysis_net(c.width, c.latent_dim)
        self.quantizer = ResidualQuantizer(c.stages, c.codebook_size, c.latent_dim, c.ema_decay,
                                           c.dead_steps)
        self.prior = IndexPrior(c.latent_dim, c.prior_hidden, c.codebook_size, c.stages)
        if c.side_info:
            self.si_net = analysis_net(c.width, c.latent_dim)
        self.g_s = synthesis_net(c.latent_dim * (2 if c.side_info else 1), c.width)

    def stages_for_beta(self, beta) -> torch.Tensor:
        """See the module function; on `beta`'s device."""
        c = self.config
        n = stages_for_beta(beta, c.beta_min, c.beta_max, c.stages)
        return n.to(beta.device) if isinstance(beta, torch.Tensor) else n

    def network_beta(self, beta: float) -> float:
        """The β a file's header carries for a requested β: `beta_for_stages` of its stage count
        (the counterpart of the other models' operating points, codec/operating_points.py)."""
        c = self.config
        return beta_for_stages(int(self.stages_for_beta(beta)), c.beta_min, c.beta_max, c.stages)

    @staticmethod
    def default_betas(config: dict) -> tuple[float, ...]:
        """bench's default sweep for weights with this stored config: one β per stage count,
        1 … `stages` (the shared sweep of evaluation/bench/plan.py repeats some counts and skips
        others), ascending."""
        c = VQVAEConfig(**config)
        return tuple(beta_for_stages(n, c.beta_min, c.beta_max, c.stages)
                     for n in range(c.stages, 0, -1))

    def for_coding(self) -> "VQVAECodec":
        """A float64 copy in eval mode: what the coding core builds its tables with
        (`prior_logits` on `dequantize`d contexts). The transforms come along (a few MB) and
        never run in float64."""
        return copy.deepcopy(self).double().eval()

    # -- encoder ------------------------------------------------------------------------------

    def analysis(self, x: torch.Tensor, beta: torch.Tensor | None = None) -> torch.Tensor:
        """x (B,3,H,W) in [0,1], H and W multiples of 8 → y (B,D,H/8,W/8), float32. `beta` is
        ignored (the encoder is blind to it); it is there so the coding core calls every model
        alike."""
        return self.g_a(x - 0.5).float()

    def quantize(self, y: torch.Tensor, stages: int) -> torch.Tensor:
        """The indices (B, stages, h, w) of y's first `stages` stages (eval: nothing learns)."""
        n = torch.full((y.shape[0],), stages, dtype=torch.long, device=y.device)
        training = self.quantizer.training
        try:
            self.quantizer.eval()
            return self.quantizer(y, n)[1]
        finally:
            self.quantizer.train(training)

    # -- what encoder and decoder share -------------------------------------------------------

    def dequantize(self, indices: torch.Tensor) -> torch.Tensor:
        """q = Σ_k c_k[i_k] over the stages in `indices` (B,n,h,w) → (B,D,h,w); n = 0: zeros."""
        return self.quantizer.dequantize(indices)

    def prior_logits(self, stage: int, context: torch.Tensor) -> torch.Tensor:
        """Logits (B,K,h,w) of stage `stage`'s indices (0-based) given context = q_<stage
        (`dequantize(indices[:, :stage])`, zeros for stage 0): a pure function of the context,
        the stage and the weights, in the model's dtype (the coding core runs it on a float64 CPU
        copy, as it does the other models' entropy models)."""
        index = torch.full((context.shape[0],), stage, dtype=torch.long, device=context.device)
        return self.prior(context, index)

    # -- decoder ------------------------------------------------------------------------------

    def synthesis(self, q: torch.Tensor, beta: torch.Tensor | None = None,
                  side: torch.Tensor | None = None) -> torch.Tensor:
        """q (B,D,h,w) → x̂ (B,3,8h,8w), not clamped; with side_info, `side` (B,3,8h,8w) too.
        `beta` is ignored (q holds the stages it chose), as in `analysis`."""
        if self.side_info_at_decoder:
            if side is None:
                raise ValueError("this vqvae decodes with a side view: pass `side`")
            q = torch.cat([q, self.side_features(q, side.to(q.dtype))], 1)
        return self.g_s(q) + 0.5

    def side_features(self, q: torch.Tensor, side: torch.Tensor) -> torch.Tensor:
        """si_net of the side view (B,3,8h,8w), aligned to what q decodes to: (B,D,h,w).

        Why aligned: a stereo side view shows the same content up to ~200 px to the side
        (Middlebury, training pairs alike), and g_s sees ±2 latent positions (±16 px). Seed 004
        concatenates the raw view's features; here the decoder first decodes q
        alone (the side half of g_s's input at zero), block-matches the side view against that
        (`layers/stereo.match`, no parameters, as `dsc` does) and warps it into place. si_net
        starts as a copy of g_a (`grown_copies`), so its features are the latents of the aligned
        view: what the codes are a quantized version of."""
        if self.config.align_side:
            with torch.no_grad():
                first = self.g_s(torch.cat([q, torch.zeros_like(q)], 1)) + 0.5
                disparity, _ = match(first, side)
            side = warp_horizontally(side, disparity)
        return self.si_net(side - 0.5)

    # -- training -----------------------------------------------------------------------------

    def index_bits(self, indices: torch.Tensor, contexts: torch.Tensor,
                   stages: torch.Tensor) -> torch.Tensor:
        """The prior's cross-entropy in bits per image (B,), over each sample's first `stages`
        stages: indices (B,S',h,w) and contexts (S',B,D,h,w) from the quantizer."""
        b, s = indices.shape[:2]
        used = torch.arange(s, device=indices.device)[None] < stages[:, None]   # (B, S')
        sample, stage = used.nonzero().unbind(1)                                 # (P,), (P,)
        logits = self.prior(contexts[stage, sample], stage)                     # (P, K, h, w)
        nats = F.cross_entropy(logits.float(), indices[sample, stage], reduction="none")
        return torch.zeros(b, device=indices.device).index_add(0, sample, nats.sum((1, 2))) / math.log(2)

    def forward(self, x: torch.Tensor, beta: torch.Tensor, side: torch.Tensor | None = None) -> dict:
        """Training pass: each sample through its `stages_for_beta(β)` stages. Returns x̂, the
        prior's bits per image (for the log), zero z bits, and `aux_loss` (B,): commitment plus
        the prior's cross-entropy in bits per dimension (see the module docstring)."""
        stages = self.stages_for_beta(beta)
        y = self.analysis(x)
        y_hat, indices, contexts, commitment = self.quantizer(y, stages)
        bits = self.index_bits(indices, contexts, stages)
        x_hat = self.synthesis(y_hat, side=side)
        pixels = x.shape[2] * x.shape[3]
        aux = self.config.commitment * commitment + bits / (3 * pixels)
        return {"x_hat": x_hat, "y_bits_per_image": bits.detach(),
                "z_bits_per_image": torch.zeros_like(bits), "aux_loss": aux, "stages": stages}
