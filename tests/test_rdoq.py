"""Rate-distortion optimized rounding (codec/rdoq.py): the encoder picks floor or ceil of each
latent against its slice's tables. Only the encoder changes: the files decode with the same
decoder, have a lower real D + β·R than nearest rounding, and are the same bytes with one and two
threads."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from flowcodec_cli import codec
from flowcodec_cli.codec import rdoq
from flowcodec_cli.codec.loaded import Segment
from flowcodec_cli.files import images
from flowcodec_cli.models import mixture
from flowcodec_cli.models.base import lagrangian

PARROTS = Path(__file__).resolve().parent / "data" / "parrots_256x192.png"


@pytest.fixture(scope="module")
def picture():
    return images.read_image(PARROTS)


def random_slice(seed: int = 0):
    """Latents of one slice (1, 4, 6, 5) and a 3-component mixture for each element."""
    g = torch.Generator().manual_seed(seed)
    y = torch.randn(1, 4, 6, 5, generator=g, dtype=torch.float64) * 3
    params = mixture.MixtureParams(torch.randn(1, 3, 4, 6, 5, generator=g, dtype=torch.float64),
                                   torch.randn(1, 3, 4, 6, 5, generator=g, dtype=torch.float64) * 2,
                                   torch.rand(1, 3, 4, 6, 5, generator=g, dtype=torch.float64) * 3 + 0.2)
    return y, params


def choose(y, params, distortion, beta=0.01):
    """The rounding of the slice's latents y (1, 4, 6, 5), coded as one segment."""
    segment = Segment(slice(None), None)
    rounding = rdoq.SliceRounding(y, torch.full((1, 4, 1, 1), distortion, dtype=torch.float64), beta)
    flat = mixture.MixtureParams(*(p.flatten(3) for p in params))  # (1, K, c, n): a segment's
    return rounding(segment, flat).view_as(y)


def test_each_latent_goes_to_its_floor_or_its_ceiling():
    y, params = random_slice()
    chosen = choose(y, params, 1e-3)
    assert torch.all((chosen == torch.floor(y)) | (chosen == torch.ceil(y)))
    assert not torch.equal(chosen, torch.round(y))  # some latents do move


def test_without_weight_on_bits_it_is_nearest_rounding(monkeypatch):
    y, params = random_slice(1)
    monkeypatch.setattr(rdoq, "RATE_WEIGHT", 0.0)
    assert torch.equal(choose(y, params, 1.0), torch.round(y))


def test_when_distortion_costs_nothing_it_takes_the_likelier_integer():
    y, params = random_slice(2)
    low, high = torch.floor(y), torch.floor(y) + 1
    likelier = torch.where(mixture.bin_likelihood(high, params) > mixture.bin_likelihood(low, params),
                           high, low)
    assert torch.equal(choose(y, params, 0.0), likelier)


def real_objective(picture, data: bytes, beta: float) -> float:
    """D + β·R of a file: its decoded pixels and its whole size."""
    decoded = codec.decode(data).rgb.astype(np.int64)
    mse = float(((decoded - picture.rgb.astype(np.int64)) ** 2).mean()) / 255 ** 2
    return lagrangian(mse, 8 * len(data), picture.rgb.shape[0] * picture.rgb.shape[1], beta)


@pytest.mark.parametrize("beta", [0.004, 0.05])
def test_the_flow_files_are_smaller_and_better_on_the_real_objective(picture, beta, monkeypatch):
    """On this photo: 4.4% / 5.7% fewer bytes, D + β·R 0.2% / 1.7% lower (low rates gain most)."""
    chosen = codec.encode(picture, beta)[0]
    monkeypatch.setattr(rdoq, "RATE_WEIGHT", 0.0)
    nearest = codec.encode(picture, beta)[0]
    assert len(chosen) < len(nearest)
    assert real_objective(picture, chosen, beta) < real_objective(picture, nearest, beta)


@pytest.mark.parametrize("model", ["hyperprior", "dsc"])
def test_models_that_do_not_price_their_latents_round_to_nearest(picture, model, monkeypatch):
    data = codec.encode(picture, 0.01, model)[0]
    monkeypatch.setattr(rdoq, "RATE_WEIGHT", 0.0)
    assert codec.encode(picture, 0.01, model)[0] == data


def test_the_same_bytes_with_one_and_two_threads(picture):
    threads = torch.get_num_threads()
    try:
        torch.set_num_threads(1)
        one = codec.encode(picture, 0.02)[0]
        torch.set_num_threads(2)
        two = codec.encode(picture, 0.02)[0]
    finally:
        torch.set_num_threads(threads)
    assert one == two


def test_bench_caches_key_on_the_rounding(monkeypatch):
    """A bench cache never returns files of another rounding: the flow's id names its weight,
    a model that rounds to nearest keeps the id it had before (and its cached points)."""
    from flowcodec_cli.evaluation.bench.plan import plan_models
    flow, hyperprior = plan_models(["flow", "hyperprior"], (0.01,), "cpu")
    assert flow.cache_id.endswith("-cpu-rdoq0.25") and hyperprior.cache_id.endswith("-cpu")
    monkeypatch.setattr(rdoq, "RATE_WEIGHT", 0.5)
    assert plan_models(["flow"], (0.01,), "cpu")[0].cache_id.endswith("-cpu-rdoq0.5")
