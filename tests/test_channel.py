"""Joint source–channel coding (models/channel.py, codec/jscc.py, `flowcodec channel`, `bench
--channel`): the power constraint, the SNR definition, seeded reproducibility, the ratios, the
untrained receiver as an exact baseline, the command line and a training smoke test."""

from __future__ import annotations

import json
import math
import re
from fractions import Fraction
from pathlib import Path

import numpy as np
import pytest
import torch
from click.testing import CliRunner
from PIL import Image

from flowcodec_cli import cli, zoo
from flowcodec_cli.codec import jscc
from flowcodec_cli.models import build_model
from flowcodec_cli.models.channel import (STATS_PATH, ChannelCodec, awgn, capacity, noise_variance,
                                          parse_ratio, sent_channels)
from flowcodec_cli.training import loop as train
from flowcodec_cli.training.loss import rd_loss

from model_helpers import randomized

DATA = Path(__file__).parent / "data"
TINY = {"levels": 2, "steps": 1, "hidden": 8, "hyper_width": 16, "hyper_channels": 8,
        "receiver_hidden": 8}   # 48 latent channels: 1/6 sends 8, 1/12 sends 4


def tiny(**config) -> ChannelCodec:
    """A randomized tiny channel model whose receiver is still untrained (the MMSE baseline)."""
    model = randomized(build_model("flow-channel", {**TINY, **config})).eval()
    with torch.no_grad():
        model.receiver.conv_out.weight.zero_()
        model.receiver.conv_out.bias.zero_()
    return model


def photo(width: int = 64, height: int = 48) -> np.ndarray:
    with Image.open(DATA / "parrots_256x192.png") as im:
        return np.array(im.convert("RGB"))[:height, :width]


# --- the channel's definitions ----------------------------------------------------------------

def test_power_is_one_per_channel_use_for_every_image():
    model = tiny()
    x = torch.rand(3, 3, 32, 48)
    x[1] *= 0.1   # a dark image: its symbols are scaled up to the same power
    for ratio in ("1/6", "1/12", "1"):
        v, scale = model.send(model.latents(x), ratio)
        k = v[0].numel()
        assert k == sent_channels(ratio, 48) * 8 * 12   # levels 2: latents at 1/4 size
        assert torch.allclose(v.square().sum(dim=(1, 2, 3)) / k, torch.ones(3), atol=1e-5)
        assert scale.shape == (3,) and bool((scale > 0).all())


def test_noise_variance_is_ten_to_the_minus_snr_over_ten():
    generator = torch.Generator().manual_seed(0)
    for snr in (0.0, 7.0, 20.0):
        received = awgn(torch.zeros(1, 400_000), torch.tensor([snr]), generator)
        expected = 10 ** (-snr / 10)
        assert float(noise_variance(torch.tensor([snr]))) == pytest.approx(expected, rel=1e-6)
        assert float(received.var()) == pytest.approx(expected, rel=0.01)
        assert abs(float(received.mean())) < 0.01 * math.sqrt(expected)
    assert capacity(0.0) == pytest.approx(0.5)
    assert capacity(10 * math.log10(3)) == pytest.approx(1.0)


def test_ratios_name_whole_latent_channels():
    assert parse_ratio("1/6") == Fraction(1, 6) and parse_ratio(" 0.5 ") == Fraction(1, 2)
    assert sent_channels("1/6", 192) == 32 and sent_channels("1/12", 192) == 16
    assert sent_channels("1", 192) == 192 and sent_channels("5/96", 192) == 10
    for bad, words in (("1/7", "unsupported"), ("0", "(0, 1]"), ("2", "(0, 1]"),
                       ("1/0", "expected"), ("fast", "expected")):
        with pytest.raises(ValueError, match=re.escape(words)):
            sent_channels(bad, 192)


# --- the model ----------------------------------------------------------------------------------

def test_flow_weights_load_under_their_own_names():
    flow_config = {k: v for k, v in TINY.items() if k != "receiver_hidden"}
    flow = randomized(build_model("flow", flow_config))
    model = build_model("flow-channel", TINY)
    missing, unexpected = model.load_state_dict(flow.state_dict(), strict=False)
    assert not unexpected
    assert {k.split(".")[0] for k in missing} == {"latent_mean", "latent_log_std",
                                                 "power_log_gain", "receiver"}
    x = torch.rand(1, 3, 32, 32)
    beta = torch.tensor([model.config.flow_beta])
    assert torch.equal(model.latents(x), flow.flow(x, beta))


