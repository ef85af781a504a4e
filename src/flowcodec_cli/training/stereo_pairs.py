"""Training pairs for side-information codecs: real stereo pairs and synthetic pairs from photos.

A pair is (view, side): the view is what gets coded, the side image what only the decoder has.
Convention (as in rectified stereo, left view coded, right view as side): content at column x
of the view appears at column x − d of the side image, d ≥ 0, larger for nearer objects.

There is little real stereo here (57 tabletop pairs; Middlebury is held out for evaluation), so
most pairs are synthetic, as the data README suggests: two windows of one photo, the side window
displaced by a random disparity that varies smoothly over the image (a stand-in for depth),
with a little vertical jitter and a per-channel exposure change plus sensor noise on the side view.
"""

from __future__ import annotations

import random
from pathlib import Path

import torch
import torch.nn.functional as F
from PIL import Image

from flowcodec_cli.files import images
from flowcodec_cli.training.data import rgb_tensor

MAX_SYNTHETIC_DISPARITY = 160  # pixels, at the training photos' scale


def _load(path: Path) -> torch.Tensor:
    with Image.open(path) as im:
        return rgb_tensor(im)


def load_pairs(folders: list[str]) -> list[tuple[torch.Tensor, torch.Tensor]]:
    """(left, right) uint8 (3, H, W) pairs from folders holding `left/NAME` and `right/NAME`."""
    pairs = [(_load(left), _load(right))
             for folder in folders for _, left, right in images.stereo_pairs(folder)]
    if not pairs:
        raise SystemExit(f"no stereo pairs (left/NAME + right/NAME) found in {folders}")
    return pairs


def real_pair(pair, height: int, width: int, rng: random.Random) -> tuple[torch.Tensor, torch.Tensor]:
    """The same window of both views. A horizontal flip swaps the views, which keeps d ≥ 0."""
    left, right = pair
    top = rng.randrange(left.shape[1] - height + 1)
    col = rng.randrange(left.shape[2] - width + 1)
    view, side = (v[:, top:top + height, col:col + width] for v in (left, right))
    if rng.random() < 0.5:
        view, side = side.flip(2), view.flip(2)
    return view.float() / 255, side.float() / 255


def synthetic_pair(photo: torch.Tensor, height: int, width: int,
                   rng: random.Random) -> tuple[torch.Tensor, torch.Tensor]:
    """A view window of a photo and a side window displaced by a smooth disparity field."""
    _, h, w = photo.shape
    base = rng.uniform(0, min(MAX_SYNTHETIC_DISPARITY, w - width - 16))
    relief = rng.uniform(0, min(16.0, base))  # depth variation around the base disparity
    top = rng.randrange(2, h - height - 1)
    col = rng.randrange(0, int(w - width - base - relief) + 1)
    if rng.random() < 0.5:
        photo = photo.flip(2)
    image = photo.float().unsqueeze(0) / 255
    gen = torch.Generator().manual_seed(rng.getrandbits(62))
    field = torch.rand(1, 1, 3, 4, generator=gen) * 2 - 1
    disparity = base + relief * F.interpolate(field, size=(height, width), mode="bicubic",
                                              align_corners=True)[0, 0]
    ys, xs = torch.meshgrid(torch.arange(height, dtype=torch.float32),
                            torch.arange(width, dtype=torch.float32), indexing="ij")

    def sample(x_src: torch.Tensor, y_src: torch.Tensor) -> torch.Tensor:
        grid = torch.stack([(2 * x_src + 1) / w - 1, (2 * y_src + 1) / h - 1], -1)[None]
        return F.grid_sample(image, grid, mode="bilinear", padding_mode="border", align_corners=False)[0]

    view = image[0, :, top:top + height, col:col + width]
    # side(x') = view(x' + d): the side window sits d pixels further right in the photo
    side = sample(col + xs + disparity, top + ys + rng.uniform(-1.0, 1.0))
    gain = torch.tensor([rng.uniform(0.85, 1.15) for _ in range(3)])[:, None, None]
    side = side * gain + rng.uniform(-0.04, 0.04)
    side = side + torch.randn(side.shape, generator=gen) * rng.uniform(0, 0.01)
    return view.clone(), side.clamp(0, 1)


def random_pair_batch(photos: list[torch.Tensor], pairs: list, batch: int, height: int, width: int,
                      real_fraction: float, rng: random.Random) -> tuple[torch.Tensor, torch.Tensor]:
    """(views, sides), each (B, 3, height, width) float32 in [0, 1]."""
    views, sides = torch.empty(batch, 3, height, width), torch.empty(batch, 3, height, width)
    usable = [p for p in photos if p.shape[2] >= width + 32 and p.shape[1] >= height + 4]
    for i in range(batch):
        if pairs and rng.random() < real_fraction:
            views[i], sides[i] = real_pair(pairs[rng.randrange(len(pairs))], height, width, rng)
        else:
            views[i], sides[i] = synthetic_pair(usable[rng.randrange(len(usable))], height, width, rng)
    return views, sides
