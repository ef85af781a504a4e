"""Residual vector quantization (SoundStream, Zeghidour et al. 2021) with EMA codebooks.

    r₁ = y ──nearest code c₁[i₁]──► r₂ = r₁ − c₁[i₁] ──nearest c₂[i₂]──► … ──► q_n = Σ_{k≤n} c_k[i_k]

Each stage quantizes what the stages before it left, so the first n stages are a coarser code of
the same latents: one model spans a rate range by how many stages it sends, and training each
sample on its first n stages only is SoundStream's quantizer dropout.

Why EMA codebooks (van den Oord et al. 2017, appendix A.1) rather than a codebook loss: a code is
the running mean of the residuals assigned to it, which needs no learning rate and keeps codes on
the data. A code that no residual chose for `dead_steps` steps (counting only steps in which its
stage was used) is restarted at a random residual of the batch, which keeps the whole codebook
in use; the initial codebooks count as dead, so the first training step initializes them from
data. They are buffers, not parameters: checkpoints and weights files save them, the optimizer
never sees them. Under torchrun the statistics are summed over the ranks and the restart vectors
are rank 0's, so every rank keeps the same codebooks.
"""

from __future__ import annotations

import torch
import torch.distributed as dist
from torch import nn

EPS = 1e-5  # Laplace smoothing of the EMA code counts


def _distributed() -> bool:
    return dist.is_available() and dist.is_initialized()


def _sum_over_ranks(*tensors: torch.Tensor) -> None:
    if _distributed():
        for t in tensors:
            dist.all_reduce(t)


def _from_rank0(*tensors: torch.Tensor) -> None:
    if _distributed():
        for t in tensors:
            dist.broadcast(t, src=0)