def test_shipped_flow_statistics_are_the_default_of_the_full_size_model():
    config = build_model("flow-channel").config
    stats = json.loads(STATS_PATH.read_text())
    assert stats["weights_sha256"] == zoo.REGISTRY["flow"].sha256
    assert list(config.channel_order) == stats["channel_order"]
    assert sorted(config.channel_order) == list(range(192))


def test_the_untrained_receiver_is_the_mmse_estimate():
    model = tiny()
    h = model.latents(torch.rand(2, 3, 32, 32))
    v, scale = model.send(h)
    snr = torch.tensor([3.0, 15.0])
    r = awgn(v, snr, torch.Generator().manual_seed(1))
    mmse, rho = model.mmse(r, scale, snr)
    assert torch.equal(model.receive(r, scale, snr), mmse)
    sent = model.order[:model.sent_channels()]
    unsent = model.order[model.sent_channels():]
    assert bool((rho[:, unsent] == 1).all()) and bool((rho[:, sent] < 1).all())
    assert bool((rho[0, sent] > rho[1, sent]).all())   # less noise, less left to guess
    assert torch.equal(mmse[:, unsent], model.latent_mean[unsent].view(1, -1, 1, 1).expand(
        2, -1, *h.shape[2:]))


def test_all_channels_at_very_high_snr_give_the_image_back():
    """Ratio 1 sends every latent: with (almost) no noise, f⁻¹ inverts f exactly."""
    model = tiny()
    x = torch.rand(2, 3, 32, 48)
    with torch.no_grad():
        out = model.transmit(x, torch.tensor([150.0, 150.0]), "1", torch.Generator().manual_seed(0))
    assert float((out["x_hat"] - x).abs().max()) < 1e-3


def test_higher_snr_gives_higher_psnr():
    """The shipped flow with the untrained receiver on a photo, at ratios 1/6 and 1/12."""
    rgb = photo(256, 192)
    model = jscc.load().model
    for ratio in ("1/6", "1/12"):
        psnrs = [r.psnr for r in jscc.transmit(model, rgb, (0.0, 5.0, 10.0, 20.0), ratio, 0)]
        assert psnrs == sorted(psnrs) and psnrs[-1] - psnrs[0] > 3, (ratio, psnrs)
    one_sixth = jscc.transmit(model, rgb, (20.0,), "1/6", 0)[0].psnr
    assert one_sixth > jscc.transmit(model, rgb, (20.0,), "1/12", 0)[0].psnr


def test_the_same_seed_gives_the_same_pixels_and_another_seed_other_pixels():
    model = tiny()
    rgb = photo()
    first, again, other = (jscc.transmit(model, rgb, (5.0,), "1/6", seed)[0].rgb
                           for seed in (0, 0, 1))
    assert np.array_equal(first, again) and not np.array_equal(first, other)


def test_one_snr_training_and_zero_bits():
    model = build_model("flow-channel", {**TINY, "snr_min": 7.0, "snr_max": 7.0})
    torch.manual_seed(0)
    out = model(torch.rand(2, 3, 32, 32), torch.tensor([0.001, 0.01]))
    assert out["snr_db"].tolist() == [7.0, 7.0]
    assert not out["y_bits_per_image"].any() and not out["z_bits_per_image"].any()
    x = torch.rand(2, 3, 32, 32)
    torch.manual_seed(1)
    loss, stats = rd_loss(model, x, torch.tensor([0.0001, 0.05]), bf16=False)
    torch.manual_seed(1)
    mse = ((model(x, None)["x_hat"] - x) ** 2).mean()
    assert stats["bpp"] == 0   # and every sample weighs 1:
    assert float(loss.detach()) == pytest.approx(float(mse.detach()), rel=1e-5)
    with pytest.raises(ValueError, match="snr_min"):
        build_model("flow-channel", {**TINY, "snr_min": 9.0, "snr_max": 3.0})


