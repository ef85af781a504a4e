"""Large photos: peak memory of `flowcodec encode` / `decode`, and the cost of tile seams.

    python -m flowcodec_cli.evaluation.resources --source DIR [--sizes 4000x3000,8000x6000] [--beta B]

* **Peak RSS.** A photo of each size is assembled from crops of the photos in DIR (a mosaic of
  real content, so the latents look like a photo's) and written as PNG. `flowcodec encode` and
  `flowcodec decode` then run as separate processes, and the kernel's peak resident set size of
  each (`wait4` rusage) is reported with its wall time. Tiled coding should keep both roughly
  flat as the image grows: only one tile's activations are alive at a time.
* **Seams.** One photo (2048 × 2048 by default) is coded twice, in 1024-px tiles and as a single
  tile. Over the pixels within 8 px of a tile border, the tiled PSNR may fall at most 0.3 dB
  below the untiled PSNR of the same pixels (the issue's limit); the whole-image PSNRs of both
  are reported too.

Prints one JSON document; `--out` also writes it to a file.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
from PIL import Image

from flowcodec_cli import codec
from flowcodec_cli.codec import fcx
from flowcodec_cli.files.images import IMAGE_SUFFIXES, Picture, read_image
from flowcodec_cli.evaluation.metrics import psnr

BLOCK = 512          # mosaic blocks: crops of this side from the source photos
MOSAIC_OFFSET = 200  # the first block edge (not a multiple of 64)
SEAM_BAND = 8        # pixels on each side of a tile border that count as "the seam"
SEAM_LIMIT_DB = 0.3


def mosaic(sources: list[np.ndarray], height: int, width: int, seed: int = 0) -> np.ndarray:
    """A (height, width, 3) uint8 photo tiled from random BLOCK-sized crops of `sources`."""
    rng = np.random.default_rng(seed)
    out = np.empty((height, width, 3), np.uint8)
    # Block edges start at MOSAIC_OFFSET so they never coincide with tile borders (multiples of
    # 64): an edge the tiling happens to cut along would flatter the seam measurement.
    starts = lambda n: [0] + list(range(MOSAIC_OFFSET, n, BLOCK))  # noqa: E731
    for top in starts(height):
        for left in starts(width):
            src = sources[rng.integers(len(sources))]
            h = min(BLOCK, height - top, MOSAIC_OFFSET if top == 0 else BLOCK)
            w = min(BLOCK, width - left, MOSAIC_OFFSET if left == 0 else BLOCK)
            y = rng.integers(src.shape[0] - h + 1)
            x = rng.integers(src.shape[1] - w + 1)
            out[top:top + h, left:left + w] = src[y:y + h, x:x + w]
    return out


def _run_measured(args: list[str]) -> dict:
    """Run a command; its wall time and peak RSS (MiB) from the kernel's accounting."""
    start = time.perf_counter()
    proc = subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    _, status, usage = os.wait4(proc.pid, 0)
    seconds = time.perf_counter() - start
    stderr = proc.stderr.read().decode(errors="replace")
    proc.stderr.close()
    if os.waitstatus_to_exitcode(status) != 0:
        raise RuntimeError(f"{' '.join(args)} failed: {stderr.strip()}")
    return {"seconds": round(seconds, 2), "peak_rss_mib": round(usage.ru_maxrss / 1024, 1)}


def peak_memory(sources: list[np.ndarray], height: int, width: int, beta: float, model: str,
                workdir: Path) -> dict:
    image = mosaic(sources, height, width)
    png, fcx_path, out = workdir / "big.png", workdir / "big.fcx", workdir / "big.out.png"
    Image.fromarray(image).save(png, compress_level=1)
    cli = [sys.executable, "-m", "flowcodec_cli"]
    encode = _run_measured([*cli, "encode", str(png), "-o", str(fcx_path), "--beta", str(beta),
                            "--model", model, "--force", "--quiet"])
    decode = _run_measured([*cli, "decode", str(fcx_path), "-o", str(out), "--force", "--quiet"])
    decoded = read_image(out).rgb
    result = {"width": width, "height": height, "megapixels": round(height * width / 1e6, 1),
              "bpp": round(8 * fcx_path.stat().st_size / (height * width), 4),
              "psnr": round(psnr(image, decoded), 2), "encode": encode, "decode": decode}
    for path in (png, fcx_path, out):
        path.unlink()
    return result


def seam_cost(sources: list[np.ndarray], side: int, tile: int, beta: float, model: str) -> dict:
    image = mosaic(sources, side, side, seed=1)
    picture = Picture(image, None, fcx.LAYOUT_RGB)
    tiled = codec.decode(codec.encode(picture, beta, model, tile=tile)[0]).rgb
    whole = codec.decode(codec.encode(picture, beta, model, tile=side)[0]).rgb
    band = np.zeros((side, side), bool)
    for border in range(tile, side, tile):
        band[border - SEAM_BAND:border + SEAM_BAND, :] = True
        band[:, border - SEAM_BAND:border + SEAM_BAND] = True
    seam_tiled, seam_whole = (psnr(image[band][None], decoded[band][None]) for decoded in (tiled, whole))
    return {"side": side, "tile": tile, "band_px": SEAM_BAND, "beta": beta,
            "psnr_tiled": round(psnr(image, tiled), 3), "psnr_single_tile": round(psnr(image, whole), 3),
            "seam_band_psnr_tiled": round(seam_tiled, 3), "seam_band_psnr_single_tile": round(seam_whole, 3),
            "seam_cost_db": round(seam_whole - seam_tiled, 3),
            "within_limit": bool(seam_whole - seam_tiled <= SEAM_LIMIT_DB)}


def load_sources(directory: Path) -> list[np.ndarray]:
    paths = sorted(p for p in Path(directory).iterdir() if p.suffix.lower() in IMAGE_SUFFIXES)
    sources = [read_image(p).rgb for p in paths]
    sources = [s for s in sources if min(s.shape[:2]) >= BLOCK]
    if not sources:
        raise SystemExit(f"{directory}: no photos of at least {BLOCK}x{BLOCK}")
    return sources


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(prog="python -m flowcodec_cli.evaluation.resources", description=__doc__.splitlines()[0])
    p.add_argument("--source", required=True, help="folder of photos the test images are cut from")
    p.add_argument("--sizes", default="4000x3000,8000x6000", help="WxH list for the memory test")
    p.add_argument("--seam-side", type=int, default=2048)
    p.add_argument("--tile", type=int, default=codec.DEFAULT_TILE)
    p.add_argument("--beta", type=float, default=0.005)
    p.add_argument("--model", default="hyperprior")
    p.add_argument("--out", default=None, help="also write the JSON here")
    a = p.parse_args(argv)
    sources = load_sources(Path(a.source))
    sizes = [tuple(int(v) for v in s.lower().split("x")) for s in a.sizes.split(",") if s]
    with tempfile.TemporaryDirectory(prefix="flowcodec-resources-") as tmp:
        memory = [peak_memory(sources, h, w, a.beta, a.model, Path(tmp)) for w, h in sizes]
    report = {"model": a.model, "beta": a.beta, "tile": a.tile, "source": str(a.source),
              "peak_memory": memory, "seams": seam_cost(sources, a.seam_side, a.tile, a.beta, a.model)}
    text = json.dumps(report, indent=1)
    print(text)
    if a.out:
        Path(a.out).write_text(text + "\n")


if __name__ == "__main__":
    main()
