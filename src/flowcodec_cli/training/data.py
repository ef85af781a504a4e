"""Training data from photo folders: every photo held in memory, random crops, and the β of each
sample.

Each sample of a batch gets its own β, drawn log-uniformly from [beta_min, beta_max], so one set
of weights learns the whole rate range. Every draw comes from the one `random.Random` of the run,
whose state the checkpoints keep, so a resumed run draws what the uninterrupted one would have.
Stereo and synthetic pairs (side-information models) are in `stereo_pairs.py`.
"""

from __future__ import annotations

import math
import random

import numpy as np
import torch
from PIL import Image

from flowcodec_cli.files.images import image_files


def rgb_tensor(im: Image.Image) -> torch.Tensor:
    """A Pillow image as a uint8 (3, H, W) tensor."""
    return torch.from_numpy(np.asarray(im.convert("RGB")).copy()).permute(2, 0, 1).contiguous()


def load_folder_images(folders: list[str], max_side: int, crop: int) -> list[torch.Tensor]:
    """Load every photo of the folders (searched recursively) into memory as uint8 (3, H, W).

    Photos whose short side exceeds `max_side` are downscaled (Lanczos): this removes most JPEG
    artefacts of web photos, which a codec should not learn to reproduce. Photos smaller than
    `crop` after that are skipped.
    """
    images = []
    for folder in folders:
        for path in image_files(folder, recursive=True):
            with Image.open(path) as im:
                im = downscaled(im.convert("RGB"), max_side)
                if min(im.size) < crop:
                    continue
                images.append(rgb_tensor(im))
    return images


def downscaled(im: Image.Image, max_side: int) -> Image.Image:
    """`im` with its short side brought down to `max_side` (Lanczos), or `im` if it is shorter."""
    short = min(im.size)
    if short <= max_side:
        return im
    scale = max_side / short
    return im.resize((round(im.width * scale), round(im.height * scale)), Image.LANCZOS)


def random_batch(images: list[torch.Tensor], batch: int, crop: int, rng: random.Random) -> torch.Tensor:
    """A batch of random crops with random horizontal flips, float32 in [0, 1]."""
    out = torch.empty(batch, 3, crop, crop)
    for i in range(batch):
        img = images[rng.randrange(len(images))]
        top = rng.randrange(img.shape[1] - crop + 1)
        left = rng.randrange(img.shape[2] - crop + 1)
        patch = img[:, top:top + crop, left:left + crop]
        if rng.random() < 0.5:
            patch = patch.flip(2)
        out[i] = patch.float() / 255.0
    return out


def sample_betas(batch: int, beta_min: float, beta_max: float, rng: random.Random) -> torch.Tensor:
    """One β per sample, log-uniform over [beta_min, beta_max]."""
    lo, hi = math.log(beta_min), math.log(beta_max)
    return torch.tensor([math.exp(rng.uniform(lo, hi)) for _ in range(batch)], dtype=torch.float32)
