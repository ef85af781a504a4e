"""The model contract (models/base.py, models/entropy_model.py): the entropy-model component did
not rename anything in the weights format, its float64 coding copy agrees with the float32
component, the prior of z is the same numbers in every dtype, and the rate is -log2 of the bin
probabilities."""

from __future__ import annotations

import copy
import math

import pytest
import torch

from flowcodec_cli import zoo
from flowcodec_cli.models import build_model, mixture
from flowcodec_cli.models.base import ENTROPY_MODEL, file_name
from flowcodec_cli.models.entropy_model import HyperpriorEntropyModel
from model_helpers import randomized

SMALL = {
    "flow": {"levels": 2, "steps": 1, "hidden": 8, "hyper_width": 16, "hyper_channels": 8},
    "hyperprior": {"channels": 8, "latent_channels": 12, "hyper_channels": 8},
}
# The component's names, stored at the top level of every weights file (the format predates it).
COMPONENT_HEADS = {"h_a", "h_s", "hyper_gain", "inverse_hyper_gain", "z_logits", "z_means",
                   "z_log_scales"}


# --- the weights format -----------------------------------------------------------------------


@pytest.mark.parametrize("name", sorted(zoo.REGISTRY))
def test_built_model_has_exactly_the_keys_and_shapes_of_the_shipped_weights(name):
    path = zoo.weights_path(name)
    if not path.is_file():
        pytest.skip(f"{path.name} is not installed")
    architecture, config, tensors = zoo.load_state(path)
    state = build_model(architecture, config).state_dict()
    assert set(state) == set(tensors)
    assert {k: tuple(v.shape) for k, v in state.items()} == \
        {k: tuple(v.shape) for k, v in tensors.items()}


@pytest.mark.parametrize("architecture", sorted(SMALL))
def test_the_component_is_stored_under_its_old_top_level_names(architecture):
    model = build_model(architecture, SMALL[architecture])
    keys = set(model.state_dict())
    assert not any(k.startswith(ENTROPY_MODEL) for k in keys)
    component = set(model.entropy_model.state_dict())
    assert {k.split(".")[0] for k in component} == COMPONENT_HEADS
    assert component <= keys
    # every parameter is stored under file_name(its name); the other keys are buffers
    params = {file_name(n) for n, _ in model.named_parameters()}
    assert params <= keys
    assert keys - params <= {file_name(n) for n, _ in model.named_buffers()}
    assert file_name("entropy_model.h_s.0.weight") == "h_s.0.weight"
    assert file_name("analysis.0.weight") == "analysis.0.weight"


@pytest.mark.parametrize("architecture", sorted(SMALL))
def test_state_dict_round_trip_is_exact(architecture):
    source = randomized(build_model(architecture, SMALL[architecture]), seed=1)
    target = randomized(build_model(architecture, SMALL[architecture]), seed=2)
    result = target.load_state_dict(source.state_dict(), strict=True)
    assert not result.missing_keys and not result.unexpected_keys
    expected = source.state_dict()
    for key, value in target.state_dict().items():
        assert torch.equal(value, expected[key]), key
    # and the tensors reached the component itself, not just the names
    assert torch.equal(target.entropy_model.z_means, source.entropy_model.z_means)
    assert torch.equal(target.entropy_model.h_s[0].weight, source.entropy_model.h_s[0].weight)


# --- the coding copy --------------------------------------------------------------------------


@pytest.fixture(scope="module")
def component() -> HyperpriorEntropyModel:
    return randomized(build_model("flow", SMALL["flow"]), seed=3).entropy_model.eval()


def test_for_coding_is_a_float64_eval_copy(component):
    coding = component.for_coding()
    assert coding is not component and not coding.training
    assert all(p.dtype == torch.float64 for p in coding.parameters())
    assert all(p.dtype == torch.float32 for p in component.parameters())  # the original is untouched
    with torch.no_grad():
        coding.z_means.add_(1.0)
    assert not torch.equal(coding.z_means.float(), component.z_means)


@pytest.mark.parametrize("beta", [0.0001, 0.002, 0.05])
def test_coding_copy_y_prior_equals_the_float32_one(component, beta):
    coding = component.for_coding()
    generator = torch.Generator().manual_seed(4)
    z_hat = torch.round(3 * torch.randn(2, 8, 3, 5, generator=generator))
    with torch.no_grad():
        p32 = component.y_prior(z_hat, torch.tensor([beta]))
        p64 = coding.y_prior(z_hat.double(), torch.tensor([beta], dtype=torch.float64))
    assert p64.means.dtype == torch.float64 and p32.means.dtype == torch.float32
    assert p64.means.shape == (2, component.components, component.latent_channels, 12, 20)
    assert (p64.means.abs() > 1e-3).any()  # not a trivially zero output
    for a, b in zip(p32, p64):
        torch.testing.assert_close(a.double(), b, rtol=1e-5, atol=1e-5)


def test_z_prior_is_the_same_numbers_in_every_dtype(component):
    """Computed in float32 whatever is asked, so encoder, decoder and training agree exactly."""
    shape = torch.Size([1, 8, 3, 4])
    p32 = component.z_prior(shape, torch.float32)
    p64 = component.z_prior(shape, torch.float64)
    coding64 = component.for_coding().z_prior(shape, torch.float64)
    assert p64.scales.dtype == torch.float64 and p32.scales.dtype == torch.float32
    assert p64.scales.shape == (1, component.components, 8, 3, 4)
    for a, b, c in zip(p32, p64, coding64):
        assert torch.equal(a.double(), b)
        assert torch.equal(b, c)  # the float64 copy gives the tables the same numbers
    # and that is a choice: exp in float64 would give other scales
    exact = component.z_log_scales.double().exp()[None, :, :, None, None].expand_as(p64.scales)
    assert not torch.equal(exact.clamp(mixture.SCALE_MIN, mixture.SCALE_MAX), p64.scales)


