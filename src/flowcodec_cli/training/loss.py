"""The training loss: the information-bottleneck Lagrangian of the brief, over a batch of mixed β,

    L = D + β·R,   D = MSE on pixels in [0, 1],   R = bits per dimension (bpp / 3),

divided per sample by sqrt(β / β_mid) so that the high- and low-rate ends get gradients of
comparable size (a per-β positive weight does not move any β's optimum).

Side-information models get the same Lagrangian with the reconstruction computed from ŷ and the
side view (the distributed objective when only the decoder sees the side view). A model whose β is
no rate weight (`distortion_only`: JSCC over a channel, the VQ-VAE whose β sets a stage count)
has no β·R term: its loss is the MSE. A model may add its own training terms as `aux_loss` (B,)
in its forward's dict (the VQ-VAE's commitment and prior cross-entropy); they are added to each
sample's loss as they are, not weighted by β or the sample weight.
"""

from __future__ import annotations

import math

import torch

from flowcodec_cli.models.base import lagrangian


def sample_weight(model, beta: torch.Tensor) -> torch.Tensor:
    """Each sample's weight: 1 / sqrt(β / β_mid), or 1 for a model whose β is no rate weight
    (`distortion_only`: the JSCC model of models/channel.py, trained on the MSE alone, and the
    VQ-VAE of models/vqvae.py, whose bits are the prior's, trained through its `aux_loss`)."""
    if getattr(model, "distortion_only", False):
        return torch.ones_like(beta)
    beta_mid = math.sqrt(model.config.beta_min * model.config.beta_max)
    return (beta / beta_mid).rsqrt()


def rd_loss(model, x: torch.Tensor, beta: torch.Tensor, bf16: bool,
            rate_weight: float = 1.0, side: torch.Tensor | None = None,
            net: torch.nn.Module | None = None) -> tuple[torch.Tensor, dict]:
    """The weighted Lagrangian for a batch, plus per-batch bpp and PSNR for the log.

    `rate_weight` < 1 scales β down during a rate warm-up (the β-schedule ablation).
    `side`: the side views, for models that use side information. `net`: what runs the forward
    when it is not `model` itself (its DistributedDataParallel wrapper, which has no config)."""
    with torch.autocast(x.device.type, dtype=torch.bfloat16, enabled=bf16):
        out = (model if net is None else net)(x, beta, side)  # models without side information ignore it
    x_hat = out["x_hat"].float()
    pixels = x.shape[2] * x.shape[3]
    mse = ((x_hat - x) ** 2).mean(dim=(1, 2, 3))  # (B,)
    bits = out["y_bits_per_image"] + out["z_bits_per_image"]  # (B,)
    weight = sample_weight(model, beta)
    # a distortion-only model's bits are for the log: β does not weigh them
    rate_beta = 0.0 if getattr(model, "distortion_only", False) else rate_weight * beta
    per_sample = lagrangian(mse, bits, pixels, rate_beta) * weight
    aux = out.get("aux_loss")
    loss = (per_sample if aux is None else per_sample + aux).mean()
    stats = {
        "loss": loss.item(),
        "bpp": (bits / pixels).mean().item(),
        "psnr": (-10 * torch.log10(mse.detach().clamp(min=1e-10))).mean().item(),
    }
    if aux is not None:
        stats["aux"] = aux.detach().mean().item()
    return loss, stats
