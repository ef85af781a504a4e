"""The encoder's latent adjustment (models/layers/adjust.py): grown from zero it is the model it
was grown from (same training pass, same bytes), trained it moves the latents by less than a bin
while the decoder stays the exact inverse flow of what is coded, and its files are deterministic."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from flowcodec_cli import codec, zoo
from flowcodec_cli.codec import fcx
from flowcodec_cli.files import images
from flowcodec_cli.models import build_model
from model_helpers import assert_same_training_pass, randomized, temporary_zoo

SMALL = {"levels": 2, "steps": 1, "hidden": 8, "hyper_width": 16, "hyper_channels": 8,
         "beta_min": 0.001, "beta_max": 0.05, "context_slices": [16, 32],
         "context_order": list(range(48)), "context_hidden": 8}
ADJUST = {"encoder_adjust": 8}
BETA = 0.01


@pytest.fixture(scope="module")
def registered(tmp_path_factory):
    """A base flow, the base grown with an adjustment at its zero init, and the grown model with
    only the adjustment perturbed (the same decoder as the base), in a temporary zoo."""
    folder = tmp_path_factory.mktemp("weights")
    base = randomized(build_model("flow", SMALL), seed=3)
    grown = build_model("flow", {**SMALL, **ADJUST})
    missing, unexpected = grown.load_state_dict(base.state_dict(), strict=False)
    assert not unexpected and missing and all(k.startswith("adjust.") for k in missing)
    trained = build_model("flow", {**SMALL, **ADJUST})
    trained.load_state_dict(grown.state_dict())
    randomized(trained.adjust, seed=4)
    models = {"base": base, "grown": grown, "trained": trained}
    with temporary_zoo(folder, {f"a-{name}": model for name, model in models.items()}):
        yield models


@pytest.fixture(scope="module")
def picture():
    return images.read_image("tests/data/parrots_256x192.png")


def test_grown_model_at_step_zero_computes_what_it_was_grown_from(registered):
    assert_same_training_pass(registered["base"], registered["grown"])


def test_grown_model_at_step_zero_codes_what_it_was_grown_from(registered, picture):
    base = fcx.unpack(codec.encode(picture, BETA, "a-base")[0])
    grown = fcx.unpack(codec.encode(picture, BETA, "a-grown")[0])
    assert base.streams == grown.streams


def test_adjustment_moves_latents_by_less_than_a_bin_and_only_at_the_encoder(registered):
    trained = registered["trained"].eval()
    x, beta = torch.rand(1, 3, 64, 64), torch.tensor([0.01])
    with torch.no_grad():
        y, moved = trained.transform(x, beta), trained.analysis(x, beta)
        assert 0 < (moved - y).abs().max() < 1
        # the unquantized round trip is the bijection's, not the adjusted latents'
        assert (trained.synthesis(y, beta) - x).abs().max() < 1e-4
        assert torch.equal(trained.synthesis(y, beta), registered["base"].synthesis(y, beta))


def test_trained_adjustment_codes_other_latents_for_the_same_decoder(registered, picture):
    """Other integers in the file (the decoder is the base's, tested above); it decodes, and a
    re-encode gives the same bytes."""
    base_file, _ = codec.encode(picture, BETA, "a-base")
    adjusted, _ = codec.encode(picture, BETA, "a-trained")
    assert fcx.unpack(adjusted).streams != fcx.unpack(base_file).streams
    decoded = codec.decode(adjusted).rgb
    assert decoded.shape == picture.rgb.shape
    assert codec.encode(picture, BETA, "a-trained")[0] == adjusted   # byte-identical re-encode


def test_adjusted_encode_is_the_same_with_one_and_two_threads(registered, picture):
    files = []
    for threads in (1, 2):
        previous = torch.get_num_threads()
        torch.set_num_threads(threads)
        try:
            files.append(codec.encode(picture, BETA, "a-trained")[0])
        finally:
            torch.set_num_threads(previous)
    assert files[0] == files[1]
    assert np.array_equal(codec.decode(files[0]).rgb, codec.decode(files[1]).rgb)