class ResidualQuantizer(nn.Module):
    """`stages` codebooks of `codes` vectors of `dim` values (see the module docstring).

    Stage numbers in code are 0-based: stage k's context is the sum of the codes of stages < k."""

    def __init__(self, stages: int, codes: int, dim: int, decay: float, dead_steps: int):
        super().__init__()
        self.decay, self.dead_steps = decay, dead_steps
        #: whether training moves the codebooks (EMA, dead-code restarts). They are buffers, not
        #: parameters, so freezing a model's parts (train --train-only) must say so here too
        self.learning = True
        codebooks = 0.1 * torch.randn(stages, codes, dim)
        self.register_buffer("codebooks", codebooks)                       # (S, K, D)
        self.register_buffer("cluster_size", torch.ones(stages, codes))    # EMA of the counts
        self.register_buffer("code_sum", codebooks.clone())                # EMA of the sums
        self.register_buffer("idle", torch.full((stages, codes), float(dead_steps)))

    @property
    def stages(self) -> int:
        return self.codebooks.shape[0]

    def nearest(self, stage: int, residual: torch.Tensor) -> torch.Tensor:
        """The index of the code nearest each row of `residual` (N, D), in squared distance."""
        codes = self.codebooks[stage]
        distance = codes.square().sum(1) - 2 * residual @ codes.t()  # ‖r‖² is the same per row
        return distance.argmin(1)

    def forward(self, y: torch.Tensor, stages: torch.Tensor):
        """Quantize y (B,D,h,w) with the first `stages` (B,) stages of each sample.

        Returns (ŷ (B,D,h,w): q_n with a straight-through gradient to y; indices (B,S',h,w), −1
        past a sample's stages; contexts (S',B,D,h,w): q_<k per stage, detached; commitment (B,):
        mean over a sample's stages of ‖r_k − c_k[i_k]‖², whose gradient reaches y). S' is every
        stage in training (so that all ranks run the same collectives), the most used otherwise.
        In training the codebooks learn from the residuals of the samples that use each stage."""
        with torch.autocast(y.device.type, enabled=False):
            b, d, h, w = y.shape
            flat = y.float().permute(0, 2, 3, 1).reshape(b, h * w, d)
            total = torch.zeros_like(flat)
            commitment = flat.new_zeros(b)
            indices, contexts = [], []
            learn = self.training and self.learning
            for k in range(self.stages if self.training else int(stages.max())):
                active = stages > k                                       # (B,)
                contexts.append(total)
                residual = flat - total
                if learn:
                    self._restart_dead(k, residual.detach()[active].reshape(-1, d))
                index = self.nearest(k, residual.detach().reshape(-1, d)).view(b, h * w)
                code = self.codebooks[k][index]                           # (B, hw, D)
                if learn:
                    self._learn(k, residual.detach()[active].reshape(-1, d), index[active].reshape(-1))
                commitment = commitment + active * (residual - code).square().mean((1, 2))
                total = total + code * active[:, None, None]
                indices.append(index.masked_fill(~active[:, None], -1))
            y_hat = flat + (total - flat).detach()

            def image(t: torch.Tensor) -> torch.Tensor:
                return t.view(b, h, w, d).permute(0, 3, 1, 2)
            return (image(y_hat), torch.stack(indices, 1).view(b, -1, h, w),
                    torch.stack([image(c) for c in contexts]).detach(),
                    commitment / stages.clamp(max=len(indices)))

    def dequantize(self, indices: torch.Tensor) -> torch.Tensor:
        """q = Σ_k c_k[i_k] over the stages given (B,n,h,w), in stage order, exactly as the
        forward adds them: the decoder's contexts and ŷ equal the encoder's. n = 0 gives zeros.
        Contiguous (B,D,h,w), the layout the decoder's synthesis gets (a convolution may round a
        strided input differently in the last bit)."""
        b, n, h, w = indices.shape
        total = self.codebooks.new_zeros(b, h, w, self.codebooks.shape[2])
        for k in range(n):
            total = total + self.codebooks[k][indices[:, k]]
        return total.permute(0, 3, 1, 2).contiguous()

    @torch.no_grad()
    def _learn(self, stage: int, vectors: torch.Tensor, index: torch.Tensor) -> None:
        """EMA update of one stage from the residuals (N, D) that chose the codes `index` (N,)."""
        codes = self.codebooks.shape[1]
        counts = torch.bincount(index, minlength=codes).float()
        sums = torch.zeros_like(self.code_sum[stage]).index_add_(0, index, vectors)
        _sum_over_ranks(counts, sums)
        if counts.sum() == 0:  # no sample used this stage: no evidence either way
            return
        self.cluster_size[stage].mul_(self.decay).add_(counts, alpha=1 - self.decay)
        self.code_sum[stage].mul_(self.decay).add_(sums, alpha=1 - self.decay)
        size = self.cluster_size[stage]
        smoothed = (size + EPS) / (size.sum() + codes * EPS) * size.sum()
        self.codebooks[stage] = self.code_sum[stage] / smoothed[:, None]
        self.idle[stage] = torch.where(counts > 0, 0.0, self.idle[stage] + 1)

    @torch.no_grad()
    def _restart_dead(self, stage: int, vectors: torch.Tensor) -> None:
        """Move the codes idle for `dead_steps` steps to random residuals (N, D) of the batch."""
        dead = self.idle[stage] >= self.dead_steps
        if not dead.any():
            return
        codes, dim = self.codebooks.shape[1:]
        have = torch.tensor([float(len(vectors) > 0)], device=vectors.device)
        # drawn from the CPU generator, which checkpoints save, so a resumed run repeats them
        pick = (vectors[torch.randint(len(vectors), (codes,)).to(vectors.device)]
                if len(vectors) else vectors.new_zeros(codes, dim))
        _from_rank0(have, pick)
        if not have.item():
            return
        self.codebooks[stage][dead] = pick[dead]
        self.code_sum[stage][dead] = pick[dead]
        self.cluster_size[stage][dead] = 1.0
        self.idle[stage][dead] = 0.0
