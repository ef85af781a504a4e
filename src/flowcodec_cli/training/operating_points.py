"""Measuring the operating points (β → β′) of a weights file with real rounding and bits.

`--beta` promises the rate weight of L = D + β·R with real quantization and real bits. The network's
β input (its rate gains and table conditioning) was only trained against a stand-in: additive
noise for the rate, straight-through rounding for the distortion, on small training crops. Where
that stand-in is biased, the network's operating point at input β is the Lagrangian optimum for
some other weight. Measured on held-out photos, the hyperprior's points at β sit where the slope
of its real D(R) curve is only about 0.7·β: it spends more bits than the user's β says it should.

The fix is the encoder's, not the format's: for each requested β the encoder runs the network at
the β′ that minimizes the real D + β·R averaged over held-out photos, and stores β′ in the header
(the decoder needs the β the network ran at, and nothing else). The per-β optima are noisy where
the curve is flat, so the map is a straight line in log-log (log β′/β against log β) fitted to them. The map is a few (β, β′) knots,
measured by this module on the shipped fp16 weights and written into that weights file's metadata,
so it is covered by the weights digest and travels with the weights it was measured for. A
weights file without knots is run at the requested β (the identity map).

    python -m flowcodec_cli.training.operating_points weights/hyperprior.safetensors \
        --data ../shared/data/stereo/middlebury_trainingQ/left ../shared/data/stereo/middlebury_trainingQ/right \
        --out docs/operating_points/hyperprior.json --write

The measurement must use photos the model never trained on, and never the test set (Kodak).
The VQ-VAE is refused (one line, exit 1): its β is no rate weight but a stage count, and its
encoder writes the middle β of that count (`VQVAECodec.network_beta`) instead.
"""

from __future__ import annotations

import argparse
import json
import math
from pathlib import Path

import numpy as np
import torch
from safetensors import safe_open
from safetensors.torch import save_file

from flowcodec_cli import zoo
from flowcodec_cli.codec.operating_points import METADATA_KEY, rounded
from flowcodec_cli.files.atomic import atomic_path
from flowcodec_cli.training.checkpoints import load_checkpoint_model
from flowcodec_cli.training.data import load_folder_images
from flowcodec_cli.training.evaluate import center_crop, rd_point

GRID_STEPS_PER_OCTAVE = 6   # candidate β′ values: a geometric grid over the model's range
KNOTS_PER_OCTAVE = 2        # requested β values the map is measured at


def write(path: Path, knots: list[tuple[float, float]]) -> str:
    """Store knots in a weights file's metadata; the tensors are copied byte for byte.
    Returns the file's new sha256 (the zoo entry must be updated to it)."""
    metadata = zoo.read_metadata(path)
    with safe_open(str(path), framework="pt") as f:
        tensors = {key: f.get_tensor(key) for key in f.keys()}
    metadata[METADATA_KEY] = json.dumps([[b, p] for b, p in knots])
    with atomic_path(path) as tmp:
        save_file(tensors, str(tmp), metadata=metadata)
    return zoo.sha256_file(path)


def geometric(lo: float, hi: float, per_octave: int) -> list[float]:
    """lo, lo·2^(1/n), … up to hi, with hi itself as the last value."""
    count = int(math.floor(per_octave * math.log2(hi / lo) + 1e-9))
    values = [lo * 2 ** (k / per_octave) for k in range(count + 1)]
    return values if math.isclose(values[-1], hi) else values + [hi]


@torch.no_grad()
def real_rd(model, images: list[torch.Tensor], beta: float) -> tuple[float, float]:
    """Mean (R in bits per dimension, D as MSE) over images with the network at β, latents
    rounded as in the codec and the rate the model's information content of ŷ and ẑ (what the
    range coder writes, within ~0.2%: see `flowcodec bench`)."""
    points = [rd_point(model, x, beta) for x in images]
    rate = float(np.mean([bpp / 3 for bpp, _ in points]))
    distortion = float(np.mean([10 ** (-psnr / 10) for _, psnr in points]))
    return rate, distortion


