"""Classical baselines round-trip real bytes, and the shipped Kodak anchors are consistent."""

from importlib import resources

import numpy as np
import pytest

from flowcodec_cli.evaluation import anchors
from flowcodec_cli.evaluation import classical
from flowcodec_cli.evaluation import metrics


def smooth_image(h: int = 64, w: int = 64) -> np.ndarray:
    y, x = np.mgrid[0:h, 0:w] / max(h - 1, 1)
    rgb = np.stack([x, y, 0.5 + 0.4 * np.sin(6 * x * y)], axis=-1)
    return np.round(rgb * 255).astype(np.uint8)


@pytest.mark.parametrize("codec", classical.CODECS, ids=lambda c: c.name)
def test_round_trip(codec):
    if not codec.available():
        pytest.skip(f"{codec.name}: {codec.unavailable_reason()}")
    img = smooth_image()
    low = codec.encode(img, codec.settings[0])
    high = codec.encode(img, codec.settings[-1])
    assert isinstance(low, bytes) and isinstance(high, bytes)
    assert len(low) < len(high), "settings must run from low to high rate"
    for data in (low, high):
        out = codec.decode(data)
        assert out.shape == img.shape and out.dtype == np.uint8
    assert metrics.psnr(img, codec.decode(high)) > 35.0


@pytest.mark.parametrize("codec", classical.CODECS, ids=lambda c: c.name)
def test_odd_tiny_image(codec):
    if not codec.available():
        pytest.skip(f"{codec.name}: {codec.unavailable_reason()}")
    img = smooth_image(7, 13)
    out = codec.decode(codec.encode(img, codec.settings[-1]))
    assert out.shape == img.shape and out.dtype == np.uint8
    # The decoder pads to its block size and must crop the right part back: the picture must be
    # closer to the input than to the input moved by one pixel, mirrored or with its channels
    # reversed, and carry more than the flat mean colour. (Measured at this size: 14-40 dB against
    # the input, at most 13 against any of those, 10.4 for the flat mean.)
    quality = metrics.psnr(img, out)
    wrong = {"one row down": np.roll(img, 1, axis=0), "one column right": np.roll(img, 1, axis=1),
             "upside down": img[::-1], "mirrored": img[:, ::-1], "BGR": img[..., ::-1],
             "flat mean colour": np.broadcast_to(img.mean(axis=(0, 1)).round().astype(np.uint8),
                                                 img.shape)}
    for name, other in wrong.items():
        assert quality > metrics.psnr(other, out) + 1.0, name
    assert quality > metrics.psnr(img, wrong["flat mean colour"]) + 2.0


def test_unavailable_codec_says_why():
    codec = classical.ClassicalCodec("x", "x", (1,), "quality", None, None,
                                     lambda: "library x is missing")
    assert not codec.available()
    assert codec.unavailable_reason() == "library x is missing"
    with pytest.raises(KeyError):
        classical.get("no-such-codec")


def test_settings_match_the_measured_reference():
    # classical_check compares at equal settings, so every setting must be on the reference.
    measured = anchors.measured()
    for codec in classical.CODECS:
        ref = measured[classical.MEASURED_CURVE[codec.name]]
        assert sorted(codec.settings) == sorted(ref.setting), codec.name


# --- shipped anchors -----------------------------------------------------------------------


def test_anchor_file_is_small_and_complete():
    path = resources.files("flowcodec_cli").joinpath("data", anchors.DATA_FILE)
    assert len(path.read_bytes()) < 200_000
    published = anchors.published()
    for key in ["vtm", "hm", "bpg444", "av1", "jpeg", "jpeg2000", "webp",
                "bmshj2018-factorized", "bmshj2018-hyperprior", "mbt2018-mean", "mbt2018",
                "cheng2020-anchor", "elic2022"]:
        assert key in published
    for curve in [*published.values(), *anchors.measured().values()]:
        assert curve.source
        assert list(curve.bpp) == sorted(curve.bpp), curve.key
        assert len(curve.psnr) == len(curve.bpp) >= 4
        if curve.ms_ssim is not None:
            assert len(curve.ms_ssim) == len(curve.bpp)
            assert all(0 < v <= 1 for v in curve.ms_ssim)
    assert published["vtm"].ms_ssim is not None
    assert anchors.published()["elic2022"].points("ms_ssim") is None


def test_measured_pillow_defaults_reproduce_published_curves():
    # Pillow-default WebP reproduces CompressAI's webp.json; Pillow-default JPEG with
    # libjpeg-turbo 3 is ~1.8% cheaper than the published Pillow 7 JPEG (anchors README).
    published, measured = anchors.published(), anchors.measured()
    for method in ("cubic", "pchip"):
        webp = metrics.bd_rate(measured["webp_pildefault"].points(), published["webp"].points(),
                               method)
        jpeg = metrics.bd_rate(measured["jpeg_pildefault"].points(), published["jpeg"].points(),
                               method)
        assert abs(webp) < 0.01
        assert jpeg == pytest.approx(-1.8, abs=0.1)
