"""The flow codec's transform is a bijection: every layer and the whole flow invert exactly.

Parameters are randomized first (a freshly built flow is the identity plus Haar, which would make
these tests too easy), so the inverses are checked as functions, not at one lucky point.
"""

from __future__ import annotations

import pytest
import torch

from flowcodec_cli.models.layers import flow as flow_layers
from flowcodec_cli.models.layers.flow import (ActNorm, AffineCoupling, BlockedConv2d, FlowStep,
                                              HaarSqueeze, InvertibleConv1x1, TapSumConv2d)
from flowcodec_cli.models import build_model
from model_helpers import randomized as randomize


@pytest.fixture
def x():
    return torch.rand(2, 12, 16, 24, generator=torch.Generator().manual_seed(1))


def test_haar_is_orthonormal(x):
    haar = HaarSqueeze(12)
    y = haar(x)
    assert y.shape == (2, 48, 8, 12)
    assert torch.allclose((y ** 2).sum(), (x ** 2).sum(), rtol=1e-5)  # energy (MSE) preserved
    assert (haar.inverse(y) - x).abs().max() < 1e-6


@pytest.mark.parametrize("layer", [ActNorm(12), InvertibleConv1x1(12), ])
def test_linear_layers_invert(layer, x):
    randomize(layer)
    y = layer(x)
    assert not torch.allclose(y, x)
    assert (layer.inverse(y) - x).abs().max() < 1e-5


def test_coupling_and_step_invert(x):
    rate = torch.tensor([-0.7, 0.4])
    for layer in (AffineCoupling(12, 16), FlowStep(12, 16, seed=3)):
        randomize(layer)
        y = layer(x, rate)
        assert not torch.allclose(y, x)
        assert (layer.inverse(y, rate) - x).abs().max() < 1e-5
        # the coupling depends on β: another rate gives another output
        assert not torch.allclose(layer(x, -rate), y)


def test_whole_flow_inverts_without_quantization():
    model = randomize(build_model("flow", {"levels": 2, "steps": 2, "hidden": 8,
                                           "hyper_width": 16, "hyper_channels": 8}))
    image = torch.rand(1, 3, 32, 48, generator=torch.Generator().manual_seed(2))
    beta = torch.tensor([0.002])
    with torch.no_grad():
        y = model.analysis(image, beta)
        z = model.entropy_model.hyper_analysis(y, beta)
        assert y.shape == (1, 48, 8, 12) and z.shape == (1, 8, 2, 3)
        assert (model.synthesis(y, beta) - image).abs().max() < 1e-4


def test_flow_training_pass_gives_bits_and_gradients():
    model = build_model("flow", {"levels": 2, "steps": 1, "hidden": 8, "hyper_width": 16,
                                 "hyper_channels": 8, "noise": "gaussian", "components": 1})
    out = model(torch.rand(2, 3, 32, 32), torch.tensor([0.001, 0.02]))
    assert out["x_hat"].shape == (2, 3, 32, 32)
    assert (out["y_bits_per_image"] > 0).all() and (out["z_bits_per_image"] > 0).all()
    (out["y_bits_per_image"].sum() + out["x_hat"].sum()).backward()
    assert model.levels[0][0].coupling.net[-1].weight.grad.abs().sum() > 0


def test_wavelet_mix_inits_are_orthogonal_and_rotate_which_half_is_changed():
    from flowcodec_cli.models.layers.flow import wavelet_mix_inits
    mats = wavelet_mix_inits(12, 4, colour=True)
    for w in mats:
        assert torch.allclose(w @ w.T, torch.eye(12, dtype=w.dtype), atol=1e-12)
    assert all(((w == 0) | (w == 1)).all() for w in mats[1:])  # permutations after the colour step
    # the channels a coupling changes (second half, in input order) differ from step to step
    order = torch.eye(12, dtype=torch.float64)
    changed = []
    for w in mats:
        order = w @ order
        changed.append(frozenset(order[6:].abs().argmax(1).tolist()))
    assert len(set(changed)) == 4


