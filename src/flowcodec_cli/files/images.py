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
| several frames (GIF, WebP...) | refused unless a frame is chosen      | that frame          |

Pillow's decompression-bomb guard stays on; our own size limit (fcx.MAX_PIXELS) applies too.

Metadata (picture.Metadata) is kept unless the caller asks otherwise: the ICC profile, the EXIF
(re-serialized by Pillow, without the orientation, which the pixels already show, and without
a TIFF's own storage tags) and the XMP packet (without its tiff:Orientation). A profile of
another colour space than the coded picture's (a CMYK JPEG's) is dropped: it describes values
Pillow's conversion no longer gives. `encode_image_bytes` writes the metadata back into PNG,
JPEG, WebP, TIFF and AVIF files; other formats get the pixels only.
"""

from __future__ import annotations

import io
import re
import struct
from pathlib import Path

import numpy as np
from PIL import ExifTags, Image, ImageOps, UnidentifiedImageError
from PIL.PngImagePlugin import PngInfo

from flowcodec_cli.codec import fcx
from flowcodec_cli.codec.picture import Metadata, Picture  # noqa: F401 - both public here
from flowcodec_cli.errors import ImageError

from flowcodec_cli.files.jobs import IMAGE_SUFFIXES  # noqa: E402,F401 - images.IMAGE_SUFFIXES is public

METADATA_FORMATS = {"PNG", "JPEG", "WEBP", "TIFF", "AVIF"}   # outputs that get the metadata back

_TAG = ExifTags.Base
# EXIF tags never carried: the orientation (the pixels are stored upright, so a viewer would turn
# them again), and the tags with which a TIFF input describes its own pixel storage, or holds its
# ICC profile and XMP (carried as kinds of their own): in another file they would be wrong.
_EXIF_NOT_CARRIED = frozenset({
    _TAG.Orientation, _TAG.NewSubfileType, _TAG.SubfileType, _TAG.ImageWidth, _TAG.ImageLength,
    _TAG.BitsPerSample, _TAG.Compression, _TAG.PhotometricInterpretation, _TAG.FillOrder,
    _TAG.StripOffsets, _TAG.SamplesPerPixel, _TAG.RowsPerStrip, _TAG.StripByteCounts,
    _TAG.PlanarConfiguration, _TAG.T4Options, _TAG.T6Options, _TAG.Predictor, _TAG.ColorMap,
    _TAG.TileWidth, _TAG.TileLength, _TAG.TileOffsets, _TAG.TileByteCounts, _TAG.ExtraSamples,
    _TAG.SampleFormat, _TAG.JPEGTables, _TAG.JpegIFOffset, _TAG.JpegIFByteCount,
    _TAG.YCbCrSubSampling, _TAG.XMLPacket, _TAG.InterColorProfile})
_EXIF_PREFIX = b"Exif\x00\x00"   # JPEG's APP1 identifier; the stored EXIF starts after it
_XMP_ORIENTATION = (rb'\s*tiff:Orientation="[0-9]"',   # both forms, as ImageOps.exif_transpose
                    rb"\s*<tiff:Orientation>[0-9]</tiff:Orientation>")
_JPEG_SEGMENT = 65533            # the most bytes one JPEG APP segment holds (Pillow's limit)
_JPEG_XMP_HEADER = len(b"http://ns.adobe.com/xap/1.0/\x00")
# Pillow registers a saver for these that only raises unless an external handler is installed.
_STUB_FORMATS = {"BUFR", "GRIB", "HDF5", "WMF"}


def image_files(folder: str | Path, recursive: bool = False,
                suffixes: set[str] = IMAGE_SUFFIXES) -> list[Path]:
    """The image files of a folder (by suffix, IMAGE_SUFFIXES, or `suffixes`: {".fcx"} for
    coded ones), sorted: the one definition of "the images in a folder" that the CLI, training,
    the bench and `batch` share."""
    paths = Path(folder).rglob("*") if recursive else Path(folder).iterdir()
    return sorted(p for p in paths if p.is_file() and p.suffix.lower() in suffixes)


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


def from_pil(im: Image.Image, keep_metadata: bool = True) -> Picture:
    """Map any Pillow image onto (RGB, optional alpha, layout, metadata), following the table
    above. The metadata is read from `im` itself, not from its upright copy, which has lost a
    TIFF's tags."""
    picture = _pixels(ImageOps.exif_transpose(im))
    return picture._replace(metadata=_metadata(im, picture.layout) if keep_metadata else None)


