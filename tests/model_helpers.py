"""Helpers the model tests share (tests/ is on sys.path under pytest's default import mode)."""

from __future__ import annotations

import contextlib
from pathlib import Path

import pytest
import torch


def randomized(model: torch.nn.Module, seed: int = 0) -> torch.nn.Module:
    """Perturb every parameter, so that equalities cannot hold by initialization alone (a fresh
    flow is a plain wavelet transform and a fresh coupling the identity)."""
    generator = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in model.parameters():
            p.add_(0.05 * torch.randn(p.shape, generator=generator))
    return model


@contextlib.contextmanager
def temporary_zoo(folder: Path, models: dict[str, torch.nn.Module], architecture: str = "flow"):
    """The models exported into `folder` and registered under their names for as long as the
    context lasts (`$FLOWCODEC_WEIGHTS` points at the folder): what a trained file needs to be
    coded with, without touching the shipped zoo."""
    from flowcodec_cli import zoo
    from flowcodec_cli.training.checkpoints import export_weights
    monkey = pytest.MonkeyPatch()
    monkey.setenv("FLOWCODEC_WEIGHTS", str(folder))
    for name, model in models.items():
        sha = export_weights(model, folder / f"{name}.safetensors")
        monkey.setitem(zoo.REGISTRY, name, zoo.ZooEntry(name, architecture, f"{name}.safetensors", sha))
    try:
        yield
    finally:
        monkey.undo()


def assert_same_training_pass(base: torch.nn.Module, grown: torch.nn.Module) -> None:
    """A model grown with new parts at their zero init computes exactly what it was grown from:
    the same reconstruction and bits on the same batch, the same noise."""
    x, beta = torch.rand(2, 3, 64, 64), torch.tensor([0.002, 0.03])
    outputs = []
    for model in (base, grown):
        torch.manual_seed(5)
        outputs.append(model(x, beta))
    for key in outputs[0]:
        assert torch.equal(outputs[0][key], outputs[1][key]), key
