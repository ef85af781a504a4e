"""Helpers the model tests share (tests/ is on sys.path under pytest's default import mode)."""

from __future__ import annotations

import torch


def randomized(model: torch.nn.Module, seed: int = 0) -> torch.nn.Module:
    """Perturb every parameter, so that equalities cannot hold by initialization alone (a fresh
    flow is a plain wavelet transform and a fresh coupling the identity)."""
    generator = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in model.parameters():
            p.add_(0.05 * torch.randn(p.shape, generator=generator))
    return model
