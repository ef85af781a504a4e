"""Properties of PSNR, MS-SSIM, SSIMULACRA2 and the Bjøntegaard deltas."""

import io
import math
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from flowcodec_cli.evaluation import metrics

METHODS = ["cubic", "pchip"]
PARROTS = Path(__file__).resolve().parent / "data" / "parrots_256x192.png"

# A realistic, unevenly spaced curve (VTM on Kodak, rounded).
REF = [(0.048, 26.14), (0.112, 28.49), (0.246, 31.20), (0.491, 34.26), (0.875, 37.42),
       (1.431, 40.42), (2.325, 43.51), (3.633, 46.59)]


def smooth_image(h: int, w: int) -> np.ndarray:
    y, x = np.mgrid[0:h, 0:w]
    rgb = np.stack([x / w, y / h, 0.5 + 0.4 * np.sin(x / 7.0) * np.cos(y / 5.0)], axis=-1)
    return np.round(rgb * 255).astype(np.uint8)


# --- PSNR / MS-SSIM ------------------------------------------------------------------------


def test_psnr_identical_is_inf():
    img = smooth_image(16, 24)
    assert metrics.psnr(img, img.copy()) == math.inf


def test_psnr_known_perturbation():
    a = np.full((8, 8, 3), 100, np.uint8)
    b = a.copy()
    b[0, 0, 0] = 110  # one sample off by 10: MSE = 100 / 192
    expected = 10 * math.log10(255 ** 2 * 192 / 100)
    assert metrics.psnr(a, b) == pytest.approx(expected, abs=1e-12)
    assert metrics.psnr(a, a + 1) == pytest.approx(20 * math.log10(255), abs=1e-12)  # MSE = 1


def test_psnr_rejects_bad_input():
    with pytest.raises(ValueError):
        metrics.psnr(np.zeros((4, 4, 3), np.uint8), np.zeros((4, 5, 3), np.uint8))
    with pytest.raises(ValueError):
        metrics.psnr(np.zeros((4, 4, 3), np.float32), np.zeros((4, 4, 3), np.float32))


def test_ms_ssim_identical_is_one_and_degrades_with_noise():
    img = smooth_image(176, 200)
    assert metrics.ms_ssim(img, img.copy()) == pytest.approx(1.0, abs=1e-6)
    noise = np.random.default_rng(0).integers(-20, 21, img.shape)
    noisy = np.clip(img.astype(int) + noise, 0, 255).astype(np.uint8)
    assert 0.5 < metrics.ms_ssim(img, noisy) < 0.999


def test_ms_ssim_too_small_is_none():
    img = smooth_image(160, 300)  # the 5th scale needs a smaller side of at least 161 px
    assert metrics.ms_ssim(img, img) is None


def jpeg_round_trip(rgb: np.ndarray, quality: int) -> np.ndarray:
    buf = io.BytesIO()
    Image.fromarray(rgb).save(buf, format="JPEG", quality=quality)
    return np.asarray(Image.open(io.BytesIO(buf.getvalue())).convert("RGB"))


def test_ssimulacra2_identical_is_100_and_falls_with_jpeg_quality():
    pytest.importorskip("ssimulacra2")
    photo = np.asarray(Image.open(PARROTS).convert("RGB"))
    assert metrics.ssimulacra2(photo, photo.copy()) == pytest.approx(100.0)
    scores = [metrics.ssimulacra2(photo, jpeg_round_trip(photo, q)) for q in (10, 40, 90)]
    assert scores == sorted(scores) and scores[-1] < 100.0
    assert 40 < scores[1] < 75  # libjpeg quality 35-40 is "medium quality", about 50-60


def test_ssimulacra2_too_small_is_none():
    img = smooth_image(7, 64)  # libjxl's tool refuses sides below 8 pixels
    assert metrics.ssimulacra2(img, img) is None


def test_ssimulacra2_without_the_package_is_none(monkeypatch):
    monkeypatch.setitem(sys.modules, "ssimulacra2", None)  # makes `import ssimulacra2` fail
    img = smooth_image(32, 48)
    assert metrics.ssimulacra2_unavailable() == "the ssimulacra2 package is not installed"
    assert metrics.ssimulacra2(img, img) is None


# --- Bjøntegaard deltas --------------------------------------------------------------------


@pytest.mark.parametrize("method", METHODS)
def test_bd_of_identical_curves_is_zero(method):
    assert metrics.bd_rate(REF, REF, method) == pytest.approx(0.0, abs=1e-9)
    assert metrics.bd_psnr(REF, REF, method) == pytest.approx(0.0, abs=1e-9)


@pytest.mark.parametrize("method", METHODS)
def test_half_the_rate_is_minus_fifty_percent(method):
    half = [(r / 2, q) for r, q in REF]
    assert metrics.bd_rate(half, REF, method) == pytest.approx(-50.0, abs=1e-9)
    assert metrics.bd_rate(REF, half, method) == pytest.approx(100.0, abs=1e-9)


@pytest.mark.parametrize("method", METHODS)
def test_one_db_up_is_plus_one_db(method):
    up = [(r, q + 1.0) for r, q in REF]
    assert metrics.bd_psnr(up, REF, method) == pytest.approx(1.0, abs=1e-9)
    assert metrics.bd_psnr(REF, up, method) == pytest.approx(-1.0, abs=1e-9)
    assert metrics.bd_rate(up, REF, method) < 0  # better quality at equal rate saves bits


@pytest.mark.parametrize("method", METHODS)
def test_partial_overlap_and_point_order(method):
    # The order of the points does not matter; a curve covering only part of the reference is
    # compared over the shared part (a 4-point curve is drawn a little differently from the
    # 8-point one, hence the tolerance).
    half = [(r / 2, q) for r, q in REF]
    assert metrics.bd_rate(half[::-1], REF, method) == pytest.approx(-50.0, abs=1e-9)
    assert metrics.bd_rate(half[2:6], REF, method) == pytest.approx(-50.0, abs=0.5)


@pytest.mark.parametrize("method", METHODS)
def test_disjoint_curves_give_none(method):
    low = [(0.1, 20.0), (0.2, 21.0), (0.3, 22.0), (0.4, 23.0)]
    high = [(1.0, 30.0), (2.0, 31.0), (3.0, 32.0), (4.0, 33.0)]
    assert metrics.bd_rate(low, high, method) is None
    assert metrics.bd_psnr(low, high, method) is None


def test_pchip_is_exact_on_a_straight_line():
    # PSNR linear in log-rate: PCHIP reproduces it, so BD-PSNR against a shifted copy over a
    # sub-interval equals the shift, here with only 3 points (too few for the cubic fit).
    line = [(r, 30 + 4 * math.log(r)) for r in (0.25, 0.5, 1.0)]
    other = [(r, 30.5 + 4 * math.log(r)) for r in (0.3, 0.6, 2.0)]
    assert metrics.bd_psnr(other, line, "pchip") == pytest.approx(0.5, abs=1e-12)
    with pytest.raises(ValueError):
        metrics.bd_psnr(other, line, "cubic")


def test_unknown_method_is_an_error():
    with pytest.raises(ValueError):
        metrics.bd_rate(REF, REF, "akima")
