"""Pack the training photos small enough to travel to a lent GPU machine (whose working tree,
carried folders included, is capped at 64 MiB).

Each photo is downscaled exactly as the training loader does (Lanczos, short side to --max-side)
and saved as a 4:4:4 JPEG at --quality, so `flowcodec train --max-side` is a no-op on the
packed copy; q95 keeps the JPEG error near 45 dB PSNR, above the codec's top rate (43 dB). The
whole set at q95 is ~130 MiB, so --crop keeps one seeded random square of each photo instead
(224: ~39 MiB for the 1,263 photos, 256: 51 MiB), which keeps every photo at the cost of crop positions.

    python scripts/pack_training_photos.py carry/photos ../shared/data/bsds500/train ...
"""

from __future__ import annotations

import argparse
import random
from pathlib import Path

from PIL import Image

from flowcodec_cli.files.images import image_files
from flowcodec_cli.training.data import downscaled


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("out", type=Path)
    p.add_argument("folders", nargs="+")
    p.add_argument("--max-side", type=int, default=384)
    p.add_argument("--quality", type=int, default=95)
    p.add_argument("--crop", type=int, default=0, help="keep one random square this size (0: all)")
    p.add_argument("--seed", type=int, default=0)
    a = p.parse_args()
    a.out.mkdir(parents=True, exist_ok=True)
    total, rng = 0, random.Random(a.seed)
    for i, folder in enumerate(a.folders):
        for path in image_files(folder, recursive=True):
            with Image.open(path) as im:
                im = downscaled(im.convert("RGB"), a.max_side)
                if a.crop and min(im.size) >= a.crop:
                    left, top = rng.randrange(im.width - a.crop + 1), rng.randrange(im.height - a.crop + 1)
                    im = im.crop((left, top, left + a.crop, top + a.crop))
                dest = a.out / f"{i}_{path.stem}.jpg"
                im.save(dest, quality=a.quality, subsampling=0)
                total += dest.stat().st_size
    print(f"{a.out}: {len(list(a.out.iterdir()))} photos, {total / 2**20:.1f} MiB")


if __name__ == "__main__":
    main()
