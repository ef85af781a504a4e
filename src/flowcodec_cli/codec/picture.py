"""What the codec codes and gives back: an 8-bit RGB image, an optional alpha plane, the layout
the file records (fcx.LAYOUT_*), and the metadata that travels with it. Reading and writing image
files is `files/images.py`'s job; the codec itself never touches a file. PSNR lives here too: it
is the codec's own measure of what it lost (rate control aims at it) as well as the bench's."""

from __future__ import annotations

import math
from typing import NamedTuple

import numpy as np


class Metadata(NamedTuple):
    """What an image file says about its pixels besides the pixels, kept so that a decoded image
    shows the same colours (ICC) and keeps its camera, date and rights (EXIF, XMP). Each is the
    raw bytes, opaque to the codec (the .fcx container stores them as they are, docs/format.md);
    `files/images.py` says what they hold. The field names are the container's kind names
    (fcx.METADATA_KINDS)."""
    icc: bytes | None = None    # an ICC profile
    exif: bytes | None = None   # a TIFF structure ("II*\0" / "MM\0*"), no JPEG "Exif\0\0" prefix
    xmp: bytes | None = None    # an XMP packet (UTF-8 XML)

    def present(self) -> dict[str, bytes]:
        """The kinds present, name → bytes (empty ones left out): the container's view."""
        return {name: value for name, value in self._asdict().items() if value}


class Picture(NamedTuple):
    rgb: np.ndarray            # (H, W, 3) uint8
    alpha: np.ndarray | None   # (H, W) uint8 or None
    layout: int                # fcx.LAYOUT_*
    metadata: Metadata | None = None   # None: nothing to keep (or --strip)


def check_rgb_pair(a: np.ndarray, b: np.ndarray) -> None:
    """Both images HxWx3 uint8 and the same shape, or ValueError naming the problem."""
    for name, x in (("a", a), ("b", b)):
        if not isinstance(x, np.ndarray) or x.dtype != np.uint8 or x.ndim != 3 or x.shape[2] != 3:
            raise ValueError(f"{name} must be an HxWx3 uint8 array, got "
                             f"{getattr(x, 'dtype', type(x))} {getattr(x, 'shape', '')}")
    if a.shape != b.shape:
        raise ValueError(f"shape mismatch: {a.shape} vs {b.shape}")


def psnr(a: np.ndarray, b: np.ndarray) -> float:
    """PSNR in dB between two HxWx3 uint8 RGB images (peak 255); inf when they are identical.

    The MSE is accumulated in float64 so that large images do not lose precision.
    """
    check_rgb_pair(a, b)
    mse = float(np.mean((a.astype(np.float64) - b.astype(np.float64)) ** 2))
    if mse == 0.0:
        return float("inf")
    return 10.0 * math.log10(255.0 ** 2 / mse)
