"""Classical image codecs as baselines for `flowcodec bench`, measured through real bytes.

Every codec here writes a complete file into memory with its usual library and reads it back,
so a rate is `8 * len(encode(...)) / (H * W)` of a file you could save to disk, exactly as for
our own `.fcx` files; nothing is estimated. Container overhead is counted because the
published curves (CompressAI's) count it too.

Each codec is a `ClassicalCodec` with

* `name`: a short id used on the command line and in reports,
* `available()` / `unavailable_reason()`: whether its library is importable here, and a one-line
  reason when not, so bench can print a notice and skip it instead of failing,
* `settings`: a sweep from low to high rate that spans roughly 0.1-2 bpp on Kodak-like photos
  (`setting_kind` says what the numbers mean); the values are the ones measured on Kodak in
  `data/anchors_kodak.json` ("measured" curves), so our numbers can be checked against it,
* `encode(rgb_uint8, setting) -> bytes` and `decode(bytes) -> rgb_uint8`.

Encoder choices, and why:

* JPEG (Pillow / libjpeg-turbo): 4:2:0 and 4:4:4, `optimize=True` (optimal Huffman tables, what
  a careful user would do; it only changes the size, never the pixels).
* WebP (Pillow / libwebp): lossy, `method=6`, the slowest and best of libwebp's effort levels.
* JPEG 2000 (Pillow / OpenJPEG): Pillow's defaults (reversible 5/3 wavelet, no colour
  transform) are meant for lossless coding and waste bits on lossy RGB, so the irreversible 9/7
  wavelet and the ICT colour transform (`mct=1`) are set. The setting is the target bpp, passed
  as a compression ratio 24/bpp to OpenJPEG's rate control (`quality_mode="rates"`). The output
  is a bare J2K codestream, no JP2 box overhead. On tiny images the ~150-byte headers exceed
  low targets, so the real rate is then well above the setting.
* AVIF (Pillow's built-in plugin / libavif + libaom): 4:4:4 and speed 6 (libavif's default
  effort). libaom tunes for SSIM by default; we pass `tune=psnr` as an advanced codec option,
  because bench ranks codecs on PSNR, where it gains about 0.4 dB (BD-rate -7.6%) on Kodak.
  One thread, so timings are comparable across machines.
* JPEG XL (imagecodecs / libjxl): VarDCT at effort 7 (libjxl's default); the setting is the
  Butteraugli distance. libjxl's XYB colour space and psychovisual tuning make it weak on
  PSNR-RGB by design; it is listed because it is the current ISO still-image codec.
"""

from __future__ import annotations

import importlib.util
import io
import math
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
from PIL import Image, features


def _check_rgb(rgb: np.ndarray) -> None:
    if not isinstance(rgb, np.ndarray) or rgb.dtype != np.uint8 or rgb.ndim != 3 \
            or rgb.shape[2] != 3:
        raise ValueError("expected an HxWx3 uint8 RGB array")


def _pil_encode(rgb: np.ndarray, fmt: str, **options) -> bytes:
    _check_rgb(rgb)
    buf = io.BytesIO()
    Image.fromarray(rgb).save(buf, format=fmt, **options)
    return buf.getvalue()


def _pil_decode(data: bytes) -> np.ndarray:
    with Image.open(io.BytesIO(data)) as im:
        return np.asarray(im.convert("RGB"))


@dataclass(frozen=True)
class ClassicalCodec:
    """One classical codec configuration: a name, a rate sweep, and encode/decode to bytes."""

    name: str
    description: str
    settings: tuple[float, ...]
    setting_kind: str
    _encode: Callable[[np.ndarray, float], bytes]
    _decode: Callable[[bytes], np.ndarray]
    _missing: Callable[[], str | None]  # a one-line reason when the library is unusable

    def available(self) -> bool:
        return self._missing() is None

    def unavailable_reason(self) -> str | None:
        """One line saying why the codec cannot run here (None when it can)."""
        return self._missing()

    def encode(self, rgb: np.ndarray, setting: float) -> bytes:
        return self._encode(rgb, setting)

    def decode(self, data: bytes) -> np.ndarray:
        return self._decode(data)


# --- availability checks -------------------------------------------------------------------


def _pillow_feature(feature: str, what: str) -> Callable[[], str | None]:
    def missing() -> str | None:
        return None if features.check(feature) else f"this Pillow build has no {what} support"
    return missing


def _avif_missing() -> str | None:
    if not features.check("avif"):
        return "this Pillow build has no AVIF support (needs Pillow >= 11.2 built with libavif)"
    from PIL import _avif
    if not _avif.encoder_codec_available("aom"):
        return "Pillow's libavif has no aom encoder (needed for tune=psnr)"
    return None


