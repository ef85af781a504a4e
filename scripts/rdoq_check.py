"""The held-out check behind codec/rdoq.py's RATE_WEIGHT: BD-rate (PSNR) of the default model's
real files with rate-distortion optimized rounding at each weight against nearest rounding
(weight 0), on central crops of the Middlebury left views (held out: never trained or tuned on,
and not Kodak).

    python scripts/rdoq_check.py [--weights 0.15,0.25,0.5,1] [--views even|odd|all] [--out F.json]

`even` (the 1st, 3rd, … view in name order) is where the weight was chosen, `odd` checks it.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np
import torch

from flowcodec_cli import codec
from flowcodec_cli.codec import rdoq
from flowcodec_cli.evaluation.metrics import bd_rate
from flowcodec_cli.files import images

VIEWS = Path(__file__).resolve().parents[1] / ".." / "shared" / "data" / "stereo" / "middlebury_trainingQ" / "left"
BETAS = (0.0005, 0.002, 0.008, 0.02, 0.05)
CROP = (320, 448)


def central_crop(path: Path) -> images.Picture:
    picture = images.read_image(path)
    h, w = picture.rgb.shape[:2]
    height, width = min(h, CROP[0]), min(w, CROP[1])  # ArtL (277x347) is smaller than the crop
    top, left = (h - height) // 2, (w - width) // 2
    rgb = np.ascontiguousarray(picture.rgb[top:top + height, left:left + width])
    return picture._replace(rgb=rgb, alpha=None, metadata=None)


def curve(pictures: list[images.Picture], weight: float = rdoq.RATE_WEIGHT, **encode_options) -> tuple[list[tuple[float, float]], float]:
    """(bpp, PSNR) of the whole set at each β (total bytes over total pixels, PSNR of the pooled
    MSE) with rounding weight `weight`, and the mean encode seconds per picture."""
    rdoq.RATE_WEIGHT = weight
    points, seconds = [], 0.0
    for beta in BETAS:
        bits, squared, pixels = 0, 0.0, 0
        for picture in pictures:
            start = time.perf_counter()
            data = codec.encode(picture, beta, **encode_options)[0]
            seconds += time.perf_counter() - start
            decoded = codec.decode(data).rgb.astype(np.float64)
            bits += 8 * len(data)
            squared += float(((decoded - picture.rgb) ** 2).sum())
            pixels += picture.rgb.shape[0] * picture.rgb.shape[1]
        points.append((bits / pixels, 10 * np.log10(255 ** 2 / (squared / (3 * pixels)))))
    return points, seconds / (len(BETAS) * len(pictures))


def held_out(choice: str) -> tuple[list[str], list[images.Picture]]:
    """The names and central crops of the `even`, `odd` or `all` Middlebury left views."""
    paths = sorted(VIEWS.glob("*.png"))
    paths = {"even": paths[::2], "odd": paths[1::2], "all": paths}[choice]
    return [path.stem for path in paths], [central_crop(path) for path in paths]


def shown(points: list[tuple[float, float]]) -> list[tuple[float, float]]:
    """A curve rounded for a progress line: (bpp to 4 places, PSNR to 2)."""
    return [(round(float(r), 4), round(float(q), 2)) for r, q in points]


def compared(pictures: list[images.Picture], arms: dict[str, dict]) -> dict:
    """Each arm's pooled curve (`curve` with the arm's options), mean encode seconds and, for
    every arm after the first, BD-rate against the first; printed as each arm ends."""
    first = next(iter(arms))
    result = {"curves": {}, "encode_seconds": {}, "bd_rate_pct": {}}
    for name, options in arms.items():
        points, seconds = curve(pictures, **options)
        result["curves"][name], result["encode_seconds"][name] = points, seconds
        if name != first:
            result["bd_rate_pct"][name] = bd_rate(points, result["curves"][first])
        print(f"{name}: BD-rate {result['bd_rate_pct'].get(name, 0.0):+.2f}% against {first}, "
              f"encode {seconds:.2f} s per picture", shown(points), flush=True)
    return result


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--weights", default="0.15,0.25,0.5,1")
    p.add_argument("--views", choices=("even", "odd", "all"), default="even")
    p.add_argument("--out")
    args = p.parse_args()
    torch.set_num_threads(1)
    names, pictures = held_out(args.views)
    weights = [0.0] + [float(w) for w in args.weights.split(",")]
    result = compared(pictures, {f"{w:g}": {"weight": w} for w in weights})
    report = {"views": names, "crop": CROP, "betas": BETAS, "curves": result["curves"],
              "bd_rate_pct": result["bd_rate_pct"]}
    if args.out:
        Path(args.out).write_text(json.dumps(report, indent=1) + "\n")


if __name__ == "__main__":
    main()