def best_network_beta(grid: list[float], curve: list[tuple[float, float]], beta: float) -> float:
    """The β′ minimizing mean D + β·R over the measured grid, refined between grid points by a
    parabola through the minimum and its neighbours (in log β′)."""
    lagrangian = [d + beta * r for r, d in curve]
    i = int(np.argmin(lagrangian))
    if 0 < i < len(grid) - 1:
        left, mid, right = lagrangian[i - 1:i + 2]
        curvature = left - 2 * mid + right
        if curvature > 0:
            step = math.log(grid[i + 1] / grid[i])
            offset = 0.5 * (left - right) / curvature  # in grid steps, within (-1/2, 1/2)
            return grid[i] * math.exp(offset * step)
    return grid[i]


def measure(model, images: list[torch.Tensor], progress=None) -> dict:
    """Knots (β, β′) over the model's β range, and the curve they were chosen from."""
    config = model.config
    grid = geometric(config.beta_min, config.beta_max, GRID_STEPS_PER_OCTAVE)
    curve = []
    for beta in grid:
        curve.append(real_rd(model, images, beta))
        if progress:
            progress(beta, *curve[-1])
    betas = geometric(config.beta_min, config.beta_max, KNOTS_PER_OCTAVE)
    optima = [best_network_beta(grid, curve, beta) for beta in betas]
    # Near the ends of the curve the Lagrangian is flat to within measurement noise (0.01%), so
    # single optima jump around. The map is a straight line in log-log fitted to the optima that
    # are not stopped by the ends of the range: smooth, monotone, and robust to one bad point.
    inside = [(math.log(b), math.log(o / b)) for b, o in zip(betas, optima)
              if config.beta_min < o < config.beta_max]
    slope, intercept = np.polyfit(*zip(*inside), 1) if len(inside) >= 2 else (0.0, 0.0)
    knots, floor = [], 0.0
    for beta in betas:
        network = beta * math.exp(intercept + slope * math.log(beta))
        network = rounded(min(config.beta_max, max(config.beta_min, network)))
        floor = max(floor, network)  # monotone: a larger β never runs the network at a smaller one
        knots.append((rounded(beta), floor))
    return {"knots": knots, "optima": [[b, o] for b, o in zip(betas, optima)],
            "fit": {"log_ratio_slope": float(slope), "log_ratio_intercept": float(intercept)},
            "grid": [{"beta": b, "bits_per_dim": r, "mse": d} for b, (r, d) in zip(grid, curve)]}


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(prog="python -m flowcodec_cli.training.operating_points", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("weights", type=Path, help="a weights file (safetensors) to measure")
    p.add_argument("--data", nargs="+", required=True, help="held-out photo folders (never Kodak)")
    p.add_argument("--crop", type=int, default=256, help="central crop of each photo")
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--out", type=Path, required=True, help="the measurement as JSON")
    p.add_argument("--write", action="store_true", help="store the knots in the weights file")
    a = p.parse_args(argv)
    torch.set_num_threads(a.threads)
    model, _ = load_checkpoint_model(a.weights)
    if getattr(model, "codes_indices", False):
        raise SystemExit(f"{a.weights}: {model.name}'s β only chooses its stage count, which "
                         "its header β fixes (models/vqvae.py): no operating points to measure")
    images = [center_crop(im, a.crop) for im in load_folder_images(a.data, max_side=10**9, crop=a.crop)]
    result = measure(model, images, progress=lambda b, r, d: print(
        f"beta' {b:.5g}: {3 * r:.4f} bpp, {-10 * math.log10(d):.2f} dB", flush=True))
    result.update(weights=str(a.weights), data=[str(d) for d in a.data], images=len(images),
                  crop=a.crop)
    if a.write:
        result["sha256"] = write(a.weights, result["knots"])
    a.out.write_text(json.dumps(result, indent=2) + "\n")
    for beta, network in result["knots"]:
        print(f"beta {beta:g} -> network beta {network:g} (x{network / beta:.2f})")
    if a.write:
        print(f"wrote {len(result['knots'])} knots into {a.weights}; sha256 {result['sha256']}")


if __name__ == "__main__":
    main()
