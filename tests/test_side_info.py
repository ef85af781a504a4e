"""Side information (distributed source coding): alignment layers, training pairs, the .fcx flag,
and the decode rules — needs the side image, of the right size; a wrong one still decodes."""

import json
import random
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from flowcodec_cli.evaluation.bench import stereo as bench_stereo
from flowcodec_cli import codec
from flowcodec_cli.codec import fcx
from flowcodec_cli.training import stereo_pairs as stereo
from flowcodec_cli.training import loop as train
from flowcodec_cli import zoo
from flowcodec_cli.files.images import Picture, read_image
from flowcodec_cli.models import build_model
from flowcodec_cli.models.layers.stereo import DisparityMatcher, shift_right, warp_horizontally

PAIRS = Path(__file__).parent / "data" / "stereo"
NAME = "cup_upright.png"


def _picture(side: str, name: str = NAME) -> Picture:
    return read_image((PAIRS / side / name).read_bytes())


def _psnr(a: np.ndarray, b: np.ndarray) -> float:
    return 10 * np.log10(255.0 ** 2 / np.mean((a.astype(float) - b) ** 2))


# --- layers -----------------------------------------------------------------------------------


def test_shift_right_moves_columns_and_fills_zeros():
    x = torch.arange(6.0).view(1, 1, 1, 6)
    assert shift_right(x, 2).flatten().tolist() == [0, 0, 0, 1, 2, 3]
    assert shift_right(x, -2).flatten().tolist() == [2, 3, 4, 5, 0, 0]
    assert torch.equal(shift_right(x, 0), x)


def test_warp_by_an_integer_disparity_is_a_shift():
    image = torch.rand(1, 3, 8, 32)
    warped = warp_horizontally(image, torch.full((1, 1, 2, 8), 4.0))
    assert torch.allclose(warped[..., 4:], image[..., :-4], atol=1e-5)


def test_matcher_finds_a_known_disparity_without_training():
    """Matching is a normalized correlation over offsets: even random features find a shift of a
    textured image; the soft-argmax lands on it away from the border the side view cannot see."""
    torch.manual_seed(0)
    wide = torch.rand(1, 3, 32, 160)
    view, side = wide[..., :128], wide[..., 24:152]  # side(x) = view(x + 24): d = 24
    with torch.no_grad():
        disparity, confidence = DisparityMatcher()(view, side)
    interior = disparity[..., 8:-1]  # columns 0-5 see nothing in the side view; the last sees padding
    assert (interior - 24).abs().max() < 2.0
    assert confidence[..., 8:-1].mean() > 0.5


def test_side_info_model_starts_as_the_hyperprior():
    """New output layers start at zero: built on hyperprior weights, it is that hyperprior."""
    torch.manual_seed(0)
    base = build_model("hyperprior", {"channels": 16, "latent_channels": 16, "hyper_channels": 8})
    for mode in ("distributed", "joint"):
        model = build_model("side-info", {**base.config.to_dict(), "mode": mode,
                                          "refine_offsets": [-1, 1]})
        missing, unexpected = model.load_state_dict(base.state_dict(), strict=False)
        assert not unexpected and missing
        x, side, beta = torch.rand(1, 3, 64, 64), torch.rand(1, 3, 64, 64), torch.tensor([0.01])
        with torch.no_grad():
            y0 = base.analysis(x, beta)
            y = model.analysis(x, beta, side) if model.side_info_at_encoder else model.analysis(x, beta)
            assert torch.allclose(y, y0)
            assert torch.allclose(model.synthesis(y, beta, side), base.synthesis(y, beta), atol=1e-6)


def test_a_grown_fusion_layer_keeps_computing_the_same():
    """--init-from a side-info model with fewer fusion inputs: the new input channels start at
    zero, so the grown model reconstructs exactly as the trained one did."""
    torch.manual_seed(0)
    small = {"channels": 16, "latent_channels": 16, "hyper_channels": 8}
    trained = build_model("side-info", small)
    torch.nn.init.normal_(trained.fusion.net[-1].weight, std=0.01)  # a fusion that does something
    grown = build_model("side-info", {**small, "refine_offsets": [-2, 2]})
    missing, unexpected, widened = train.load_grown(grown, trained.state_dict())
    assert not missing and not unexpected and widened == ["fusion.net.0.weight"]
    y, side, beta = torch.rand(1, 16, 4, 4) * 4, torch.rand(1, 3, 64, 64), torch.tensor([0.01])
    with torch.no_grad():
        assert torch.allclose(grown.synthesis(y, beta, side), trained.synthesis(y, beta, side), atol=1e-6)


