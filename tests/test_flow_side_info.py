"""The flow codec with a side view at the decoder (`flow-side-info`): it grows from the flow's
weights without changing it, its latent step never leaves the file's rounding cells, the
full-resolution alignment recovers sub-pixel shifts, and `--train-only` trains only the new parts."""

import json
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file, save_file

from flowcodec_cli.models import build_model
from flowcodec_cli.models.flow_side_info import LatentPull
from flowcodec_cli.models.layers.stereo import block_match, refine_disparity, warp_horizontally
from flowcodec_cli.training import loop as train
from flowcodec_cli.training.checkpoints import load_grown
from model_helpers import randomized

PAIRS = Path(__file__).parent / "data" / "stereo"
SMALL = {"levels": 2, "steps": 1, "hidden": 8, "hyper_width": 16, "hyper_channels": 8,
         "context_slices": [16, 32], "context_hidden": 8}
SIDE = {"fusion_width": 8, "latent_width": 8, "max_disparity": 32}


def test_grown_from_flow_weights_it_is_that_flow():
    """Every new output layer starts at zero: with any side view, the grown model decodes as the
    (trained) flow it grew from, and its analysis is the flow's."""
    torch.manual_seed(0)
    flow = randomized(build_model("flow", SMALL))
    grown = build_model("flow-side-info", {**SMALL, **SIDE})
    missing, unexpected, widened = load_grown(grown, flow.state_dict())
    assert not unexpected and not widened
    assert {name.split(".")[0] for name in missing} == {"latent_pull", "fusion"}
    x, side, beta = torch.rand(2, 3, 64, 96), torch.rand(2, 3, 64, 96), torch.tensor([0.001, 0.02])
    with torch.no_grad():
        y = torch.round(flow.analysis(x, beta))
        assert torch.equal(grown.analysis(x, beta), flow.analysis(x, beta))
        assert torch.equal(grown.synthesis(y, beta, side), flow.synthesis(y, beta))


def test_the_latent_step_stays_inside_the_rounding_cells():
    """However the network is trained and whatever the side view, each latent moves by at most
    half a quantization step: the file's information about y is never overruled."""
    torch.manual_seed(0)
    pull = LatentPull(channels=12, width=8)
    torch.nn.init.normal_(pull.net[-1].weight, std=10.0)  # a network that moves a lot
    y_hat = torch.round(torch.randn(2, 12, 4, 6) * 5)
    y_side = y_hat + torch.randn(2, 12, 4, 6) * 3
    moved = pull(y_hat, y_side, torch.rand(2, 1, 8, 12), torch.tensor([-1.0, 1.0]))
    assert (moved - y_hat).abs().max() <= 0.5
    assert (moved - y_hat).abs().max() > 0.1  # and it does move


def _textured(height: int, width: int) -> torch.Tensor:
    torch.manual_seed(0)
    return torch.nn.functional.avg_pool2d(torch.rand(1, 3, height, width), 3, 1, 1)


def test_block_matching_finds_a_known_disparity():
    """side(x) = view(x + 22): block matching at 1/2 resolution lands within a pixel of d = 22
    wherever the side view shows the content (not the first 22 columns)."""
    wide = _textured(48, 160)
    view, side = wide[..., :128], wide[..., 22:150]
    disparity = block_match(view, side, -8, 64, factor=2, window=5)
    assert disparity.shape == (1, 1, 48, 128)
    assert (disparity[..., 4:-4, 32:-4] - 22).abs().max() <= 1


def test_full_resolution_refinement_recovers_a_sub_pixel_offset():
    """The coarse disparity is off by 1.5 px; block matching against the view finds the true
    shift (away from the border the side view cannot see), and its cost there is about 0."""
    side = _textured(40, 100)
    truth = torch.full((1, 1, 40, 100), 7.5)
    view = warp_horizontally(side, truth)
    coarse = truth + 1.5
    offsets = (-2.0, -1.5, -1.0, -0.5, 0.5, 1.0, 1.5, 2.0)
    refined, cost = refine_disparity(view, side, coarse, offsets)
    assert (refined - truth)[..., 4:-4, 16:-4].abs().max() < 1e-6
    assert cost[..., 4:-4, 16:-4].max() < 1e-5
    assert torch.equal(refine_disparity(view, side, coarse, ())[0], coarse)


def test_train_only_freezes_everything_else():
    model = build_model("flow-side-info", {**SMALL, **SIDE})
    train.freeze_all_but(model, ["latent_pull", "fusion"])
    trainable = {name.split(".")[0] for name, p in model.named_parameters() if p.requires_grad}
    assert trainable == {"latent_pull", "fusion"}
    with pytest.raises(SystemExit, match="no \\['decoder'\\]"):
        train.freeze_all_but(model, ["decoder"])


def test_side_stage_trains_with_the_flow_frozen(tmp_path):
    """Two steps of `flowcodec train --train-only`: the flow's weights do not move, the side
    stage's do."""
    config = json.dumps({**SMALL, **SIDE})
    train.main(["--model", "flow-side-info", "--config", config, "--data", str(PAIRS / "left"),
                "--stereo", str(PAIRS), "--run-dir", str(tmp_path), "--steps", "2", "--batch", "2",
                "--crop", "64", "--crop-width", "128", "--threads", "1", "--log-every", "1",
                "--no-bf16", "--train-only", "latent_pull", "fusion", "--lr", "0.01"])
    from flowcodec_cli.training.checkpoints import load_checkpoint
    trained, _ = load_checkpoint(tmp_path / "checkpoint.pt")
    torch.manual_seed(0)
    fresh = build_model("flow-side-info", {**SMALL, **SIDE})
    before = dict(fresh.named_parameters())
    after = dict(trained.named_parameters())
    moved = {n.split(".")[0] for n in after if not torch.equal(after[n], before[n])}
    assert "fusion" in moved and not moved & {"levels", "gain", "h_a", "h_s"}


