"""End-to-end behaviour of the shipped model: round trips, determinism, rate control, desync
detection. These use the real weights in weights/ on the small bundled photo."""

import hashlib
import os
import struct
import subprocess
import sys
import zlib
from pathlib import Path

import numpy as np
import pytest

from flowcodec_cli import codec
from flowcodec_cli.codec import entropy
from flowcodec_cli.codec import fcx
from flowcodec_cli.files import images
from flowcodec_cli.evaluation.metrics import psnr

DATA = Path(__file__).parent / "data"
SAMPLE = DATA / "parrots_256x192.png"


@pytest.fixture(scope="module")
def picture():
    return images.read_image(SAMPLE)


@pytest.fixture(scope="module", params=["hyperprior", "flow"])
def model(request):
    """Every shipped model goes through the same end-to-end checks."""
    return request.param


@pytest.fixture(scope="module")
def coded(picture, model):
    """β -> (bytes, stats) for a few rates."""
    return {beta: codec.encode(picture, beta, model) for beta in (0.0005, 0.005, 0.05)}


def test_round_trip_shape_and_quality(picture, coded):
    for beta, (data, _) in coded.items():
        decoded = codec.decode(data)
        assert decoded.rgb.shape == picture.rgb.shape
        assert decoded.rgb.dtype == np.uint8
        assert decoded.alpha is None and decoded.layout == fcx.LAYOUT_RGB
        assert psnr(picture.rgb, decoded.rgb) > 20


def test_larger_beta_gives_smaller_files_and_lower_quality(picture, coded):
    betas = sorted(coded)
    sizes = [len(coded[b][0]) for b in betas]
    quality = [psnr(picture.rgb, codec.decode(coded[b][0]).rgb) for b in betas]
    assert sizes == sorted(sizes, reverse=True)
    assert quality == sorted(quality, reverse=True)


def test_real_bits_track_estimated_bits(coded, model):
    for data, stats in coded.values():
        assert stats.payload_bits == pytest.approx(stats.estimated_bits, rel=0.02)
        # the payload is exactly the range-coded streams as written (RGB: no alpha stream), and
        # the rest of the file is the container: fixed header, model id, stream lengths, CRC
        streams = fcx.unpack(data).streams
        assert stats.payload_bits == 8 * sum(len(s) for s in streams)
        assert len(data) == 52 + len(model) + 4 * len(streams) + 4 + stats.payload_bits // 8


def test_encoding_is_byte_identical(picture, coded, model):
    data, _ = codec.encode(picture, 0.005, model)
    assert data == coded[0.005][0]


def test_decoding_is_repeatable(coded):
    data = coded[0.005][0]
    assert codec.decode(data).rgb.tobytes() == codec.decode(data).rgb.tobytes()


def _rewrite(data: bytes, mutate) -> bytes:
    """Apply `mutate(container)` and re-pack, so the CRC is valid and deeper checks are reached."""
    container = fcx.unpack(data)
    mutate(container)
    return fcx.pack(container)


def test_table_desync_is_detected_not_decoded(coded):
    data = coded[0.005][0]

    def flip_params_crc(c):
        c.header.params_crc ^= 1

    with pytest.raises(entropy.DesyncError):
        codec.decode(_rewrite(data, flip_params_crc))


def test_other_weights_are_refused(coded):
    def other_digest(c):
        c.header.weights_digest = bytes(16)

    with pytest.raises(codec.CodecError, match="other weights"):
        codec.decode(_rewrite(coded[0.005][0], other_digest))


def test_changed_beta_is_detected(coded):
    """β feeds the tables: decoding with another β must be caught by the parameter CRC."""
    def other_beta(c):
        c.header.beta = 0.004

    with pytest.raises(entropy.DesyncError):
        codec.decode(_rewrite(coded[0.005][0], other_beta))


def test_side_info_flag_without_side_info_is_an_error(coded):
    def needs_side(c):
        c.header.flags |= fcx.FLAG_SIDE_INFO

    with pytest.raises(codec.SideInfoError):
        codec.decode(_rewrite(coded[0.005][0], needs_side))


def test_beta_outside_model_range_is_refused(picture):
    with pytest.raises(codec.CodecError):
        codec.encode(picture, 10.0)


@pytest.mark.parametrize("size", [(1, 1), (3, 7), (13, 70), (65, 64)])
def test_odd_sizes_round_trip(size, model):
    h, w = size
    rng = np.random.default_rng(h * 1000 + w)
    rgb = (rng.random((h, w, 3)) * 255).astype(np.uint8)
    data, _ = codec.encode(images.Picture(rgb, None, fcx.LAYOUT_RGB), 0.001, model)
    assert codec.decode(data).rgb.shape == (h, w, 3)


def _decode_digest_in_subprocess(path: Path, env_extra: dict) -> str:
    script = ("import sys, hashlib; from flowcodec_cli import codec; "
              "p = codec.decode(open(sys.argv[1], 'rb').read()); "
              "print(hashlib.sha256(p.rgb.tobytes()).hexdigest())")
    env = {**os.environ, **env_extra}
    out = subprocess.run([sys.executable, "-c", script, str(path)], env=env, check=True,
                         capture_output=True, text=True)
    return out.stdout.strip()


@pytest.mark.parametrize("env_extra", [
    {"OMP_NUM_THREADS": "1"},
    {"OMP_NUM_THREADS": "2"},
    {"OMP_NUM_THREADS": "2", "ATEN_CPU_CAPABILITY": "default"},
    {"OMP_NUM_THREADS": "1", "ATEN_CPU_CAPABILITY": "avx2"},
])
def test_decoding_is_identical_across_threads_and_isa(tmp_path, coded, env_extra):
    path = tmp_path / "x.fcx"
    path.write_bytes(coded[0.005][0])
    expected = hashlib.sha256(codec.decode(coded[0.005][0]).rgb.tobytes()).hexdigest()
    assert _decode_digest_in_subprocess(path, env_extra) == expected


def test_decoding_many_files_equals_decoding_each(tmp_path, coded):
    """Batch decoding shares one loaded model: the result must not depend on what came before."""
    order = [0.05, 0.0005, 0.005]
    alone = {b: codec.decode(coded[b][0]).rgb.tobytes() for b in order}
    for b in reversed(order):
        assert codec.decode(coded[b][0]).rgb.tobytes() == alone[b]
