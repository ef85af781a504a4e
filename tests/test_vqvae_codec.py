"""The VQ-VAE through real `.fcx` files (codec/indices.py, codec/categorical.py): decoded indices
are the encoded ones and the picture is the model's own reconstruction from them, the file costs
the prior's bits, bytes repeat, thread counts do not matter, damage is refused, the side variant
needs its view only at the decoder, and the integer tables are what categorical.py promises.
Tiny untrained models in a temporary weights folder, registered the way a shipped file would be."""

from __future__ import annotations

import math
import zlib
from pathlib import Path

import numpy as np
import pytest
import torch
from click.testing import CliRunner

from flowcodec_cli import cli, codec, zoo
from flowcodec_cli.codec import categorical, entropy, fcx, indices
from flowcodec_cli.codec.tiles import image_tensor, to_rgb
from flowcodec_cli.files import images
from flowcodec_cli.models import build_model
from flowcodec_cli.models.vqvae import beta_for_stages, stages_for_beta
from flowcodec_cli.training.checkpoints import export_weights
from model_helpers import randomized

DATA = Path(__file__).parent / "data"
PAIRS = DATA / "stereo"
TINY = {"width": 8, "latent_dim": 4, "codebook_size": 8, "stages": 3, "prior_hidden": 8}
# the codebook and stage count of the real config, small transforms: the overhead measurement
WIDE = {"width": 8, "latent_dim": 8, "codebook_size": 256, "stages": 12, "prior_hidden": 16}
BETA = 0.003  # 2 of TINY's 3 stages


@pytest.fixture(scope="module")
def registered(tmp_path_factory):
    folder = tmp_path_factory.mktemp("weights")
    monkey = pytest.MonkeyPatch()
    monkey.setenv("FLOWCODEC_WEIGHTS", str(folder))
    models = {"t-vq": ({**TINY}, False), "t-vq-side": ({**TINY, "side_info": True}, True),
              "t-vq-wide": ({**WIDE}, False)}
    for seed, (name, (config, stereo)) in enumerate(models.items()):
        torch.manual_seed(seed)
        sha = export_weights(randomized(build_model("vqvae", config), seed),
                             folder / f"{name}.safetensors")
        monkey.setitem(zoo.REGISTRY, name, zoo.ZooEntry(name, "vqvae", f"{name}.safetensors", sha,
                                                        stereo=stereo))
    yield folder
    monkey.undo()


@pytest.fixture(scope="module")
def parrots():
    return images.read_image(DATA / "parrots_256x192.png")


def _pair(side: str, name: str = "cup_upright.png"):
    return images.read_image(PAIRS / side / name)


def _model_view(name: str, picture, beta: float):
    """What the model itself gives for a one-tile picture: its indices at β and its
    reconstruction from them (the fp16-stored weights, as the codec loads them)."""
    model = codec.LoadedCodec.get(name).model
    with torch.no_grad(), torch.backends.mkldnn.flags(enabled=False, allow_tf32=None):
        x = image_tensor(picture.rgb, model.stride)
        idx = model.quantize(model.analysis(x), int(model.stages_for_beta(beta)))
        x_hat = model.synthesis(model.dequantize(idx))
    h, w = picture.rgb.shape[:2]
    return idx, to_rgb(x_hat[0, :, :h, :w])


def test_round_trip_through_a_file_is_the_models_reconstruction(registered, parrots, tmp_path):
    data, stats = codec.encode(parrots, BETA, "t-vq")
    path = tmp_path / "p.fcx"
    path.write_bytes(data)
    decoded = codec.decode(path.read_bytes())
    expected_indices, expected_rgb = _model_view("t-vq", parrots, BETA)
    container = fcx.unpack(data)
    assert container.header.model == "t-vq" and len(container.streams) == 1
    got, crc, error = indices.decode_indices(codec.LoadedCodec.get("t-vq"), container.streams[0],
                                             2, (24, 32), 0)
    assert error is None and crc == container.header.params_crc
    assert torch.equal(got, expected_indices)            # decoded indices == encoded ones
    assert np.array_equal(decoded.rgb, expected_rgb)      # and exactly the model's picture


def test_beta_gives_the_stage_count_and_the_header_carries_its_middle(registered, parrots):
    for n in range(1, 13):
        assert int(stages_for_beta(beta_for_stages(n, 1e-4, 0.05, 12), 1e-4, 0.05, 12)) == n
    sizes = []
    for beta, stages in ((0.05, 1), (0.004, 2), (0.0001, 3)):
        data, stats = codec.encode(parrots, beta, "t-vq")
        header = fcx.unpack(data).header
        assert header.beta == stats.network_beta == beta_for_stages(stages, 1e-4, 0.05, 3)
        assert indices.stage_count(codec.LoadedCodec.get("t-vq"), header.beta) == stages
        sizes.append(len(data))
    assert sizes == sorted(sizes)  # more stages, more bytes


