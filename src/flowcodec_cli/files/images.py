"""Image files ↔ arrays, with a defined behaviour for every mode Pillow can open.

The neural codec codes 8-bit RGB. Everything else is mapped onto it, and back on decode:

| input                         | coded as                              | decoded as          |
|-------------------------------|---------------------------------------|---------------------|
| RGB, 8-bit                    | RGB                                   | RGB                 |
| grayscale (L, 1-bit, I;16, I) | RGB (gray replicated), layout "L"     | L (8-bit)           |
| RGBA, LA, palette + alpha     | RGB lossy + alpha plane lossless      | RGBA / LA           |
| palette without alpha         | RGB                                   | RGB                 |
| 16-bit gray                   | rounded to 8 bits                     | L (8-bit)           |
| 16-bit RGB / RGBA             | Pillow keeps the high byte            | 8-bit               |
| 16-bit gray + alpha           | Pillow opens it as RGBA               | RGBA                |
| RGB / L with a tRNS colour key| RGBA / LA (key becomes alpha 0)       | RGBA / LA           |
| CMYK (e.g. CMYK JPEG), YCbCr  | converted to RGB by Pillow            | RGB                 |
| EXIF orientation tag          | rotated upright first (as viewers do) | upright, no tag     |

Pillow's decompression-bomb guard stays on; our own size limit (fcx.MAX_PIXELS) applies too.
"""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

from flowcodec_cli.codec import fcx
from flowcodec_cli.codec.picture import Picture  # noqa: F401 - files.images.Picture is public
from flowcodec_cli.errors import ImageError

IMAGE_SUFFIXES = {".png", ".jpg", ".jpeg", ".ppm", ".pgm", ".pnm", ".tif", ".tiff", ".webp", ".bmp"}


def image_files(folder: str | Path, recursive: bool = False) -> list[Path]:
    """The image files of a folder (by suffix, IMAGE_SUFFIXES), sorted: the one definition of
    "the images in a folder" that the CLI, training and the bench share."""
    paths = Path(folder).rglob("*") if recursive else Path(folder).iterdir()
    return sorted(p for p in paths if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES)


def stereo_pairs(folder: str | Path) -> list[tuple[str, Path, Path]]:
    """(name, left, right) for every `left/NAME` image of a folder with a `right/NAME`: the
    layout of the stereo sets (view coded, side view at the decoder). Empty if there are none."""
    left_dir, right_dir = Path(folder) / "left", Path(folder) / "right"
    if not left_dir.is_dir() or not right_dir.is_dir():
        return []
    return [(p.name, p, right_dir / p.name) for p in image_files(left_dir)
            if (right_dir / p.name).is_file()]


def _to_8bit(im: Image.Image) -> Image.Image:
    """16-bit and 32-bit integer grayscale → 8-bit L by rounding (not by truncating the top bits)."""
    if im.mode in ("I;16", "I;16B", "I;16L", "I;16N", "I"):
        array = np.asarray(im, dtype=np.float64)
        peak = 65535.0 if im.mode.startswith("I;16") or array.max() > 255 else 255.0
        return Image.fromarray(np.clip(np.round(array * 255.0 / peak), 0, 255).astype(np.uint8), "L")
    if im.mode == "F":
        array = np.asarray(im, dtype=np.float64)
        return Image.fromarray(np.clip(np.round(array), 0, 255).astype(np.uint8), "L")
    return im


def from_pil(im: Image.Image) -> Picture:
    """Map any Pillow image onto (RGB, optional alpha, layout), following the table above."""
    im = ImageOps.exif_transpose(im)
    fcx.check_dimensions(im.height, im.width)
    if im.mode == "P":
        im = im.convert("RGBA" if "transparency" in im.info else "RGB")
    elif im.mode in ("L", "RGB") and "transparency" in im.info:  # a tRNS colour key
        im = im.convert("LA" if im.mode == "L" else "RGBA")
    if im.mode in ("PA",):
        im = im.convert("RGBA")
    im = _to_8bit(im)
    if im.mode in ("1", "L"):
        gray = np.asarray(im.convert("L"))
        return Picture(np.repeat(gray[:, :, None], 3, axis=2), None, fcx.LAYOUT_GRAY)
    if im.mode in ("LA", "La"):
        la = np.asarray(im.convert("LA"))
        return Picture(np.repeat(la[:, :, :1], 3, axis=2), la[:, :, 1].copy(), fcx.LAYOUT_GRAY_ALPHA)
    if im.mode in ("RGBA", "RGBa"):
        rgba = np.asarray(im.convert("RGBA"))
        return Picture(rgba[:, :, :3].copy(), rgba[:, :, 3].copy(), fcx.LAYOUT_RGBA)
    return Picture(np.asarray(im.convert("RGB")).copy(), None, fcx.LAYOUT_RGB)


def read_image(source: str | Path | bytes) -> Picture:
    """Read a file path or raw bytes. Raises ImageError / fcx.FormatError with a one-line reason."""
    try:
        stream = io.BytesIO(source) if isinstance(source, bytes) else open(source, "rb")
    except OSError as exc:
        raise ImageError(exc.strerror or str(exc)) from None
    with stream:
        try:
            with Image.open(stream) as im:
                fcx.check_dimensions(im.height, im.width)
                im.load()
                return from_pil(im)
        except UnidentifiedImageError:
            raise ImageError("not a recognized image file") from None
        except Image.DecompressionBombError as exc:
            raise ImageError(f"image too large ({exc})") from None
        except fcx.FormatError as exc:  # our size limit: a property of the input image
            raise ImageError(str(exc)) from None
        except (OSError, SyntaxError, ValueError) as exc:
            raise ImageError(f"cannot read image ({exc})") from None


def to_pil(picture: Picture) -> Image.Image:
    """The inverse of `from_pil` for decoded pictures."""
    rgb, alpha, layout = picture
    if layout == fcx.LAYOUT_GRAY:
        return Image.fromarray(rgb, "RGB").convert("L")
    if layout == fcx.LAYOUT_GRAY_ALPHA:
        gray = np.asarray(Image.fromarray(rgb, "RGB").convert("L"))
        return Image.fromarray(np.stack([gray, alpha], axis=2), "LA")
    if layout == fcx.LAYOUT_RGBA:
        return Image.fromarray(np.concatenate([rgb, alpha[:, :, None]], axis=2), "RGBA")
    return Image.fromarray(rgb, "RGB")


def encode_image_bytes(picture: Picture, suffix: str) -> bytes:
    """Serialize a decoded picture in the format named by a file suffix (".png" when unknown)."""
    im = to_pil(picture)
    fmt = Image.registered_extensions().get(suffix.lower(), "PNG")
    if fmt in ("JPEG", "PPM") and im.mode in ("RGBA", "LA"):
        im = im.convert("RGB" if im.mode == "RGBA" else "L")
    out = io.BytesIO()
    params = {"quality": 95} if fmt in ("JPEG", "WEBP") else {}
    im.save(out, format=fmt, **params)
    return out.getvalue()
