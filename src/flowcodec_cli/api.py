"""The Python API (docs/python.md): `encode`, `decode` and `info`, what `flowcodec encode`,
`decode` and `info` do to files, done to images and bytes in memory.

It is the command line's code, not a copy of it: images become pictures as `files/images.py`
maps them, the rate is set by the rule the command line uses (`codec/rate_request.py`), and the
same image, options and model give the same bytes as `flowcodec encode`. Failures are the typed
exceptions of `errors.py` that the command line turns into exit codes; a contradictory request
(two ways to set the rate, a quality outside 0-100) is a ValueError, the command line's usage
error. Nothing here imports torch until an image is coded: `info`, and every refusal of a bad
request or a bad input, stay fast.

Threads: each model is loaded once per process (`codec.loaded.LoadedCodec`) and shared; coding
changes nothing of it, so threads may encode and decode at once, with the same bytes as one
after another (tests/test_api.py).
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Union

import numpy as np
from PIL import Image

from flowcodec_cli import zoo
from flowcodec_cli.codec import fcx, rate_request
from flowcodec_cli.codec.picture import Picture
from flowcodec_cli.errors import ImageError, SideInfoError, classify
from flowcodec_cli.files import images

__all__ = ["decode", "encode", "info"]

ImageLike = Union[Image.Image, np.ndarray, str, os.PathLike, bytes]
"""What `encode` codes: a Pillow image, an (H, W), (H, W, 3) or (H, W, 4) uint8 array, the path
of an image file, or the bytes of one."""

_ARRAY_SHAPES = "(H, W), (H, W, 3) or (H, W, 4) uint8 array"
_IMAGE_KINDS = "a Pillow image, a uint8 array, a path or bytes"


def encode(image: ImageLike, *, quality: float | None = None, beta: float | None = None,
           model: str | None = None, effort: int = 0, target_size: int | None = None,
           target_bpp: float | None = None, target_psnr: float | None = None,
           strip: bool = False, frame: int | None = None, side_info: ImageLike | None = None,
           device: str = "cpu") -> bytes:
    """The .fcx bytes of an image, as `flowcodec encode` writes them for the same options.

    At most one of `quality` (0-100, default 75), `beta` and the `target_*` sets the rate.
    `strip` drops the ICC profile, EXIF and XMP of a Pillow image or an image file (an array
    has none); `frame` chooses the frame of an animated or multi-page file (a Pillow image is
    coded at the frame it is on); `side_info`, an image like `image`, is for the joint models."""
    model = model or zoo.DEFAULT_MODEL
    rate = rate_request.resolve(model, quality, beta,
                                {"size": target_size, "bpp": target_bpp, "psnr": target_psnr})
    picture = _picture(image, keep_metadata=not strip, frame=frame)
    data, _, _ = rate_request.encode(picture, rate, model, device=device,
                                     side_info=_side_picture(side_info), effort=effort)
    return data


def decode(data: bytes | str | os.PathLike, *, side_info: ImageLike | None = None,
           device: str = "cpu") -> Image.Image:
    """The image in .fcx bytes (or in the .fcx file at a path), as a Pillow image of mode RGB,
    L, RGBA or LA, with the file's metadata in `im.info` (`icc_profile`, `exif`, `xmp`, as
    Pillow's readers put them there). `side_info`: the decoder's own view, for files that need
    it (`info(data)["side_info_required"]`)."""
    raw = _read(data)
    fcx.unpack(raw)  # a corrupt file fails here, before torch is imported
    from flowcodec_cli import codec
    picture = codec.decode(raw, side_info=_side_picture(side_info), device=device)
    decoded = images.to_pil(picture)
    decoded.info.update(images.pil_info(picture.metadata))
    return decoded


def info(data: bytes | str | os.PathLike) -> dict:
    """The header of .fcx bytes (or of the .fcx file at a path) as `flowcodec info --json`
    prints it: the model, size, layout, β, metadata sizes, stream sizes, bpp, ..., and `file`
    when given a path. No model is loaded and torch is not imported."""
    record = fcx.describe(_read(data))
    return {"file": os.fspath(data), **record} if _is_path(data) else record


def _picture(image: ImageLike, keep_metadata: bool, frame: int | None) -> Picture:
    """Whatever `encode` accepts → the picture the codec codes, by the command line's mapping
    (`files/images.py`): an array becomes the Pillow image of its shape first."""
    if isinstance(image, (Image.Image, np.ndarray)):
        if frame is not None:
            raise ValueError("frame= chooses a frame of an image file; seek a Pillow image to "
                             "the frame instead (im.seek(n))")
        if isinstance(image, np.ndarray):
            image, keep_metadata = Image.fromarray(_checked(image)), False
        return _from_pil(image, keep_metadata)
    return images.read_image(_read(image, _IMAGE_KINDS), frame, keep_metadata)


def _checked(array: np.ndarray) -> np.ndarray:
    """An array of a shape and type that maps onto a picture, or ImageError saying which do."""
    shape_ok = array.ndim == 2 or (array.ndim == 3 and array.shape[2] in (3, 4))
    if array.dtype != np.uint8 or not shape_ok:
        raise ImageError(f"expected an {_ARRAY_SHAPES}, got {array.dtype} {array.shape}")
    return array


def _from_pil(image: Image.Image, keep_metadata: bool) -> Picture:
    """`images.from_pil`, failing as reading an image file fails (`images.read_image`): an
    image too large or one Pillow cannot convert is an ImageError, never an internal error."""
    try:
        return images.from_pil(image, keep_metadata)
    except ImageError:
        raise
    except fcx.FormatError as exc:  # the size limit: a property of the input image
        raise ImageError(str(exc)) from None
    except (OSError, SyntaxError, ValueError) as exc:
        raise ImageError(f"cannot read image ({exc})") from None


def _side_picture(side_info: ImageLike | None) -> Picture | None:
    """The side view, taken like an image; failing to read it is a side-information error, as
    `flowcodec --side-info` reports it."""
    if side_info is None:
        return None
    try:
        return _picture(side_info, keep_metadata=False, frame=None)
    except (ImageError, OSError) as exc:
        raise SideInfoError(f"side information: {classify(exc).message}") from exc


def _is_path(source) -> bool:
    return isinstance(source, (str, os.PathLike))


def _read(source, expected: str = "bytes or a path") -> bytes:
    """The bytes of a file given by path, or the bytes given. A path that cannot be read raises
    the OSError that says why (FileNotFoundError, ...), as `open` does."""
    if _is_path(source):
        return Path(source).read_bytes()
    if isinstance(source, (bytes, bytearray, memoryview)):
        return bytes(source)
    raise TypeError(f"expected {expected}, got {type(source).__name__}")

