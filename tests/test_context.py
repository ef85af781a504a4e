"""The channel-context entropy model, its checkerboard halves and latent residual prediction
(models/context.py), through the real coder: grown from zero each is the model it was grown from,
trained it round-trips, decodes identically with 1 and 2 threads, and refuses a damaged stream."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from flowcodec_cli import codec, zoo
from flowcodec_cli.codec import entropy, fcx, rdoq
from flowcodec_cli.files import images
from flowcodec_cli.models import build_model
from model_helpers import assert_same_training_pass, randomized, temporary_zoo

SMALL = {"levels": 2, "steps": 1, "hidden": 8, "hyper_width": 16, "hyper_channels": 8,
         "beta_min": 0.001, "beta_max": 0.05}
CONTEXT = {"context_slices": [6, 10, 16, 16], "context_order": list(range(47, -1, -1)),
           "context_hidden": 8}
BETA = 0.01


CHECKERBOARD = {**CONTEXT, "context_checkerboard": True}


def grown_from(model: torch.nn.Module, config: dict) -> torch.nn.Module:
    """A model of `config` holding `model`'s weights, its new parts at their zero init."""
    grown = build_model("flow", config)
    missing, unexpected = grown.load_state_dict(model.state_dict(), strict=False)
    assert missing and not unexpected
    return grown


@pytest.fixture(scope="module")
def registered(tmp_path_factory):
    """Tiny flow models in a temporary zoo: a base, the base grown with a context model (new
    parts at their zero init), that grown model with every parameter perturbed ("trained"), it
    grown with the checkerboard, and a checkerboard model with every parameter perturbed."""
    folder = tmp_path_factory.mktemp("weights")
    base = randomized(build_model("flow", SMALL), seed=3)
    trained = randomized(build_model("flow", {**SMALL, **CONTEXT}), seed=4)
    models = {"base": base, "grown": grown_from(base, {**SMALL, **CONTEXT}), "trained": trained,
              "checker-grown": grown_from(trained, {**SMALL, **CHECKERBOARD}),
              "checker": randomized(build_model("flow", {**SMALL, **CHECKERBOARD}), seed=5)}
    with temporary_zoo(folder, {f"t-{name}": model for name, model in models.items()}):
        yield models


@pytest.fixture(scope="module")
def picture():
    return images.read_image("tests/data/parrots_256x192.png")


GROWN = [("base", "grown"), ("trained", "checker-grown")]


@pytest.mark.parametrize("before, after", GROWN)
def test_grown_model_at_step_zero_computes_what_it_was_grown_from(registered, before, after):
    assert_same_training_pass(registered[before], registered[after])


@pytest.mark.parametrize("before, after", GROWN)
def test_grown_model_at_step_zero_codes_what_it_was_grown_from(registered, picture, before, after):
    """The same integers under the same per-element probabilities: the same z stream, the same
    model bits, the same decoded pixels. The y streams differ only in order (slice by slice, or
    half a slice by half a slice)."""
    base, base_stats = codec.encode(picture, BETA, f"t-{before}")
    grown, grown_stats = codec.encode(picture, BETA, f"t-{after}")
    a, b = fcx.unpack(base), fcx.unpack(grown)
    assert a.streams[0] == b.streams[0] and a.streams[1] != b.streams[1]
    assert grown_stats.estimated_bits == pytest.approx(base_stats.estimated_bits, rel=1e-9)
    assert abs(len(a.streams[1]) - len(b.streams[1])) <= 16
    assert np.array_equal(codec.decode(base).rgb, codec.decode(grown).rgb)


@pytest.mark.parametrize("name, segments", [("trained", 4), ("checker", 8)])
def test_context_model_round_trip_matches_the_model(registered, picture, monkeypatch, name, segments):
    """The decoder's segment-by-segment tables and residual prediction give what the model
    computes from all of ŷ at once (training's view), up to float32 synthesis rounding. The
    encoder rounds to the nearest integer here, as the model does (tests/test_rdoq.py tests the
    other rounding)."""
    monkeypatch.setattr(rdoq, "RATE_WEIGHT", 0.0)
    data, stats = codec.encode(picture, BETA, f"t-{name}")
    decoded = codec.decode(data).rgb
    loaded = codec.LoadedCodec.get(f"t-{name}")
    model = loaded.model  # the fp16-stored weights, as the codec has them
    x = torch.from_numpy(picture.rgb).permute(2, 0, 1)[None].float() / 255
    with torch.no_grad(), torch.backends.mkldnn.flags(enabled=False, allow_tf32=None):
        b = torch.tensor([fcx.unpack(data).header.beta])
        y = model.analysis(x, b)
        y_hat, z_hat = torch.round(y), torch.round(model.entropy_model.hyper_analysis(y, b))
        raw = model.entropy_model.hyper_params(z_hat, b)
        expected = model.synthesis(model.entropy_model.refined(y_hat), b).clamp(0, 1)
        bits = model.entropy_model.rounded_bits(y_hat, z_hat, model.entropy_model.params_given(raw, y_hat))
    expected = (expected[0].permute(1, 2, 0) * 255).round().numpy()
    assert np.abs(decoded.astype(float) - expected).max() <= 1
    assert loaded.segment_count == segments
    assert stats.estimated_bits == pytest.approx(float(bits[0] + bits[1]), rel=1e-3)
    assert stats.payload_bits == pytest.approx(stats.estimated_bits, rel=0.05, abs=256)