def test_file_bits_are_the_priors_cross_entropy(registered, parrots):
    """12 stages of 256 codes: the range-coded payload is the float prior's information content
    of the indices, plus the tables' rounding (snapped logits, 1/2^16 floor) and one partly
    filled 32-bit word."""
    model = codec.LoadedCodec.get("t-vq-wide").model
    for beta in (0.05, 0.005, 0.0001):
        data, stats = codec.encode(parrots, beta, "t-vq-wide")
        idx, _ = _model_view("t-vq-wide", parrots, beta)
        with torch.no_grad():
            nats = sum(float(torch.nn.functional.cross_entropy(
                model.prior_logits(k, model.dequantize(idx[:, :k])), idx[:, k], reduction="sum"))
                for k in range(idx.shape[1]))
        assert stats.estimated_bits == pytest.approx(nats / math.log(2), rel=1e-4)
        overhead = stats.payload_bits - stats.estimated_bits   # measured: +0.04% to +0.25%
        assert -0.005 * stats.estimated_bits < overhead < 0.005 * stats.estimated_bits + 32
        assert len(data) * 8 - stats.payload_bits < 8 * 100  # the container: a fixed ~70 bytes


def test_encoding_repeats_byte_for_byte_and_threads_do_not_matter(registered, parrots):
    threads = torch.get_num_threads()
    try:
        torch.set_num_threads(1)
        one, _ = codec.encode(parrots, BETA, "t-vq", tile=128)
        decoded_one = codec.decode(one).rgb
        torch.set_num_threads(2)
        two, _ = codec.encode(parrots, BETA, "t-vq", tile=128)
        decoded_two = codec.decode(one).rgb
    finally:
        torch.set_num_threads(threads)
    assert one == two and np.array_equal(decoded_one, decoded_two)
    assert codec.encode(parrots, BETA, "t-vq", tile=128)[0] == one
    assert len(fcx.unpack(one).streams) == 2 * 2  # one stream per tile of the 2x2 grid