# --- the rate ---------------------------------------------------------------------------------


def _phi(x: float) -> float:
    return 0.5 * (1 + math.erf(x / math.sqrt(2)))


def _bin(value: float, weights, means, scales) -> float:
    return sum(w * (_phi((value + 0.5 - m) / s) - _phi((value - 0.5 - m) / s))
               for w, m, s in zip(weights, means, scales))


def test_rounded_bits_is_minus_log2_of_the_bin_probabilities():
    """A hand-made case: one latent and one hyper channel, two mixture components."""
    model = HyperpriorEntropyModel(latent=1, width=4, hyper=1, components=2,
                                   beta_min=0.001, beta_max=0.01)
    with torch.no_grad():
        model.z_logits.copy_(torch.tensor([[0.0], [math.log(3.0)]]))   # weights 1/4, 3/4
        model.z_means.copy_(torch.tensor([[-1.0], [0.5]]))
        model.z_log_scales.copy_(torch.log(torch.tensor([[0.8], [2.0]])))
    # y: batch of 2 images of 1×1×3, mixture (w, μ, σ) = (1/2, 0, 1) + (1/2, 2, 0.5) everywhere
    y_hat = torch.tensor([[[[0.0, 1.0, -2.0]]], [[[2.0, 3.0, 0.0]]]], dtype=torch.float64)
    z_hat = torch.tensor([[[[0.0, -1.0]]], [[[3.0, 1.0]]]], dtype=torch.float64)
    ones = torch.ones(2, 1, 1, 1, 3, dtype=torch.float64)
    y_params = mixture.MixtureParams(torch.cat([ones * 0, ones * 0], 1),
                                     torch.cat([ones * 0, ones * 2], 1),
                                     torch.cat([ones * 1, ones * 0.5], 1))
    y_bits, z_bits = model.rounded_bits(y_hat, z_hat, y_params)

    def bits(values, weights, means, scales):
        return -sum(math.log2(_bin(v, weights, means, scales)) for v in values)

    y_mix = ([0.5, 0.5], [0.0, 2.0], [1.0, 0.5])
    z_mix = ([0.25, 0.75], [-1.0, 0.5], [0.8, 2.0])
    assert y_bits.shape == z_bits.shape == (2,)
    assert y_bits.tolist() == pytest.approx([bits([0, 1, -2], *y_mix), bits([2, 3, 0], *y_mix)],
                                            rel=1e-6)
    assert z_bits.tolist() == pytest.approx([bits([0, -1], *z_mix), bits([3, 1], *z_mix)],
                                            rel=1e-6)


@pytest.fixture(scope="module")
def checkerboard_component() -> HyperpriorEntropyModel:
    config = {**SMALL["flow"], "context_slices": [6, 10, 16, 16], "context_hidden": 8,
              "context_checkerboard": True}
    return randomized(build_model("flow", config), seed=5).entropy_model.eval()


def test_coding_copy_codes_each_half_slice_with_the_model_s_mixtures(checkerboard_component):
    """The coder's path (sub-pixel h_s, tap-summing context layers, each checkerboard half's
    mixtures computed for that half alone) gives the model's own float64 numbers (training's
    `slice_prior` over the whole grid), up to float64 summation order."""
    from flowcodec_cli.models.context import checkerboard
    coding = checkerboard_component.for_coding()
    stock = copy.deepcopy(checkerboard_component).double().eval()
    generator = torch.Generator().manual_seed(6)
    z_hat = torch.round(3 * torch.randn(1, 8, 2, 3, generator=generator, dtype=torch.float64))
    y_hat = torch.round(4 * torch.randn(1, 48, 8, 12, generator=generator, dtype=torch.float64))
    beta = torch.tensor([0.004], dtype=torch.float64)
    with torch.no_grad():
        raw = coding.hyper_params(z_hat, beta)
        torch.testing.assert_close(raw, stock.hyper_params(z_hat, beta), rtol=1e-12, atol=1e-12)
        anchors = checkerboard(8, 12)
        for index in range(coding.slice_count):
            corrected = coding.channel_raw(raw, y_hat, index)
            expected = stock.slice_prior(raw, y_hat, index)  # (1, K, c, H, W)
            for phase, where in ((0, anchors), (1, ~anchors)):
                half, params = coding.phase_prior(corrected, y_hat, index, phase)
                assert half == phase
                for got, want in zip(params, expected):
                    torch.testing.assert_close(got, want[..., where], rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("kernel, stride", [(5, 2), (3, 2), (7, 3)])
def test_sub_pixel_transposed_convolution_is_the_stock_one(kernel, stride):
    from flowcodec_cli.models.layers.basic import SubpixelConvTranspose2d, deconv
    torch.manual_seed(0)
    layer = deconv(5, 7, kernel, stride).double().eval()
    sub = SubpixelConvTranspose2d.of(layer)
    x = torch.randn(2, 5, 6, 9, dtype=torch.float64)
    with torch.no_grad():
        torch.testing.assert_close(sub(x), layer(x), rtol=1e-12, atol=1e-12)
        assert torch.equal(sub.train()(x), layer(x))  # training keeps the stock layer
    with pytest.raises(ValueError, match="sub-pixel"):
        SubpixelConvTranspose2d.of(deconv(5, 7, 4, 2))  # its output is not stride × input
