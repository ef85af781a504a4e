"""`encode --effort N`: the encoder refines the latents of each image (codec/refine.py). Effort 0
is today's encoder; effort > 0 writes files the unchanged decoder reads, with a lower D + β·R,
and the same bytes every time and with any thread count. Small crops of the bundled photo keep
every refinement here to a few seconds."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from click.testing import CliRunner

from flowcodec_cli import cli, codec, zoo
from flowcodec_cli.codec import effort as effort_levels
from flowcodec_cli.codec import fcx, refine
from flowcodec_cli.codec.picture import Picture
from flowcodec_cli.errors import EXIT_MODEL, EXIT_USAGE, CodecError
from flowcodec_cli.evaluation import bench
from flowcodec_cli.files import images
from flowcodec_cli.models.base import lagrangian

ROOT = Path(__file__).resolve().parents[1]
PARROTS = ROOT / "tests" / "data" / "parrots_256x192.png"
BETA = 0.004


def crop(top: int, left: int, height: int, width: int) -> Picture:
    rgb = images.read_image(PARROTS).rgb
    return Picture(np.ascontiguousarray(rgb[top:top + height, left:left + width]), None,
                   fcx.LAYOUT_RGB)


@pytest.fixture(scope="module")
def small() -> Picture:
    """A 64x64 detail of the photo (the bird's head and some background)."""
    return crop(64, 96, 64, 64)


@pytest.fixture(scope="module")
def coded(small):
    """effort → .fcx bytes of the small crop with the default model (flow) at β = BETA."""
    return {effort: codec.encode(small, BETA, effort=effort)[0] for effort in (0, 1)}


def objective(picture: Picture, data: bytes, beta: float) -> float:
    """The real D + β·R of a file: its decoded pixels and its whole size."""
    decoded = codec.decode(data).rgb.astype(np.int64)
    mse = float(((decoded - picture.rgb.astype(np.int64)) ** 2).mean()) / 255 ** 2
    return lagrangian(mse, 8 * len(data), picture.rgb.shape[0] * picture.rgb.shape[1], beta)


def test_effort_0_is_the_encoder_without_effort(small, coded):
    assert codec.encode(small, BETA)[0] == coded[0]


def test_effort_decodes_with_the_same_decoder_and_header(small, coded):
    plain, refined = (fcx.unpack(coded[e]).header for e in (0, 1))
    assert refined.beta == plain.beta and refined.model == plain.model
    assert (refined.height, refined.width, refined.tile) == (plain.height, plain.width, plain.tile)
    assert codec.decode(coded[1]).rgb.shape == small.rgb.shape


@pytest.mark.parametrize("model", ["flow", "hyperprior"])
def test_effort_lowers_the_real_objective(small, coded, model):
    """Measured on the file: decoded pixels and bytes, not the model's estimate (on this crop:
    4.5% lower for flow, 1.4% for hyperprior)."""
    plain, refined = coded[0], coded[1]
    if model != zoo.DEFAULT_MODEL:
        plain, refined = (codec.encode(small, BETA, model, effort=e)[0] for e in (0, 1))
    assert refined != plain
    assert objective(small, refined, BETA) < objective(small, plain, BETA)


def test_the_same_input_gives_the_same_bytes(small, coded):
    assert codec.encode(small, BETA, effort=1)[0] == coded[1]


def test_the_same_bytes_with_one_and_two_threads(small, coded):
    threads = torch.get_num_threads()
    try:
        torch.set_num_threads(1)
        one = codec.encode(small, BETA, effort=1)[0]
        torch.set_num_threads(2)
        two = codec.encode(small, BETA, effort=1)[0]
    finally:
        torch.set_num_threads(threads)
    assert one == two == coded[1]


def test_a_tiled_image_is_refined_tile_by_tile():
    """Two tiles of 64 px, each borrowing context from the other: decodes, and is no worse."""
    picture = crop(32, 32, 64, 128)
    plain = codec.encode(picture, BETA, tile=64)[0]
    refined = codec.encode(picture, BETA, tile=64, effort=1)[0]
    assert len(fcx.unpack(refined).streams) == 4
    assert objective(picture, refined, BETA) <= objective(picture, plain, BETA)


def test_the_starting_point_is_kept_when_no_step_improves(small, coded, monkeypatch):
    """Steps that only make things worse (a huge step size) leave effort 0's latents."""
    monkeypatch.setattr(refine, "STEP_SIZE", 1e6)
    assert codec.encode(small, BETA, effort=1)[0] == coded[0]


def test_distributed_model_and_unknown_level_are_refused(small):
    with pytest.raises(CodecError, match="side information its encoder never sees"):
        codec.encode(small, BETA, "dsc", effort=1)
    with pytest.raises(CodecError, match="levels are 0 to"):
        codec.encode(small, BETA, effort=effort_levels.MAX_EFFORT + 1)


# --- the command line ---------------------------------------------------------------------------

def run(*args):
    return CliRunner().invoke(cli.main, [str(a) for a in args])


def test_help_lists_the_levels_and_their_cost():
    text = " ".join(run("encode", "--help").output.split())
    assert "--effort" in text and "0<=x<=3" in text.replace(" ", "")
    assert ", ".join(map(str, effort_levels.STEPS[1:])) in text
    assert "768x512" in text


@pytest.mark.parametrize("value", ["4", "-1", "high"])
def test_invalid_effort_is_a_usage_error(value, tmp_path):
    result = run("encode", PARROTS, "-o", tmp_path / "x.fcx", "--effort", value)
    assert result.exit_code == EXIT_USAGE, result.output
    assert "Traceback" not in result.output
    errors = [line for line in result.stderr.splitlines() if line.startswith("Error:")]
    assert len(errors) == 1 and "--effort" in errors[0]
    assert not (tmp_path / "x.fcx").exists()


def test_effort_with_a_distributed_model_is_one_line_and_exit_5(tmp_path):
    result = run("encode", PARROTS, "-o", tmp_path / "x.fcx", "--model", "dsc", "--effort", "1")
    assert result.exit_code == EXIT_MODEL, result.output
    lines = result.stderr.splitlines()
    assert len(lines) == 1 and lines[0].startswith("flowcodec: ") and "--effort 1" in lines[0]
    assert not (tmp_path / "x.fcx").exists()


def test_json_record_carries_the_effort(tmp_path):
    source = tmp_path / "small.png"
    source.write_bytes(images.encode_image_bytes(crop(64, 96, 64, 64), ".png"))
    result = run("encode", source, "-o", tmp_path / "x.fcx", "--effort", "1", "--json",
                 "--beta", BETA)
    assert result.exit_code == 0, result.stderr
    record = json.loads(result.stdout)
    assert record["effort"] == 1
    assert (tmp_path / "x.fcx").read_bytes() == codec.encode(crop(64, 96, 64, 64), BETA,
                                                             effort=1)[0]


# --- bench --------------------------------------------------------------------------------------

def test_bench_effort_is_in_the_cache_id_and_the_report(tmp_path):
    plain = bench.plan_models(["hyperprior"], (BETA,), "cpu")[0]
    refined = bench.plan_models(["hyperprior"], (BETA,), "cpu", effort=1)[0]
    assert refined.cache_id == plain.cache_id + "-effort1" and refined.effort == 1
    folder = tmp_path / "images"
    folder.mkdir()
    (folder / "small.png").write_bytes(images.encode_image_bytes(crop(64, 96, 64, 64), ".png"))
    result = bench.run(folder, models=["hyperprior"], betas=(BETA,), no_classical=True,
                       cache_dir=tmp_path / "cache", report_dir=tmp_path / "report", quiet=True,
                       analysis_images=0, effort=1)
    assert not result.errors
    assert result.document["config"]["effort"] == 1
    assert [p["effort"] for p in result.document["points"]] == [1]


def test_bench_effort_with_stereo_is_a_usage_error(tmp_path):
    result = run("bench", tmp_path, "--stereo", "--effort", "1", "--quiet")
    assert result.exit_code == EXIT_USAGE, result.output
    assert result.stderr.startswith("flowcodec: bench: --effort")