def _pixels(im: Image.Image) -> Picture:
    """The pixels of an upright image as (RGB, optional alpha, layout), by the table above."""
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


def _metadata(im: Image.Image, layout: int) -> Metadata | None:
    """The ICC profile, EXIF and XMP worth keeping (see the module docstring), or None."""
    icc = im.info.get("icc_profile") or None
    gray = layout in (fcx.LAYOUT_GRAY, fcx.LAYOUT_GRAY_ALPHA)
    if icc is not None and icc[16:20] != (b"GRAY" if gray else b"RGB "):  # its colour space
        icc = None
    xmp = im.info.get("xmp") or None
    if isinstance(xmp, str):  # PNG's iTXt arrives decoded
        xmp = xmp.encode("utf-8")
    for pattern in _XMP_ORIENTATION if xmp else ():
        xmp = re.sub(pattern, b"", xmp)
    metadata = Metadata(icc, _exif(im), xmp)
    for name, value in metadata.present().items():
        if len(value) > fcx.MAX_METADATA_BYTES:
            raise ImageError(f"its {name.upper()} metadata ({len(value)} bytes) is larger than a "
                             f".fcx file holds ({fcx.MAX_METADATA_BYTES}): --strip drops it")
    return metadata if metadata.present() else None


def _exif(im: Image.Image) -> bytes | None:
    """The image's EXIF as a TIFF structure, without the tags that must not be carried."""
    try:
        exif = Image.Exif()
        exif.load(im.getexif().tobytes())  # a copy: the image's own keeps the tags it was read with
        for tag in _EXIF_NOT_CARRIED:
            exif.pop(tag, None)
        return exif.tobytes()[len(_EXIF_PREFIX):] if len(exif) else None
    except (KeyError, TypeError, ValueError, struct.error) as exc:
        raise ImageError(f"cannot carry its EXIF metadata ({exc}): --strip drops it") from None


def _select_frame(im: Image.Image, frame: int | None) -> None:
    """Seek to the frame to code. An image of several frames (an animated GIF, WebP or PNG, a
    multi-page TIFF) needs one chosen: coding the first alone would drop the others silently.
    An MPO is the exception: a camera JPEG whose later frames are previews or a depth map of the
    first, the photo itself."""
    frames = getattr(im, "n_frames", 1)
    if frame is None:
        if frames > 1 and im.format != "MPO":
            raise ImageError(f"animated or multi-page image with {frames} frames: "
                             f"pass --frame N (0 to {frames - 1}) to code one of them")
        return
    if not 0 <= frame < frames:
        raise ImageError(f"--frame {frame} is out of range: the image has {frames} "
                         f"frame{'s' if frames > 1 else ''} (0 to {frames - 1})")
    im.seek(frame)


def read_image(source: str | Path | bytes, frame: int | None = None,
               keep_metadata: bool = True) -> Picture:
    """Read a file path or raw bytes: the frame `frame` (0-based) of an image with several, and
    its metadata unless `keep_metadata` is false (--strip). Raises ImageError / fcx.FormatError
    with a one-line reason."""
    try:
        stream = io.BytesIO(source) if isinstance(source, bytes) else open(source, "rb")
    except OSError as exc:
        raise ImageError(exc.strerror or str(exc)) from None
    with stream:
        try:
            with Image.open(stream) as im:
                fcx.check_dimensions(im.height, im.width)
                _select_frame(im, frame)
                fcx.check_dimensions(im.height, im.width)  # a TIFF's pages differ in size
                im.load()
                return from_pil(im, keep_metadata)
        except ImageError:  # our own one-line reasons (frames, metadata), as they are
            raise
        except UnidentifiedImageError:
            raise ImageError("not a recognized image file") from None
        except Image.DecompressionBombError as exc:
            raise ImageError(f"image too large ({exc})") from None
        except fcx.FormatError as exc:  # our size limit: a property of the input image
            raise ImageError(str(exc)) from None
        except (OSError, SyntaxError, ValueError) as exc:
            raise ImageError(f"cannot read image ({exc})") from None