def test_damaged_files_are_refused(registered, parrots):
    data, _ = codec.encode(parrots, BETA, "t-vq")
    with pytest.raises(fcx.FormatError, match="CRC"):
        codec.decode(data[:-7])
    container = fcx.unpack(data)
    stream = container.streams[0]
    for damaged in (stream[:-4], stream + b"\0" * 4, stream[:-1], b""):
        container.streams[0] = damaged
        with pytest.raises((fcx.FormatError, codec.pipeline.entropy.DesyncError)):
            codec.decode(fcx.pack(container))
    flipped = bytearray(stream)
    flipped[len(flipped) // 2] ^= 0x41
    container.streams[0] = bytes(flipped)
    with pytest.raises((fcx.FormatError, codec.pipeline.entropy.DesyncError)):
        codec.decode(fcx.pack(container))
    container.streams = [stream, stream]
    with pytest.raises(fcx.FormatError, match="expected 1 streams"):
        codec.decode(fcx.pack(container))


def test_cli_codes_files_and_refuses_damage_in_one_line(registered, parrots, tmp_path):
    runner = CliRunner()
    source = DATA / "parrots_256x192.png"
    out = tmp_path / "p.fcx"
    ok = runner.invoke(cli.main, ["encode", str(source), "--model", "t-vq", "--beta", str(BETA),
                                  "-o", str(out), "--quiet"])
    assert ok.exit_code == 0, ok.output
    back = runner.invoke(cli.main, ["decode", str(out), "-o", str(tmp_path / "p.png"), "--quiet"])
    assert back.exit_code == 0 and (tmp_path / "p.png").exists()
    container = fcx.unpack(out.read_bytes())
    container.streams[0] = container.streams[0][:-4]
    (tmp_path / "bad.fcx").write_bytes(fcx.pack(container))
    bad = runner.invoke(cli.main, ["decode", str(tmp_path / "bad.fcx"), "-o",
                                   str(tmp_path / "bad.png")])
    assert bad.exit_code in (4, 8) and bad.output.count("\n") == 1
    effort = runner.invoke(cli.main, ["encode", str(source), "--model", "t-vq", "--effort", "1",
                                      "-o", str(tmp_path / "e.fcx")])
    assert effort.exit_code == 5 and "no entropy model" in effort.output


def test_side_variant_needs_its_view_at_the_decoder_only(registered, tmp_path):
    left, right = _pair("left"), _pair("right")
    data, _ = codec.encode(left, BETA, "t-vq-side")
    assert fcx.unpack(data).header.needs_side_info
    with pytest.raises(codec.SideInfoError, match="needs side information"):
        codec.decode(data)
    with pytest.raises(codec.SideInfoError, match="does not use side information"):
        codec.encode(left, BETA, "t-vq-side", side_info=right)
    right_rgb = codec.decode(data, side_info=right).rgb
    wrong = codec.decode(data, side_info=_pair("right", "bit_box_upright.png")).rgb
    assert wrong.shape == right_rgb.shape == left.rgb.shape and wrong.dtype == np.uint8
    assert not np.array_equal(wrong, right_rgb)  # the view reaches the decoder, the tables not
    path = tmp_path / "s.fcx"
    path.write_bytes(data)
    missing = CliRunner().invoke(cli.main, ["decode", str(path), "-o", str(tmp_path / "s.png")])
    assert missing.exit_code == 6 and missing.output.count("\n") == 1


def test_tables_sum_to_the_total_and_keep_every_symbol():
    generator = torch.Generator().manual_seed(0)
    logits = 6 * torch.randn(500, 256, generator=generator, dtype=torch.float64)
    logits[0] = 0.0                                    # uniform
    logits[1, 3] = 1e30                                # one certain symbol
    logits[2] = torch.tensor(float("nan"))             # a broken network stays codable
    logits[3, :5] = torch.tensor([float("inf"), -float("inf"), 40.0, -40.0, 0.0])
    freqs = categorical.tables(logits.numpy()).freqs
    assert (freqs >= 1).all() and (freqs.sum(1) == 1 << categorical.FREQ_BITS).all()
    assert (freqs[0] == 256).all() and freqs[1, 3] == (1 << 16) - 255
    p = torch.softmax(logits[4:], 1).numpy()
    q = freqs[4:] / (1 << 16)
    kl = float(np.sum(p * (np.log(p + 1e-300) - np.log(q)), 1).max())
    assert kl < 0.01  # nats: the tables follow the prior


def test_the_stream_costs_the_tables_information_in_any_memory_order():
    """The range coder writes -Σ log2(f/2^16) of the symbols, up to its last word, and a table
    built from a transposed (column-major) array codes the same bytes: constriction reads raw
    memory, so a layout slip would code other tables without failing."""
    generator = torch.Generator().manual_seed(3)
    logits = (8 * torch.randn(256, 700, generator=generator, dtype=torch.float64)).t()
    tables = categorical.tables(logits.numpy())
    symbols = torch.multinomial(torch.softmax(logits, 1), 1, generator=generator)[:, 0].numpy()
    stream = entropy.StreamEncoder()
    stream.encode(symbols, tables)
    coded = 8 * len(stream.bytes())
    information = -np.log2(tables.freqs[np.arange(700), symbols] / (1 << 16)).sum()
    assert information <= coded < information * 1.001 + 32
    again = entropy.StreamEncoder()
    again.encode(symbols, categorical.tables(np.ascontiguousarray(logits.numpy())))
    assert again.bytes() == stream.bytes()
    decoder = entropy.StreamDecoder(stream.bytes())
    assert np.array_equal(decoder.decode(tables), symbols)
    decoder.finish()


def test_tables_do_not_move_with_last_bit_differences_off_the_grid_boundaries():
    generator = torch.Generator().manual_seed(1)
    logits = 4 * torch.randn(2000, 64, generator=generator, dtype=torch.float64)
    nudged = logits + 1e-12 * torch.randn(logits.shape, generator=generator, dtype=torch.float64)
    position = (logits * categorical.LOGIT_STEPS) % 1
    near = ((position - 0.5).abs() < 1e-9).any(1)      # rows with a logit at a snapping boundary
    assert near.sum() < 5
    a = categorical.tables(logits.numpy()).freqs[~near.numpy()]
    b = categorical.tables(nudged.numpy()).freqs[~near.numpy()]
    assert np.array_equal(a, b)
    # a shift of every logit of a row by a whole grid step changes nothing
    shifted = categorical.tables((logits + 3 / categorical.LOGIT_STEPS).numpy()).freqs
    assert np.array_equal(categorical.tables(logits.numpy()).freqs[~near.numpy()],
                          shifted[~near.numpy()])


def test_the_documented_table_example():
    """docs/format.md §5.3, byte for byte."""
    tables = categorical.tables(np.array([[2.0, 0.0, -1.0, -30.0]]))
    assert tables.freqs.tolist() == [[55297, 7484, 2754, 1]]
    row = bytes.fromhex("01d800003c1d0000c20a000001000000")
    assert np.ascontiguousarray(tables.freqs, dtype="<i4").tobytes() == row
    assert tables.digest(7) == zlib.crc32(row, 7)


def test_exp_table_is_pinned():
    """The lookup table that decides every frequency is part of the bitstream (as entropy's CDF
    table is): this digest may only change with a format change."""
    assert categorical.lut_digest() == \
        "598b5df00177a15dca332920e942a6b08d4a8ca287e16dcd003a2f8a4942e7e6"
    assert len(categorical.exp_lut()) == 556


def test_tables_are_the_same_with_one_and_two_threads():
    logits = 5 * torch.randn(4000, 256, generator=torch.Generator().manual_seed(2),
                             dtype=torch.float64)
    threads = torch.get_num_threads()
    try:
        torch.set_num_threads(1)
        one = categorical.tables(logits.numpy()).digest()
        torch.set_num_threads(2)
        two = categorical.tables(logits.numpy()).digest()
    finally:
        torch.set_num_threads(threads)
    assert one == two


def test_bench_sweeps_one_beta_per_stage_count_from_real_files(registered, tmp_path):
    from flowcodec_cli.evaluation import bench
    folder = tmp_path / "images"
    folder.mkdir()
    (folder / "parrots.png").write_bytes((DATA / "parrots_256x192.png").read_bytes())
    assert bench.plan_models(["t-vq"], None, "cpu")[0].settings == (0.0001, 0.002236, 0.05)
    result = bench.run(folder, models=["t-vq"], no_classical=True, cache_dir=tmp_path / "cache",
                       report_dir=tmp_path / "report", quiet=True, analysis_images=1)
    assert not result.errors
    points = result.document["points"]
    assert [p["setting"] for p in points] == [0.0001, 0.002236, 0.05]
    for point in points:
        assert point["bpp_file"] > point["bpp_payload"] > 0 and point["psnr"] > 5
        assert point["encode_s"] > 0 and point["decode_s"] > 0
        assert 0.99 < point["payload_over_estimate"] < 1.02
    assert len({p["bytes"] for p in points}) == 3
    assert result.document["bound_analysis"] == []   # no Gaussian latents to bound


def test_stereo_bench_measures_the_side_variant_and_its_control(registered, tmp_path):
    from PIL import Image
    from flowcodec_cli.evaluation.bench import stereo
    pairs = tmp_path / "pairs"
    for view in ("left", "right"):
        (pairs / view).mkdir(parents=True)
        for name in ("cup_upright.png", "bit_box_upright.png"):
            crop = Image.open(PAIRS / view / name).convert("RGB").crop((0, 0, 96, 64))
            crop.save(pairs / view / name)
    result = stereo.run_stereo(pairs, models=["t-vq", "t-vq-side"], threads=1,
                               report_dir=tmp_path, quiet=True, cache_dir=tmp_path / "cache")
    doc = result.document
    assert not result.errors and doc["config"]["jobs"] == 2 * 3 * 2
    assert all(r["psnr_wrong_side"] is not None for r in doc["curves"]["t-vq-side"]["points"])
    assert all(r["psnr_wrong_side"] is None for r in doc["curves"]["t-vq"]["points"])


def test_evaluate_measures_what_the_file_holds_and_others_refuse(registered, parrots):
    from flowcodec_cli.evaluation import analysis
    from flowcodec_cli.training import evaluate, operating_points
    model = codec.LoadedCodec.get("t-vq-wide").model
    x = image_tensor(parrots.rgb, 8)
    data, stats = codec.encode(parrots, 0.005, "t-vq-wide")
    bpp, psnr = evaluate.rd_point(model, x, 0.005)
    pixels = parrots.rgb.shape[0] * parrots.rgb.shape[1]
    assert bpp == pytest.approx(stats.estimated_bits / pixels, rel=1e-4)
    decoded = codec.decode(data).rgb.astype(float)
    assert psnr == pytest.approx(10 * math.log10(255 ** 2 / np.mean((decoded - parrots.rgb) ** 2)),
                                 abs=0.05)
    with pytest.raises(codec.CodecError, match="VQ indices"):
        analysis.analyze(parrots, 0.005, "t-vq")
    weights = registered / "t-vq.safetensors"
    with pytest.raises(SystemExit, match="stage count"):
        operating_points.main([str(weights), "--data", str(DATA), "--out", "/dev/null"])
    with pytest.raises(SystemExit, match="side view"):
        evaluate.main([str(registered / "t-vq-side.safetensors"), "--data", str(DATA),
                       "--out", "/dev/null"])