def test_training_from_the_flow_weights_and_loading_the_result(tmp_path):
    """`flowcodec train --model flow-channel --init-from weights/flow.safetensors`: two steps,
    then the exported file is a channel model `flowcodec channel --weights` runs."""
    run = tmp_path / "run"
    train.main(["--model", "flow-channel", "--init-from", str(zoo.weights_path("flow")),
                "--config", json.dumps({"ratio": "1/12", "snr_min": 10, "snr_max": 10}),
                "--data", str(DATA), "--run-dir", str(run), "--steps", "2", "--batch", "2",
                "--crop", "32", "--threads", "1", "--log-every", "1", "--no-bf16"])
    log = [json.loads(line) for line in (run / "log.jsonl").read_text().splitlines()]
    assert [r["step"] for r in log] == [1, 2] and all(r["bpp"] == 0 and r["psnr"] > 10 for r in log)
    weights = tmp_path / "jscc.safetensors"
    train.main(["export", str(run / "checkpoint.pt"), str(weights)])
    loaded = jscc.load(weights)
    assert loaded.trained and loaded.model.config.ratio == "1/12"
    assert loaded.model.config.snr_min == loaded.model.config.snr_max == 10


def test_a_registered_channel_entry_is_the_default_and_no_file_codec(tmp_path, monkeypatch):
    """What a trained file needs: a zoo entry. It becomes the channel default, and the file
    codec and the normal bench refuse it."""
    from flowcodec_cli.codec import CodecError, LoadedCodec
    from flowcodec_cli.evaluation.bench.run import _check_options
    from flowcodec_cli.training.checkpoints import export_weights
    model = build_model("flow-channel", {**TINY, "ratio": "1/12"})
    sha = export_weights(model, tmp_path / "jscc.safetensors", trained_steps=5)
    monkeypatch.setenv("FLOWCODEC_WEIGHTS", str(tmp_path))
    monkeypatch.setitem(zoo.REGISTRY, zoo.CHANNEL_MODEL, zoo.ZooEntry(
        zoo.CHANNEL_MODEL, "flow-channel", "jscc.safetensors", sha, channel=True))
    loaded = jscc.load()
    assert loaded.trained and loaded.name == zoo.CHANNEL_MODEL and loaded.sha256 == sha
    with pytest.raises(CodecError, match="channel"):
        LoadedCodec.get(zoo.CHANNEL_MODEL)
    models, *_ = _check_options(None, None, None, True, None, None, None)
    assert zoo.CHANNEL_MODEL not in models


# --- the command line -------------------------------------------------------------------------