def to_pil(picture: Picture) -> Image.Image:
    """The inverse of `from_pil` for decoded pictures (the pixels; `encode_image_bytes` writes
    the metadata)."""
    rgb, alpha, layout = picture.rgb, picture.alpha, picture.layout
    if layout == fcx.LAYOUT_GRAY:
        return Image.fromarray(rgb, "RGB").convert("L")
    if layout == fcx.LAYOUT_GRAY_ALPHA:
        gray = np.asarray(Image.fromarray(rgb, "RGB").convert("L"))
        return Image.fromarray(np.stack([gray, alpha], axis=2), "LA")
    if layout == fcx.LAYOUT_RGBA:
        return Image.fromarray(np.concatenate([rgb, alpha[:, :, None]], axis=2), "RGBA")
    return Image.fromarray(rgb, "RGB")


def output_format(suffix: str) -> str:
    """The Pillow format an output suffix names; PNG for none (stdout, a name without a suffix).
    Raises ValueError for a suffix that names no format Pillow can write: PNG bytes under another
    format's name would mislead every program that trusts the name."""
    if not suffix:
        return "PNG"
    fmt = Image.registered_extensions().get(suffix.lower())
    if fmt is None or fmt not in Image.SAVE or fmt in _STUB_FORMATS:
        raise ValueError(f"{suffix} names no image format that can be written "
                         "(.png, .jpg, .webp, .tif, .bmp, .gif, ...)")
    return fmt


def encode_image_bytes(picture: Picture, suffix: str) -> bytes:
    """Serialize a decoded picture in the format its file suffix names (`output_format`), with
    its metadata where the format holds it."""
    fmt = output_format(suffix)
    im = to_pil(picture)
    if fmt in ("JPEG", "PPM") and im.mode in ("RGBA", "LA"):
        im = im.convert("RGB" if im.mode == "RGBA" else "L")
    out = io.BytesIO()
    params = {"quality": 95} if fmt in ("JPEG", "WEBP") else {}
    if picture.metadata is not None and fmt in METADATA_FORMATS:
        params.update(_metadata_params(picture.metadata, fmt))
    im.save(out, format=fmt, **params)
    return out.getvalue()


def _metadata_params(metadata: Metadata, fmt: str) -> dict:
    """Pillow's save arguments that write the metadata into `fmt` (one of METADATA_FORMATS).
    PNG takes XMP as an iTXt chunk and TIFF as tag 700 beside its EXIF tags; a JPEG holds EXIF
    and XMP of at most one segment each (larger ones are left out; PNG and TIFF hold any size)."""
    icc, exif, xmp = metadata.icc, metadata.exif, metadata.xmp
    if fmt == "JPEG":
        exif = exif if exif and len(_EXIF_PREFIX) + len(exif) <= _JPEG_SEGMENT else None
        xmp = xmp if xmp and _JPEG_XMP_HEADER + len(xmp) <= _JPEG_SEGMENT else None
    params: dict = {"icc_profile": icc} if icc else {}
    tags = _parsed_exif(exif) if fmt in ("TIFF", "AVIF") else None   # they parse it
    if fmt == "TIFF" and (exif or xmp):
        if xmp:
            tags[_TAG.XMLPacket] = xmp
        params["exif"] = tags
    elif exif:
        params["exif"] = _EXIF_PREFIX + exif
    if fmt == "PNG" and xmp:
        params["pnginfo"] = PngInfo()
        params["pnginfo"].add_itxt("XML:com.adobe.xmp", xmp)
    elif fmt != "TIFF" and xmp:
        params["xmp"] = xmp
    return params


def _parsed_exif(exif: bytes | None) -> Image.Exif:
    """EXIF bytes as Pillow's tags. Raises fcx.FormatError if they are not a TIFF structure,
    which only a forged .fcx file can hold (the encoder stores what Pillow serialized)."""
    tags = Image.Exif()
    try:
        tags.load(_EXIF_PREFIX + exif if exif else b"")
    except (SyntaxError, ValueError, KeyError, TypeError, struct.error) as exc:
        raise fcx.FormatError(f"its EXIF metadata is not a TIFF structure ({exc})") from None
    return tags


def pil_info(metadata: Metadata | None) -> dict:
    """The metadata as Pillow's own readers leave it in `im.info` (`icc_profile`, `exif` with
    JPEG's "Exif\\0\\0" prefix, `xmp`), so that an image decoded in Python carries it as an opened
    JPEG does: `im.getexif()` reads it, `from_pil` keeps it when the image is coded again."""
    if metadata is None:
        return {}
    info = {"icc_profile": metadata.icc, "exif": metadata.exif and _EXIF_PREFIX + metadata.exif,
            "xmp": metadata.xmp}
    return {key: value for key, value in info.items() if value}