def _jxl_missing() -> str | None:
    if importlib.util.find_spec("imagecodecs") is None:
        return "JPEG XL needs imagecodecs (pip install 'flowcodec-cli[bench]')"
    import imagecodecs
    if not imagecodecs.JPEGXL.available:
        return "this imagecodecs build has no JPEG XL (libjxl) codec"
    return None


# --- encoders ------------------------------------------------------------------------------


def _jpeg(subsampling: int) -> Callable[[np.ndarray, float], bytes]:
    def encode(rgb: np.ndarray, quality: float) -> bytes:
        return _pil_encode(rgb, "JPEG", quality=int(quality), subsampling=subsampling,
                           optimize=True)
    return encode


def _webp_encode(rgb: np.ndarray, quality: float) -> bytes:
    return _pil_encode(rgb, "WEBP", quality=quality, method=6, lossless=False)


def _j2k_encode(rgb: np.ndarray, bpp: float) -> bytes:
    _check_rgb(rgb)
    # OpenJPEG needs the coarsest resolution level to be at least 1 px: at most
    # floor(log2(min side)) + 1 levels; 6 (its default) for anything 32 px or larger.
    levels = max(1, min(6, int(math.log2(min(rgb.shape[:2]))) + 1))
    return _pil_encode(rgb, "JPEG2000", quality_mode="rates", quality_layers=[24.0 / bpp],
                       irreversible=True, mct=1, num_resolutions=levels, no_jp2=True)


def _avif_encode(rgb: np.ndarray, quality: float) -> bytes:
    return _pil_encode(rgb, "AVIF", quality=int(quality), subsampling="4:4:4", speed=6,
                       codec="aom", max_threads=1, advanced={"tune": "psnr"})


def _jxl_encode(rgb: np.ndarray, distance: float) -> bytes:
    import imagecodecs
    _check_rgb(rgb)
    return bytes(imagecodecs.jpegxl_encode(rgb, distance=distance, effort=7, numthreads=1))


def _jxl_decode(data: bytes) -> np.ndarray:
    import imagecodecs
    return np.asarray(imagecodecs.jpegxl_decode(data, numthreads=1))


CODECS: tuple[ClassicalCodec, ...] = (
    ClassicalCodec(
        "jpeg420", "JPEG 4:2:0, Pillow/libjpeg-turbo, optimize=True",
        (4, 6, 9, 13, 18, 25, 35, 50, 65, 75, 85, 90), "quality",
        _jpeg(subsampling=2), _pil_decode, _pillow_feature("jpg", "JPEG")),
    ClassicalCodec(
        "jpeg444", "JPEG 4:4:4, Pillow/libjpeg-turbo, optimize=True",
        (4, 6, 9, 13, 18, 25, 35, 50, 65, 75, 85, 90), "quality",
        _jpeg(subsampling=0), _pil_decode, _pillow_feature("jpg", "JPEG")),
    ClassicalCodec(
        "webp", "WebP lossy, Pillow/libwebp, method=6",
        (0, 5, 10, 20, 30, 45, 60, 70, 80, 87, 92), "quality",
        _webp_encode, _pil_decode, _pillow_feature("webp", "WebP")),
    ClassicalCodec(
        "jpeg2000", "JPEG 2000, Pillow/OpenJPEG, irreversible 9/7, mct=1, J2K codestream",
        (0.1, 0.15, 0.2, 0.3, 0.4, 0.5, 0.65, 0.8, 1.0, 1.25, 1.5, 2.0), "target bpp",
        _j2k_encode, _pil_decode, _pillow_feature("jpg_2000", "JPEG 2000 (OpenJPEG)")),
    ClassicalCodec(
        "avif", "AVIF 4:4:4, Pillow/libavif+aom, speed 6, tune=psnr, 1 thread",
        (10, 20, 30, 40, 48, 56, 63, 70, 76, 81, 86), "quality",
        _avif_encode, _pil_decode, _avif_missing),
    ClassicalCodec(
        "jxl", "JPEG XL, imagecodecs/libjxl, effort 7, VarDCT, 1 thread",
        (20.0, 14.0, 10.0, 7.5, 5.5, 4.0, 3.0, 2.2, 1.7, 1.3, 1.0, 0.8), "distance",
        _jxl_encode, _jxl_decode, _jxl_missing),
)

# Which "measured" curve in data/anchors_kodak.json was made with the same configuration.
MEASURED_CURVE = {"jpeg420": "jpeg420", "jpeg444": "jpeg444", "webp": "webp_m6",
                  "jpeg2000": "jpeg2000", "avif": "avif_s6_444_tunepsnr", "jxl": "jxl_e7"}


def get(name: str) -> ClassicalCodec:
    """The codec called `name`; KeyError listing the known names otherwise."""
    for codec in CODECS:
        if codec.name == name:
            return codec
    raise KeyError(f"unknown classical codec {name!r}; known: {', '.join(c.name for c in CODECS)}")
