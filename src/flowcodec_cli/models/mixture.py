"""Discretized Gaussian mixtures: the probability model of every quantized latent.

Training and coding must agree on what a mixture means, so this module is the single source of
the constants both use: how many components, which scale range is representable, and the
likelihood of an integer bin. `entropy.py` turns the same parameters into integer tables for the
range coder; this module is the differentiable twin used for training and for the model's bit
estimate.
"""

from __future__ import annotations

from typing import NamedTuple

import torch

COMPONENTS = 3
SCALE_MIN = 0.11
SCALE_MAX = 64.0
LIKELIHOOD_FLOOR = 1e-9


class MixtureParams(NamedTuple):
    """Per-element parameters of a K-component Gaussian mixture, each (B, K, C, H, W)."""

    logits: torch.Tensor
    means: torch.Tensor
    scales: torch.Tensor


def split_params(raw: torch.Tensor, channels: int, components: int = COMPONENTS) -> MixtureParams:
    """Split a network output of 3*K*C channels into mixture parameters (K = `components`).

    raw: (B, 3*K*C, H, W) -> logits, means, scales, each (B, K, C, H, W).
    """
    b, _, h, w = raw.shape
    raw = raw.float() if raw.dtype in (torch.float16, torch.bfloat16) else raw
    raw = raw.view(b, 3, components, channels, h, w)
    scales = raw[:, 2].exp().clamp(SCALE_MIN, SCALE_MAX)
    return MixtureParams(raw[:, 0], raw[:, 1], scales)


def _standard_cdf(x: torch.Tensor) -> torch.Tensor:
    return 0.5 * torch.erfc(-x * (2**-0.5))


def bin_likelihood(values: torch.Tensor, params: MixtureParams) -> torch.Tensor:
    """Probability of the unit-width bin centred on each value under the mixture.

    values: (B, C, H, W). Uses the upper-tail form of the CDF difference so that bins far from a
    component's mean keep their precision (CompressAI's trick, applied per component).
    """
    weights = torch.softmax(params.logits, dim=1)
    centred = (values.unsqueeze(1) - params.means).abs()
    upper = _standard_cdf((0.5 - centred) / params.scales)
    lower = _standard_cdf((-0.5 - centred) / params.scales)
    return (weights * (upper - lower)).sum(dim=1).clamp(min=LIKELIHOOD_FLOOR)


def bits(likelihood: torch.Tensor) -> torch.Tensor:
    """Information content in bits per batch item: (B, ...) -> (B,)."""
    return -torch.log2(likelihood).flatten(1).sum(dim=1)
