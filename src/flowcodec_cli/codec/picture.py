"""What the codec codes and gives back: an 8-bit RGB image, an optional alpha plane, and the layout
the file records (fcx.LAYOUT_*). Reading and writing image files is `files/images.py`'s job; the
codec itself never touches a file."""

from __future__ import annotations

from typing import NamedTuple

import numpy as np


class Picture(NamedTuple):
    rgb: np.ndarray            # (H, W, 3) uint8
    alpha: np.ndarray | None   # (H, W) uint8 or None
    layout: int                # fcx.LAYOUT_*
