"""Every input case of the mode table in images.py, each as a real round trip:

    file written with Pillow → images.read_image → codec.encode(β=0.01) → codec.decode
    → images.to_pil / images.encode_image_bytes

The shipped weights are an early snapshot, so these tests check behaviour (modes, sizes, exact
alpha, exact input mapping, orientation), never quality.
"""

import io

import numpy as np
import pytest
from PIL import Image

from flowcodec_cli import codec
from flowcodec_cli.codec import fcx
from flowcodec_cli.files import images

BETA = 0.01
EXIF_ORIENTATION = 0x0112


def _save(im: Image.Image, path, **params):
    im.save(path, **params)
    return path


def _round_trip(path):
    """(input picture, decoded picture, to_pil image, PNG-serialized-and-reopened image)."""
    picture = images.read_image(path)
    data, _ = codec.encode(picture, BETA)
    decoded = codec.decode(data)
    with Image.open(io.BytesIO(images.encode_image_bytes(decoded, ".png"))) as reopened:
        reopened.load()
    return picture, decoded, images.to_pil(decoded), reopened


def _gradient(width: int, height: int) -> np.ndarray:
    """A smooth (H, W) uint8 test pattern."""
    yy, xx = np.mgrid[0:height, 0:width]
    return ((xx * 7 + yy * 3) % 256).astype(np.uint8)