@pytest.mark.parametrize("name", ["trained", "checker"])
def test_context_model_decodes_identically_with_one_and_two_threads(registered, picture, name):
    data, _ = codec.encode(picture, BETA, f"t-{name}", tile=128)
    threads = torch.get_num_threads()
    try:
        torch.set_num_threads(1)
        one = codec.decode(data).rgb
        again, _ = codec.encode(picture, BETA, f"t-{name}", tile=128)
        torch.set_num_threads(2)
        two = codec.decode(data).rgb
    finally:
        torch.set_num_threads(threads)
    assert again == data and np.array_equal(one, two)


@pytest.mark.parametrize("name", ["trained", "checker"])
def test_damaged_slice_stream_is_refused(registered, picture, name):
    container = fcx.unpack(codec.encode(picture, BETA, f"t-{name}")[0])
    y = bytearray(container.streams[1])
    y[len(y) // 3] ^= 0x5A
    container.streams[1] = bytes(y)
    with pytest.raises((fcx.FormatError, entropy.DesyncError)):
        codec.decode(fcx.pack(container))


def test_context_slices_must_cover_the_latents():
    with pytest.raises(ValueError, match="cover"):
        build_model("flow", {**SMALL, "context_slices": [6, 10]})


def test_complexity_counts_the_context_networks_on_both_sides():
    from flowcodec_cli.evaluation.complexity import part_macs
    plain = part_macs(build_model("flow", SMALL).eval(), 64, 64)
    grown = part_macs(build_model("flow", {**SMALL, **CONTEXT}).eval(), 64, 64)
    assert plain["context"] == 0 < grown["context"]
    assert grown["synthesis"] > plain["synthesis"]  # the residual predictors run before f⁻¹
    assert grown["analysis"] == plain["analysis"] > 0
    checker = part_macs(build_model("flow", {**SMALL, **CHECKERBOARD}).eval(), 64, 64)
    assert checker["context"] > grown["context"]  # the spatial networks run in the tables' path
    assert grown["decoder_total"] == pytest.approx(
        grown["hyper_synthesis"] + grown["context"] + grown["synthesis"], abs=0.2)


def test_context_without_residual_prediction_decodes_the_rounded_latents():
    """`context_lrp: false` (the ablation's context-only arm): the same tables, no residual
    predictors, so f⁻¹ decodes ŷ itself; grown from a plain flow it computes what that did."""
    base = randomized(build_model("flow", SMALL), seed=3)
    plain = build_model("flow", {**SMALL, **CONTEXT, "context_lrp": False})
    missing, unexpected = plain.load_state_dict(base.state_dict(), strict=False)
    assert not unexpected and missing and not any("lrp" in key for key in missing)
    assert not any("lrp" in key for key in plain.state_dict())
    y_hat = torch.round(torch.randn(1, 48, 4, 4) * 3)
    assert torch.equal(plain.entropy_model.refined(y_hat), y_hat)
    assert_same_training_pass(base, plain)


def test_checkerboard_anchors_see_nothing_of_their_slice_and_the_rest_see_only_anchors(registered):
    """What lets the decoder decode a slice in two parallel halves: changing a non-anchor of
    slice i changes no mixture of slice i; changing an anchor changes only non-anchors'."""
    from flowcodec_cli.models.context import checkerboard
    entropy_model = registered["checker"].entropy_model
    raw = torch.randn(1, 9 * 48, 6, 7, generator=torch.Generator().manual_seed(0))
    y_hat = torch.round(torch.randn(1, 48, 6, 7, generator=torch.Generator().manual_seed(1)) * 3)
    anchors = checkerboard(6, 7)
    index, channel = 1, int(entropy_model.context.channels(1)[0])

    def params_after(row: int, col: int) -> torch.Tensor:
        changed = y_hat.clone()
        changed[0, channel, row, col] += 5
        with torch.no_grad():
            return torch.stack(entropy_model.slice_prior(raw, changed, index))

    with torch.no_grad():
        before = torch.stack(entropy_model.slice_prior(raw, y_hat, index))
    assert not anchors[2, 3] and torch.equal(params_after(2, 3), before)
    moved = (params_after(2, 2) != before).flatten(0, 3).any(0)      # (H, W)
    assert anchors[2, 2] and moved.any() and not moved[anchors].any()


@pytest.mark.parametrize("size", [(1, 1), (13, 70)])
def test_checkerboard_round_trips_tiny_and_odd_sized_images(registered, size):
    """Padded to the stride of z, the smallest latent grid is 4×4, so both halves always exist;
    odd grid sizes make them unequal."""
    rgb = (np.random.default_rng(size[1]).random((*size, 3)) * 255).astype(np.uint8)
    data, _ = codec.encode(images.Picture(rgb, None, fcx.LAYOUT_RGB), BETA, "t-checker")
    assert codec.decode(data).rgb.shape == (*size, 3)


def test_checkerboard_halves_are_the_mask_s_elements_in_raster_order():
    from flowcodec_cli.models.context import checkerboard, checkerboard_half, checkerboard_place
    values = torch.arange(2 * 3 * 6 * 8, dtype=torch.float64).view(2, 3, 6, 8)
    anchors = checkerboard(6, 8)
    rebuilt = torch.zeros_like(values)
    for half, where in ((0, anchors), (1, ~anchors)):
        chosen = checkerboard_half(values, half)
        assert torch.equal(chosen, values[..., where])
        checkerboard_place(rebuilt, chosen, half)
    assert torch.equal(rebuilt, values)
    with pytest.raises(ValueError, match="even latent grid"):
        checkerboard_half(torch.zeros(1, 1, 5, 8), 0)