def test_unknown_mode_is_refused():
    with pytest.raises(ValueError, match="mode"):
        build_model("side-info", {"mode": "psychic"})


# --- training pairs ---------------------------------------------------------------------------


def test_synthetic_pair_follows_the_stereo_convention():
    """With no relief, jitter or photometric change, view(x) = side(x − d) for the drawn d."""
    photo = (torch.rand(3, 200, 400) * 255).to(torch.uint8)

    class Flat(random.Random):  # relief, jitter, noise and gain at their neutral values
        def uniform(self, a, b):
            return {(0.85, 1.15): 1.0, (-0.04, 0.04): 0.0, (-1.0, 1.0): 0.0, (0, 0.01): 0.0}.get(
                (a, b), a if a == 0 and b <= 16 else 40.0)

        def random(self):
            return 0.9  # no flip

    view, side = stereo.synthetic_pair(photo, 64, 96, Flat(1))
    assert torch.allclose(view[..., 40:], side[..., :-40], atol=1e-4)


def test_real_pair_flip_swaps_the_views():
    left, right = torch.zeros(3, 8, 8, dtype=torch.uint8), torch.full((3, 8, 8), 255, dtype=torch.uint8)

    class AlwaysFlip(random.Random):
        def random(self):
            return 0.1

    view, side = stereo.real_pair((left, right), 8, 8, AlwaysFlip(0))
    assert view.min() == 1.0 and side.max() == 0.0


def test_side_info_training_runs_on_pairs(tmp_path):
    tiny = json.dumps({"channels": 8, "latent_channels": 8, "hyper_channels": 4,
                       "match_features": 4, "fusion_width": 4, "max_disparity": 32})
    train.main(["--model", "side-info", "--config", tiny, "--data", str(PAIRS / "left"),
                "--stereo", str(PAIRS), "--run-dir", str(tmp_path), "--steps", "2", "--batch", "2",
                "--crop", "64", "--crop-width", "128", "--threads", "1", "--log-every", "1", "--no-bf16"])
    log = [json.loads(line) for line in (tmp_path / "log.jsonl").read_text().splitlines()]
    assert [r["step"] for r in log] == [1, 2] and all(r["psnr"] > 0 for r in log)


# --- the codec --------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def distributed_file():
    data, stats = codec.encode(_picture("left"), 0.01, "dsc")
    return data


def test_distributed_round_trip_sets_the_flag_and_uses_the_side_view(distributed_file):
    header = fcx.unpack(distributed_file).header
    assert header.needs_side_info and header.model == "dsc"
    left, right = _picture("left"), _picture("right")
    decoded = codec.decode(distributed_file, side_info=right)
    assert decoded.rgb.shape == left.rgb.shape
    assert _psnr(left.rgb, decoded.rgb) > 25
    assert np.array_equal(codec.decode(distributed_file, side_info=right).rgb, decoded.rgb)


def test_encoding_is_byte_identical(distributed_file):
    again, _ = codec.encode(_picture("left"), 0.01, "dsc")
    assert again == distributed_file


def test_missing_or_misfit_side_info_is_an_error(distributed_file):
    with pytest.raises(codec.SideInfoError, match="needs side information"):
        codec.decode(distributed_file)
    with pytest.raises(codec.SideInfoError, match="256x192"):
        codec.decode(distributed_file, side_info=read_image(Path(__file__).parent / "data" / "kodim23.png"))


def test_wrong_side_image_still_decodes_to_a_valid_image(distributed_file):
    left = _picture("left")
    wrong = _picture("right", "bit_box_upright.png")
    decoded = codec.decode(distributed_file, side_info=wrong)
    assert decoded.rgb.shape == left.rgb.shape and decoded.rgb.dtype == np.uint8
    assert _psnr(left.rgb, decoded.rgb) > 15


def test_the_distributed_encoder_refuses_side_info_and_joint_needs_it():
    with pytest.raises(codec.SideInfoError, match="does not use side information at the encoder"):
        codec.encode(_picture("left"), 0.01, "dsc", side_info=_picture("right"))
    with pytest.raises(codec.SideInfoError, match="needs side information"):
        codec.encode(_picture("left"), 0.01, "dsc-joint")
    data, _ = codec.encode(_picture("left"), 0.01, "dsc-joint", side_info=_picture("right"))
    assert codec.decode(data, side_info=_picture("right")).rgb.shape == _picture("left").rgb.shape