def _rgb(width: int, height: int) -> np.ndarray:
    g = _gradient(width, height)
    return np.stack([g, 255 - g, g // 2 + 64], axis=2)


# --- grayscale --------------------------------------------------------------------------------


def test_grayscale_L_decodes_as_L(tmp_path):
    path = _save(Image.fromarray(_gradient(37, 21), "L"), tmp_path / "gray.png")
    picture, decoded, pil, reopened = _round_trip(path)
    assert picture.layout == fcx.LAYOUT_GRAY and picture.alpha is None
    # coded as RGB with the gray value replicated
    assert np.array_equal(picture.rgb[:, :, 0], picture.rgb[:, :, 1])
    assert np.array_equal(picture.rgb[:, :, 0], picture.rgb[:, :, 2])
    assert decoded.layout == fcx.LAYOUT_GRAY
    assert pil.mode == "L" and pil.size == (37, 21)
    assert reopened.mode == "L" and reopened.size == (37, 21)


def test_one_bit_image_decodes_as_L(tmp_path):
    bits = Image.fromarray(_gradient(20, 12) > 100)  # mode "1"
    assert bits.mode == "1"
    path = _save(bits, tmp_path / "bits.png")
    picture, _, pil, reopened = _round_trip(path)
    assert picture.layout == fcx.LAYOUT_GRAY
    # 1-bit maps onto 0 / 255 exactly
    assert set(np.unique(picture.rgb)) <= {0, 255}
    assert np.array_equal(picture.rgb[:, :, 0] == 255, np.asarray(bits))
    assert pil.mode == "L" and pil.size == (20, 12)
    assert reopened.mode == "L" and reopened.size == (20, 12)


def test_16bit_grayscale_is_rounded_to_8bit_L(tmp_path):
    # value -> round(v · 255 / 65535); v/257 is never exactly k + 1/2, so there are no ties
    values = np.array([0, 1, 128, 129, 257, 385, 386, 1000, 32767, 32768, 65278, 65535, 65534],
                      dtype=np.uint16)
    expected = np.array([0, 0, 0, 1, 1, 1, 2, 4, 127, 128, 254, 255, 255], dtype=np.uint8)
    assert np.array_equal(expected, np.round(values.astype(np.float64) * 255 / 65535))
    array = np.tile(values, (3, 1))  # 13 × 3
    im = Image.fromarray(array)
    assert im.mode == "I;16"
    path = _save(im, tmp_path / "gray16.png")
    with Image.open(path) as check:
        assert check.mode == "I;16"  # what Pillow hands to images.from_pil

    picture = images.read_image(path)
    assert picture.layout == fcx.LAYOUT_GRAY and picture.alpha is None
    for channel in range(3):
        assert np.array_equal(picture.rgb[:, :, channel], np.tile(expected, (3, 1)))

    _, decoded, pil, reopened = _round_trip(path)
    assert decoded.layout == fcx.LAYOUT_GRAY
    assert pil.mode == "L" and pil.size == (13, 3)
    assert reopened.mode == "L" and reopened.size == (13, 3)


def test_dark_16bit_grayscale_is_not_mistaken_for_8bit(tmp_path):
    """A 16-bit PNG whose values all lie below 256 is still scaled by 255/65535."""
    array = np.array([[0, 10, 128, 129, 200, 255]], dtype=np.uint16)
    path = _save(Image.fromarray(array), tmp_path / "dark16.png")
    picture = images.read_image(path)
    assert np.array_equal(picture.rgb[0, :, 0], [0, 0, 0, 1, 1, 1])


def test_32bit_integer_I_decodes_as_L(tmp_path):
    # Values ≤ 255 are taken as 8-bit; larger ones as 16-bit scale (÷257); clipped to [0, 255].
    array = np.array([[0, 17, 255, -5], [300, 65535, 70000, 32768]], dtype=np.int32)
    im = Image.fromarray(array)
    assert im.mode == "I"
    path = _save(im, tmp_path / "int32.tif")
    with Image.open(path) as check:
        assert check.mode == "I"
    picture = images.read_image(path)
    assert picture.layout == fcx.LAYOUT_GRAY
    assert np.array_equal(picture.rgb[:, :, 0], [[0, 0, 1, 0], [1, 255, 255, 128]])

    small = np.array([[0, 17, 255, 128]], dtype=np.int32)  # max ≤ 255: identity
    path_small = _save(Image.fromarray(small), tmp_path / "int32_small.tif")
    assert np.array_equal(images.read_image(path_small).rgb[:, :, 0], small.astype(np.uint8))

    _, decoded, pil, reopened = _round_trip(path)
    assert decoded.layout == fcx.LAYOUT_GRAY
    assert pil.mode == "L" and pil.size == (4, 2)
    assert reopened.mode == "L" and reopened.size == (4, 2)


def test_float_F_decodes_as_L(tmp_path):
    # F is taken on the 0..255 scale: rounded, clipped.
    array = np.array([[0.0, 0.4, 0.6, 17.2], [254.7, 300.0, -3.0, 127.9]], dtype=np.float32)
    im = Image.fromarray(array)
    assert im.mode == "F"
    path = _save(im, tmp_path / "float.tif")
    with Image.open(path) as check:
        assert check.mode == "F"
    picture = images.read_image(path)
    assert picture.layout == fcx.LAYOUT_GRAY
    assert np.array_equal(picture.rgb[:, :, 0], [[0, 0, 1, 17], [255, 255, 0, 128]])

    _, decoded, pil, reopened = _round_trip(path)
    assert decoded.layout == fcx.LAYOUT_GRAY
    assert pil.mode == "L" and pil.size == (4, 2)
    assert reopened.mode == "L" and reopened.size == (4, 2)


# --- alpha ------------------------------------------------------------------------------------


def test_rgba_alpha_is_bit_exact(tmp_path):
    rng = np.random.default_rng(1)
    rgba = np.concatenate([_rgb(33, 19), rng.integers(0, 256, (19, 33, 1), dtype=np.uint8)], axis=2)
    path = _save(Image.fromarray(rgba, "RGBA"), tmp_path / "rgba.png")
    picture, decoded, pil, reopened = _round_trip(path)
    assert picture.layout == fcx.LAYOUT_RGBA
    assert np.array_equal(picture.alpha, rgba[:, :, 3])
    assert decoded.layout == fcx.LAYOUT_RGBA
    assert np.array_equal(decoded.alpha, rgba[:, :, 3])
    assert pil.mode == "RGBA" and pil.size == (33, 19)
    assert np.array_equal(np.asarray(pil)[:, :, 3], rgba[:, :, 3])
    assert reopened.mode == "RGBA"
    assert np.array_equal(np.asarray(reopened)[:, :, 3], rgba[:, :, 3])


def test_la_alpha_is_bit_exact(tmp_path):
    rng = np.random.default_rng(2)
    alpha = rng.integers(0, 256, (15, 26), dtype=np.uint8)
    la = np.stack([_gradient(26, 15), alpha], axis=2)
    path = _save(Image.fromarray(la, "LA"), tmp_path / "la.png")
    picture, decoded, pil, reopened = _round_trip(path)
    assert picture.layout == fcx.LAYOUT_GRAY_ALPHA
    assert decoded.layout == fcx.LAYOUT_GRAY_ALPHA
    assert np.array_equal(decoded.alpha, alpha)
    assert pil.mode == "LA" and pil.size == (26, 15)
    assert np.array_equal(np.asarray(pil)[:, :, 1], alpha)
    assert reopened.mode == "LA"
    assert np.array_equal(np.asarray(reopened)[:, :, 1], alpha)


def _palette_image(width: int, height: int) -> Image.Image:
    im = Image.fromarray((_gradient(width, height) % 8).astype(np.uint8), "P")
    im.putpalette([c for i in range(8) for c in (i * 30, 255 - i * 30, (i * 70) % 256)])
    return im


def test_palette_without_transparency_decodes_as_rgb(tmp_path):
    im = _palette_image(24, 10)
    path = _save(im, tmp_path / "pal.png")
    picture, decoded, pil, reopened = _round_trip(path)
    assert picture.layout == fcx.LAYOUT_RGB and picture.alpha is None
    assert np.array_equal(picture.rgb, np.asarray(im.convert("RGB")))  # exact palette lookup
    assert decoded.layout == fcx.LAYOUT_RGB
    assert pil.mode == "RGB" and pil.size == (24, 10)
    assert reopened.mode == "RGB" and reopened.size == (24, 10)


def test_palette_with_transparency_decodes_as_rgba(tmp_path):
    im = _palette_image(24, 10)
    path = _save(im, tmp_path / "pal_t.png", transparency=3)
    expected_alpha = np.where(np.asarray(im) == 3, 0, 255).astype(np.uint8)
    picture, decoded, pil, reopened = _round_trip(path)
    assert picture.layout == fcx.LAYOUT_RGBA
    assert np.array_equal(picture.alpha, expected_alpha)
    assert decoded.layout == fcx.LAYOUT_RGBA
    assert np.array_equal(decoded.alpha, expected_alpha)
    assert pil.mode == "RGBA" and pil.size == (24, 10)
    assert reopened.mode == "RGBA"
    assert np.array_equal(np.asarray(reopened)[:, :, 3], expected_alpha)


def test_rgb_colour_key_becomes_alpha(tmp_path):
    rgb = _rgb(16, 9)
    key = tuple(int(v) for v in rgb[4, 5])
    path = _save(Image.fromarray(rgb, "RGB"), tmp_path / "key.png", transparency=key)
    expected_alpha = np.where((rgb == key).all(axis=2), 0, 255).astype(np.uint8)
    picture, decoded, pil, _ = _round_trip(path)
    assert picture.layout == fcx.LAYOUT_RGBA
    assert np.array_equal(decoded.alpha, expected_alpha)
    assert pil.mode == "RGBA" and pil.size == (16, 9)


def test_gray_colour_key_becomes_alpha(tmp_path):
    gray = _gradient(16, 9)
    path = _save(Image.fromarray(gray, "L"), tmp_path / "lkey.png", transparency=int(gray[2, 3]))
    expected_alpha = np.where(gray == gray[2, 3], 0, 255).astype(np.uint8)
    picture, decoded, pil, _ = _round_trip(path)
    assert picture.layout == fcx.LAYOUT_GRAY_ALPHA
    assert np.array_equal(decoded.alpha, expected_alpha)
    assert pil.mode == "LA" and pil.size == (16, 9)


# --- colour spaces and orientation -------------------------------------------------------------


def test_cmyk_jpeg_decodes_as_rgb(tmp_path):
    cmyk = np.stack([_gradient(40, 24), 255 - _gradient(40, 24),
                     np.full((24, 40), 60, np.uint8), np.full((24, 40), 20, np.uint8)], axis=2)
    path = _save(Image.fromarray(cmyk, "CMYK"), tmp_path / "cmyk.jpg", quality=95)
    with Image.open(path) as check:
        assert check.mode == "CMYK"
    picture, decoded, pil, reopened = _round_trip(path)
    assert picture.layout == fcx.LAYOUT_RGB and picture.rgb.shape == (24, 40, 3)
    assert decoded.layout == fcx.LAYOUT_RGB
    assert pil.mode == "RGB" and pil.size == (40, 24)
    assert reopened.mode == "RGB" and reopened.size == (40, 24)


@pytest.mark.parametrize("suffix", [".jpg", ".png"])
def test_exif_orientation_6_is_decoded_upright(tmp_path, suffix):
    """Orientation 6 = 'rotate 90° clockwise to display'. The stored pixel array is 96 wide and
    48 tall with its left half white; upright it is 48 wide, 96 tall, with its top half white."""
    stored = np.zeros((48, 96, 3), np.uint8)
    stored[:, :48] = 255
    exif = Image.Exif()
    exif[EXIF_ORIENTATION] = 6
    params = {"quality": 95} if suffix == ".jpg" else {}
    path = _save(Image.fromarray(stored, "RGB"), tmp_path / f"rot{suffix}", exif=exif, **params)
    with Image.open(path) as check:
        assert check.size == (96, 48) and check.getexif().get(EXIF_ORIENTATION) == 6

    picture, decoded, pil, reopened = _round_trip(path)
    assert picture.rgb.shape == (96, 48, 3)  # rotated before coding
    assert pil.size == (48, 96) and reopened.size == (48, 96)
    assert reopened.getexif().get(EXIF_ORIENTATION) is None  # upright, no tag
    gray = np.asarray(pil.convert("L"), dtype=np.float64)
    top, bottom = gray[:48].mean(), gray[48:].mean()
    # clockwise, not counter-clockwise (which would put the white half at the bottom)
    assert top > bottom + 100, (top, bottom)


# --- sizes -------------------------------------------------------------------------------------


@pytest.mark.parametrize("width,height", [(1, 1), (7, 3), (3, 7), (4097, 13), (13, 4097), (2, 3000)])
def test_sizes_round_trip(tmp_path, width, height):
    path = _save(Image.fromarray(_rgb(width, height), "RGB"), tmp_path / "size.png")
    picture, decoded, pil, reopened = _round_trip(path)
    assert picture.rgb.shape == (height, width, 3)
    assert decoded.rgb.shape == (height, width, 3)
    assert pil.size == (width, height) and reopened.size == (width, height)


def test_side_over_the_limit_is_refused(tmp_path):
    width = 70000
    assert width > fcx.MAX_DIMENSION
    path = _save(Image.new("L", (width, 1), 128), tmp_path / "wide.png")
    with pytest.raises(images.ImageError, match="exceeds the limit"):
        images.read_image(path)


def test_side_over_the_limit_exits_3_from_the_cli(tmp_path):
    from click.testing import CliRunner

    from flowcodec_cli import cli

    path = _save(Image.new("L", (70000, 1), 128), tmp_path / "wide.png")
    result = CliRunner().invoke(cli.main, ["encode", str(path), "-o", str(tmp_path / "w.fcx")])
    assert result.exit_code == cli.EXIT_INPUT
    assert not (tmp_path / "w.fcx").exists()