@pytest.fixture(scope="module")
def image(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("channel") / "small.png"
    Image.fromarray(photo()).save(path)
    return path


def run(*args: str):
    return CliRunner().invoke(cli.main, ["channel", *args])


def test_cli_writes_the_received_image_reproducibly(image, tmp_path):
    out, again, other = tmp_path / "a.png", tmp_path / "b.png", tmp_path / "c.png"
    result = run(str(image), "--snr", "10", "--ratio", "1/6", "--seed", "0", "-o", str(out))
    assert result.exit_code == 0, result.output
    assert "PSNR" in result.output and "32 of 192 latent channels" in result.output
    assert run(str(image), "--snr", "10", "--seed", "0", "-o", str(again)).exit_code == 0
    assert run(str(image), "--snr", "10", "--seed", "1", "-o", str(other)).exit_code == 0
    assert out.read_bytes() == again.read_bytes() != other.read_bytes()
    with Image.open(out) as im:
        assert im.size == (64, 48)

    before = out.read_bytes()
    refused = run(str(image), "--snr", "0", "-o", str(out))
    assert refused.exit_code == 7 and "already exists" in refused.output
    assert out.read_bytes() == before
    assert run(str(image), "--snr", "0", "-o", str(out), "--force").exit_code == 0
    assert out.read_bytes() != before


def test_cli_json_and_sweep(image):
    result = run(str(image), "--snr", "2", "--snr", "12", "--json", "--ratio", "1/12")
    assert result.exit_code == 0, result.output
    records = [json.loads(line) for line in result.output.splitlines()]
    assert [r["snr_db"] for r in records] == [2.0, 12.0]
    assert records[0]["psnr"] < records[1]["psnr"]
    assert records[0]["sent_channels"] == 16 and records[0]["channel_uses"] == 16 * 8 * 6
    assert records[0]["pixel_values"] == 3 * 64 * 48 and records[0]["output"] is None
    sweep = run(str(image), "--sweep")
    assert sweep.exit_code == 0, sweep.output
    assert len(sweep.output.splitlines()) == 2 + len(jscc.SWEEP_SNRS)


@pytest.mark.parametrize("args, code, words", [
    (["--snr", "5", "--ratio", "1/7", "-o", "OUT"], 2, "unsupported"),
    (["--snr", "5", "--ratio", "3/2", "-o", "OUT"], 2, "(0, 1]"),
    (["-o", "OUT"], 2, "--snr"),
    (["--snr", "5", "--sweep"], 2, "exclude"),
    (["--snr", "nan", "-o", "OUT"], 2, "finite"),
    (["--snr", "1", "--snr", "2", "-o", "OUT"], 2, "one --snr"),
    (["--snr", "5", "-o", "OUT.fcx"], 2, "names no image format"),
    (["--snr", "5", "--weights", "no-such.safetensors", "-o", "OUT"], 5, "not found"),
])
def test_cli_errors_are_one_line_and_write_nothing(image, tmp_path, args, code, words):
    out = str(tmp_path / "out.png")
    result = run(str(image), *[a.replace("OUT", out) for a in args])
    assert result.exit_code == code, result.output
    assert words in result.output and len(result.output.strip().splitlines()) == 1
    assert "Traceback" not in result.output and not list(tmp_path.iterdir())


@pytest.mark.parametrize("args, words", [
    (["--ratio", "1/6"], "needs --channel"),
    (["--channel", "--stereo"], "excludes"),
    (["--channel", "--ratio", "1/7"], "unsupported"),
    (["--channel", "--models", "dsc"], "not a single-image file codec"),
])
def test_bench_channel_usage_errors(image, args, words):
    result = CliRunner().invoke(cli.main, ["bench", str(image.parent), *args])
    assert result.exit_code == 2 and words in result.output, result.output


def test_cli_unreadable_image(tmp_path):
    bad = tmp_path / "bad.png"
    bad.write_bytes(b"not an image")
    result = run(str(bad), "--snr", "3")
    assert result.exit_code == 3 and "not a recognized image" in result.output


# --- bench --channel ----------------------------------------------------------------------------

def test_bench_channel_compares_joint_and_separate_coding(image, tmp_path):
    from flowcodec_cli.evaluation.bench.channel import run_channel
    result = run_channel(image.parent, snrs=(0.0, 20.0), design_snrs=(10.0,),
                         report_dir=tmp_path, quiet=True)
    doc = result.document
    assert not result.errors and {p.name for p in result.written} >= {"channel.json", "channel.md"}
    (jscc_label, jscc_curve), (sep_label, sep_curve) = doc["curves"].items()
    assert jscc_curve["kind"] == "jscc" and sep_curve["kind"] == "separate"
    (kept,) = doc["separate_files"]
    uses = 32 * 8 * 6   # 32 channels of 8x6 latents
    assert kept["budget_bytes"] == int(uses * capacity(10.0)) // 8
    assert kept["bytes"] is not None and kept["bytes"] <= kept["budget_bytes"]
    low, high = sep_curve["points"]
    assert low["lost"] == 1 and low["psnr"] == pytest.approx(kept["psnr_lost"])
    assert high["lost"] == 0 and high["psnr"] == pytest.approx(kept["psnr_decoded"])
    (row,) = doc["comparison"]
    assert row["design_snr_db"] == 10.0 and row["gap_at_design_db"] is not None
    assert "## PSNR against channel SNR" in (tmp_path / "channel.md").read_text()


def test_ratio_picks_the_zoo_weights_trained_for_it():
    """`--ratio 1/12` gets the file trained at 1/12; a ratio no file was trained for (or none)
    gets flow-channel, which sends at any supported ratio."""
    assert jscc.registered("1/12") == jscc.registered(Fraction(2, 24)) == "flow-channel-1-12"
    assert jscc.registered("1/6") == jscc.registered(None) == zoo.CHANNEL_MODEL
    assert jscc.registered("1/24") == jscc.registered("junk") == zoo.CHANNEL_MODEL
    for name in ("flow-channel", "flow-channel-1-12"):
        entry = zoo.REGISTRY[name]
        config = json.loads(zoo.read_metadata(zoo.weights_path(name))["config"])
        assert parse_ratio(config["ratio"]) == parse_ratio(entry.ratio)
