"""Image → tensor, and the tile geometry: which pixels each tile's transforms see.

Images are coded in tiles of `DEFAULT_TILE` pixels so that memory stays bounded for any image
size; each tile has its own z and y streams. The transforms of a tile see `TILE_CONTEXT` pixels of
their neighbours, so a tile's edge is coded as if the image went on and no seams show.
"""

from __future__ import annotations

from typing import Iterator, NamedTuple

import numpy as np
import torch
import torch.nn.functional as F

from flowcodec_cli.codec import fcx

DEFAULT_TILE = 1024
"""Tile side (a multiple of every model's stride). Kodak-sized images are a single tile."""

TILE_CONTEXT = 64
"""Pixels of context a tile borrows from each neighbouring tile (a multiple of every model's
latent factor). The analysis of a tile sees this much of its neighbours, so the latents at its
edge are computed as if the image went on. The synthesis of a tile decodes its neighbours'
latents within this margin too, so no tile edge is reconstructed from padding. Each tile's
streams stay self-contained (its own z, tables and y), so the entropy coding is unchanged; only
the transforms look across tile borders, which removes the seams that independent tiles show
(measured by `python -m flowcodec_cli.evaluation.resources`). Image borders get no context, so an
image of one tile is coded exactly as without tiling."""


class Box(NamedTuple):
    """A rectangle of the image in pixels; may reach outside it (context, stride padding)."""
    top: int
    left: int
    height: int
    width: int


def padded(n: int, stride: int) -> int:
    """n rounded up to a multiple of `stride`."""
    return -(-n // stride) * stride


def tile_grid_fits(height: int, width: int, tile: int) -> str | None:
    """Why `tile` cannot tile a height × width image, or None if it can."""
    if tile <= 0 or tile % fcx.TILE_MULTIPLE or tile > 0xFFFF:
        return f"tile side {tile} must be a positive multiple of {fcx.TILE_MULTIPLE} below 65536"
    if -(-height // tile) * -(-width // tile) > fcx.MAX_TILES:
        return f"tile side {tile} gives more than {fcx.MAX_TILES} tiles for {width}x{height}"
    return None


def tiles(header: fcx.Header) -> Iterator[Box]:
    """Every tile of the image, in raster order (the stream order)."""
    rows, cols = header.tile_grid
    for r in range(rows):
        for c in range(cols):
            top, left = r * header.tile, c * header.tile
            yield Box(top, left, min(header.tile, header.height - top),
                      min(header.tile, header.width - left))


def context(tile: Box, full_h: int, full_w: int) -> tuple[int, int, int, int]:
    """Context pixels (above, left, below, right) a tile borrows: TILE_CONTEXT where a
    neighbouring tile lies, none at the image border."""
    top, left, h, w = tile
    return (TILE_CONTEXT if top > 0 else 0, TILE_CONTEXT if left > 0 else 0,
            TILE_CONTEXT if top + h < full_h else 0, TILE_CONTEXT if left + w < full_w else 0)


def window(tile: Box, full_h: int, full_w: int, stride: int) -> tuple[Box, tuple[int, int, int, int]]:
    """The pixels a tile's transforms see (the tile padded to the stride, plus its context), and
    the context (above, left, below, right) inside that window."""
    above, before, below, after = margin = context(tile, full_h, full_w)
    return Box(tile.top - above, tile.left - before, padded(tile.height, stride) + above + below,
               padded(tile.width, stride) + before + after), margin


def region(rgb: np.ndarray, box: Box) -> torch.Tensor:
    """The pixels of `box` as float32 (1, 3, height, width) in [0, 1]; the part outside the image
    repeats its nearest edge pixel."""
    top, left, height, width = box
    full_h, full_w = rgb.shape[:2]
    t0, l0 = max(top, 0), max(left, 0)
    t1, l1 = min(top + height, full_h), min(left + width, full_w)
    inside = np.ascontiguousarray(rgb[t0:t1, l0:l1])
    x = torch.from_numpy(inside).permute(2, 0, 1).unsqueeze(0).float().div_(255.0)
    pad = (l0 - left, left + width - l1, t0 - top, top + height - t1)
    return F.pad(x, pad, mode="replicate") if any(pad) else x


def image_tensor(rgb: np.ndarray, stride: int) -> torch.Tensor:
    """uint8 (H, W, 3) → float32 (1, 3, H', W') in [0, 1], replicate-padded on the bottom and
    right to multiples of `stride`: the input of a single-tile analysis."""
    height, width = rgb.shape[:2]
    return region(rgb, Box(0, 0, padded(height, stride), padded(width, stride)))


def to_rgb(x_hat: torch.Tensor) -> np.ndarray:
    """A reconstruction (3, h, w), unclamped float → uint8 (h, w, 3). NaN (only a forged stream
    makes one) becomes 0 before the clamp to [0, 1]."""
    x_hat = torch.nan_to_num(x_hat, nan=0.0).clamp(0, 1)
    return x_hat.mul(255).round().to(torch.uint8).permute(1, 2, 0).numpy()