@pytest.mark.parametrize("levels", [1, 2])
def test_untrained_wavelet_flow_is_an_orthonormal_colour_haar_transform(levels):
    model = build_model("flow", {"levels": levels, "steps": 4, "hidden": 8,
                                 "hyper_width": 16, "hyper_channels": 8})  # mix_init="wavelet"
    beta = torch.tensor([0.002])
    with torch.no_grad():
        # a flat grey image: all its energy lands in one coefficient per block, luma of LL…LL
        flat = model.flow(torch.full((1, 3, 16, 16), 0.8), beta)
        energy = (flat ** 2).sum((0, 2, 3))
        assert (energy > 1e-10).sum() == 1
        assert torch.allclose(flat.abs().max(), torch.tensor(0.3 * 3 ** 0.5 * 2 ** levels), rtol=1e-5)
        x = torch.rand(1, 3, 16, 16, generator=torch.Generator().manual_seed(3))
        y = model.flow(x, beta)
        assert torch.allclose((y ** 2).sum(), ((x - 0.5) ** 2).sum(), rtol=1e-5)  # orthonormal
        assert (model.flow_inverse(y, beta) - x).abs().max() < 1e-5
    # Glow's random rotations spread the flat image over many channels
    rotation = build_model("flow", {"levels": levels, "steps": 4, "hidden": 8, "mix_init": "rotation",
                                    "hyper_width": 16, "hyper_channels": 8})
    with torch.no_grad():
        spread = rotation.flow(torch.full((1, 3, 16, 16), 0.8), beta)
    assert ((spread ** 2).sum((0, 2, 3)) > 1e-6).sum() > 3


@pytest.mark.parametrize("cin,cout", [(32, 12), (8, 16)])
def test_tap_sum_convolution_is_the_stock_convolution(cin, cout):
    """Outside training, TapSumConv2d computes the same 3×3 convolution another way (all taps in
    one product, shifted slices summed): equal up to float32 rounding, for a batch and odd sizes."""
    torch.manual_seed(0)
    layer = TapSumConv2d(cin, cout)
    x = torch.randn(2, cin, 13, 22)
    with torch.no_grad():
        stock = torch.nn.functional.conv2d(x, layer.weight, layer.bias, padding=1)
        torch.testing.assert_close(layer.eval()(x), stock, rtol=1e-5, atol=1e-5)
        assert torch.equal(layer.train()(x), stock)


def test_tap_sum_made_of_a_convolution_shares_its_parameters():
    stock = torch.nn.Conv2d(16, 4, 3, padding=1)
    layer = TapSumConv2d.of(stock).eval()
    assert layer.weight is stock.weight and layer.bias is stock.bias
    x = torch.randn(1, 16, 9, 11)
    with torch.no_grad():
        torch.testing.assert_close(layer(x), stock(x), rtol=1e-5, atol=1e-5)
    with pytest.raises(ValueError, match="3×3"):
        TapSumConv2d.of(torch.nn.Conv2d(16, 4, 3, padding=1, stride=2))


@pytest.mark.parametrize("layer", [BlockedConv2d(7, 16, 3), BlockedConv2d(5, 8, 5), TapSumConv2d(32, 12), TapSumConv2d(8, 16)],
                         ids=["blocked-3x3", "blocked-5x5", "tap-sum", "tap-sum-wide"])
def test_codec_convolutions_in_row_blocks_give_the_same_bits(layer, monkeypatch):
    """Computing a codec convolution block of rows by block of rows (to stay in cache) changes no
    bit: each output is the same dot product as in one whole-image pass (uneven last block too)."""
    torch.manual_seed(0)
    x = torch.randn(1, layer.in_channels, 37, 29)
    layer.eval()
    with torch.no_grad():
        whole = layer(x)
        monkeypatch.setattr(flow_layers, "_BLOCK_BYTES", 1)  # 4 rows per block: 10 blocks
        assert len(flow_layers._row_blocks(37, 29, 9)) == 10
        assert torch.equal(layer(x), whole)
    if not isinstance(layer, TapSumConv2d) or layer.out_channels >= layer.in_channels:
        assert torch.equal(whole, torch.nn.functional.conv2d(x, layer.weight, layer.bias,
                                                             padding=layer.padding))