def test_graft_moves_the_side_stage_onto_newer_flow_weights(tmp_path):
    """`flowcodec train graft`: the side stage of one file, every other tensor from the newer
    flow; a flow built differently is refused."""
    from flowcodec_cli import zoo
    from flowcodec_cli.training.checkpoints import export_weights
    torch.manual_seed(0)
    old_flow, new_flow = randomized(build_model("flow", SMALL), 1), randomized(build_model("flow", SMALL), 2)
    dsc = build_model("flow-side-info", {**SMALL, **SIDE})
    load_grown(dsc, old_flow.state_dict())
    randomized(dsc.fusion, 3)
    export_weights(dsc, tmp_path / "dsc.safetensors", trained_steps=5)
    export_weights(new_flow, tmp_path / "flow.safetensors", trained_steps=9)
    train.main(["graft", str(tmp_path / "dsc.safetensors"), str(tmp_path / "flow.safetensors"),
                str(tmp_path / "out.safetensors"), "--parts", "latent_pull", "fusion"])
    _, _, grafted = zoo.load_state(tmp_path / "out.safetensors")
    _, _, side = zoo.load_state(tmp_path / "dsc.safetensors")
    _, _, flow = zoo.load_state(tmp_path / "flow.safetensors")
    assert all(torch.equal(grafted[k], side[k]) for k in side if k.split(".")[0] == "fusion")
    assert all(torch.equal(grafted[k], flow[k]) for k in flow)
    assert zoo.trained_steps(tmp_path / "out.safetensors") == 9
    # a side stage written before a config field existed (so at its default) grafts the same
    metadata = zoo.read_metadata(tmp_path / "dsc.safetensors")
    older = {k: v for k, v in json.loads(metadata["config"]).items() if k != "context_lrp"}
    save_file(load_file(tmp_path / "dsc.safetensors"), tmp_path / "older.safetensors",
              metadata={**metadata, "config": json.dumps(older)})
    train.main(["graft", str(tmp_path / "older.safetensors"), str(tmp_path / "flow.safetensors"),
                str(tmp_path / "older-out.safetensors"), "--parts", "latent_pull", "fusion"])
    again = zoo.load_state(tmp_path / "older-out.safetensors")
    assert again[1] == zoo.load_state(tmp_path / "out.safetensors")[1]  # the config, defaults filled
    assert all(torch.equal(again[2][k], grafted[k]) for k in grafted)
    export_weights(build_model("flow", {**SMALL, "hidden": 4}), tmp_path / "other.safetensors")
    with pytest.raises(SystemExit, match="built differently"):
        train.main(["graft", str(tmp_path / "dsc.safetensors"), str(tmp_path / "other.safetensors"),
                    str(tmp_path / "x.safetensors"), "--parts", "fusion"])


def test_a_side_stage_grafted_onto_a_checkerboard_flow_codes_with_its_entropy_model(tmp_path):
    """The entropy model follows the base (checkpoints.ENTROPY_FIELDS): the side stage never reads
    it, so a side stage grafted onto a flow whose entropy model grew the checkerboard codes its y
    stream in that flow's halves and decodes with the side view, the same pixels every time."""
    import numpy as np
    from flowcodec_cli import codec, zoo
    from flowcodec_cli.files.images import read_image
    from flowcodec_cli.training.checkpoints import export_weights
    from model_helpers import temporary_zoo
    torch.manual_seed(0)
    export_weights(randomized(build_model("flow-side-info", {**SMALL, **SIDE}), 1),
                   tmp_path / "dsc.safetensors")
    checker = randomized(build_model("flow", {**SMALL, "context_checkerboard": True}), 2)
    export_weights(checker, tmp_path / "flow.safetensors")
    train.main(["graft", str(tmp_path / "dsc.safetensors"), str(tmp_path / "flow.safetensors"),
                str(tmp_path / "out.safetensors"), "--parts", "latent_pull", "fusion"])
    arch, config, grafted = zoo.load_state(tmp_path / "out.safetensors")
    _, _, flow = zoo.load_state(tmp_path / "flow.safetensors")
    assert arch == "flow-side-info" and config["context_checkerboard"]
    assert all(torch.equal(grafted[k], flow[k]) for k in flow)
    model = build_model(arch, config)
    model.load_state_dict({k: v.float() for k, v in grafted.items()})
    pairs = Path(__file__).parent / "data" / "stereo"
    left, right = (read_image((pairs / side / "cup_upright.png").read_bytes()) for side in ("left", "right"))
    with temporary_zoo(tmp_path, {"t-dsc": model}, "flow-side-info"):
        data, _ = codec.encode(left, 0.01, "t-dsc")
        assert codec.LoadedCodec.get("t-dsc").segment_count == 2 * len(SMALL["context_slices"])
        decoded = codec.decode(data, side_info=right).rgb
        assert decoded.shape == left.rgb.shape
        assert np.array_equal(codec.decode(data, side_info=right).rgb, decoded)