def test_flag_that_does_not_fit_the_model_is_a_format_error():
    data, _ = codec.encode(_picture("left"), 0.01, "hyperprior")
    container = fcx.unpack(data)
    container.header.flags |= fcx.FLAG_SIDE_INFO
    with pytest.raises(fcx.FormatError, match="side-information flag"):
        codec.decode(fcx.pack(container), side_info=_picture("right"))


def test_cli_exit_codes_for_side_info(tmp_path, distributed_file):
    fcx_path = tmp_path / "cup.fcx"
    fcx_path.write_bytes(distributed_file)
    cli = [sys.executable, "-m", "flowcodec_cli"]
    missing = subprocess.run([*cli, "decode", str(fcx_path), "-o", str(tmp_path / "a.png")],
                             capture_output=True, text=True)
    assert missing.returncode == 6 and "side information" in missing.stderr
    assert missing.stderr.count("\n") == 1 and not (tmp_path / "a.png").exists()
    ok = subprocess.run([*cli, "decode", str(fcx_path), "--side-info", str(PAIRS / "right" / NAME),
                         "-o", str(tmp_path / "b.png"), "--quiet"], capture_output=True, text=True)
    assert ok.returncode == 0 and (tmp_path / "b.png").exists()


def test_stereo_bench_reports_three_curves_and_wrong_side_psnr(tmp_path):
    result = bench_stereo.run_stereo(PAIRS, betas=(0.003, 0.03), threads=1,
                                     report_dir=tmp_path, quiet=True)
    doc = result.document
    assert not result.errors
    assert set(doc["curves"]) == {"dsc-separate", "dsc", "dsc-joint"}
    assert doc["curves"]["dsc"]["role"] == "distributed"
    assert all(r["psnr_wrong_side"] is not None for r in doc["curves"]["dsc"]["points"])
    assert all(r["psnr_wrong_side"] is None for r in doc["curves"]["dsc-separate"]["points"])
    assert {(f["curve"], f["reference"]) for f in doc["bd"]} >= {("dsc", "dsc-separate"), ("dsc", "dsc-joint")}
    assert (tmp_path / "stereo.md").read_text().startswith("# Side information")


def test_kodak_bench_leaves_side_info_models_out():
    from flowcodec_cli.evaluation import bench
    assert zoo.REGISTRY["dsc"].stereo and zoo.REGISTRY["dsc-separate"].stereo
    with pytest.raises(bench.BenchUsageError, match="--stereo"):
        bench.run(PAIRS / "left", models=["dsc"], no_classical=True)


@pytest.mark.parametrize("threads", ["1", "2"])
def test_side_info_decoding_is_identical_across_threads(tmp_path, distributed_file, threads):
    """The side path (matching, warping, fusion) runs after entropy decoding, so it cannot
    desynchronize anything; it is still deterministic, so a file decodes to the same PNG anywhere."""
    import hashlib
    import os
    path = tmp_path / "cup.fcx"
    path.write_bytes(distributed_file)
    script = ("import sys, hashlib; from flowcodec_cli import codec; from flowcodec_cli.files import images; "
              "p = codec.decode(open(sys.argv[1], 'rb').read(), side_info=images.read_image(sys.argv[2])); "
              "print(hashlib.sha256(p.rgb.tobytes()).hexdigest())")
    out = subprocess.run([sys.executable, "-c", script, str(path), str(PAIRS / "right" / NAME)],
                         env={**os.environ, "OMP_NUM_THREADS": threads}, check=True,
                         capture_output=True, text=True)
    expected = codec.decode(distributed_file, side_info=_picture("right")).rgb.tobytes()
    assert out.stdout.strip() == hashlib.sha256(expected).hexdigest()


def test_tiled_side_info_file_decodes_like_the_untiled_one():
    """Each tile is synthesized with the side view's matching window (tile + shared context)."""
    left, right = _picture("left"), _picture("right")
    tiled, _ = codec.encode(left, 0.01, "dsc", tile=64)
    whole, _ = codec.encode(left, 0.01, "dsc")
    assert fcx.unpack(tiled).header.tile_grid == (3, 4)
    tiled_psnr = _psnr(left.rgb, codec.decode(tiled, side_info=right).rgb)
    assert tiled_psnr > _psnr(left.rgb, codec.decode(whole, side_info=right).rgb) - 0.3
