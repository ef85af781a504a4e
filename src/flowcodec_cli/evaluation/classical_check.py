"""Check our classical-codec measurements against the shipped reference numbers on Kodak.

    python -m flowcodec_cli.evaluation.classical_check KODAK_DIR [--codec webp] [--settings 5,30,60,87]

Why: bench's classical baselines are only worth showing if they are measured right. The
shipped "measured" curves (anchors.measured()) were made with the same libraries and settings,
so at equal settings our mean bpp and PSNR over the 24 images must agree closely; a gap points
at a wrong image loading, bpp or PSNR convention, or encoder option. Prints one row per setting
and the largest PSNR difference; exits with status 1 when it exceeds --tol (default 0.1 dB).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np
from PIL import Image

from flowcodec_cli.evaluation import anchors
from flowcodec_cli.evaluation import classical
from flowcodec_cli.evaluation import metrics
from flowcodec_cli.files.images import image_files

# Only lossless inputs: the reference was measured on the original Kodak PNGs, and a JPEG copy
# would add its own artefacts to what is compared.
LOSSLESS_SUFFIXES = frozenset({".png", ".ppm", ".bmp", ".tif", ".tiff"})


def load_images(directory: Path) -> list[np.ndarray]:
    paths = [p for p in image_files(directory) if p.suffix.lower() in LOSSLESS_SUFFIXES]
    if not paths:
        raise SystemExit(f"no images in {directory}")
    images = []
    for p in paths:
        with Image.open(p) as im:
            images.append(np.asarray(im.convert("RGB")))
    return images


def measure(codec: classical.ClassicalCodec, images: list[np.ndarray],
            setting: float) -> tuple[float, float]:
    """Mean bpp and mean PSNR over the images (per-image values averaged, as CompressAI does)."""
    bpps, psnrs = [], []
    for rgb in images:
        data = codec.encode(rgb, setting)
        bpps.append(8.0 * len(data) / (rgb.shape[0] * rgb.shape[1]))
        psnrs.append(metrics.psnr(rgb, codec.decode(data)))
    return float(np.mean(bpps)), float(np.mean(psnrs))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m flowcodec_cli.evaluation.classical_check",
                                     description=__doc__.split("\n\n")[1])
    parser.add_argument("kodak_dir", type=Path)
    parser.add_argument("--codec", default="webp", choices=sorted(classical.MEASURED_CURVE))
    parser.add_argument("--settings", default="5,30,60,87",
                        help="comma-separated settings, each one of the reference curve's")
    parser.add_argument("--tol", type=float, default=0.1, help="max |PSNR difference|, dB")
    args = parser.parse_args(argv)

    codec = classical.get(args.codec)
    if not codec.available():
        print(f"{codec.name}: skipped, {codec.unavailable_reason()}")
        return 0
    ref = anchors.measured()[classical.MEASURED_CURVE[codec.name]]
    images = load_images(args.kodak_dir)
    if len(images) != 24:
        print(f"warning: {len(images)} images, the reference is over the 24 Kodak images")

    print(f"{codec.name} ({codec.description}) vs reference curve {ref.key!r}, "
          f"{len(images)} images")
    print(f"{codec.setting_kind:>10} {'bpp':>8} {'ref bpp':>8} {'d bpp %':>8} "
          f"{'PSNR':>8} {'ref PSNR':>8} {'d dB':>7}")
    worst = 0.0
    for setting in (float(s) for s in args.settings.split(",")):
        if setting not in ref.setting:
            raise SystemExit(f"setting {setting:g} is not on the reference curve: {ref.setting}")
        i = ref.setting.index(setting)
        bpp, psnr = measure(codec, images, setting)
        d_db = psnr - ref.psnr[i]
        worst = max(worst, abs(d_db))
        print(f"{setting:>10g} {bpp:8.4f} {ref.bpp[i]:8.4f} {100 * (bpp / ref.bpp[i] - 1):+8.3f} "
              f"{psnr:8.4f} {ref.psnr[i]:8.4f} {d_db:+7.4f}")
    verdict = "OK" if worst <= args.tol else "FAIL"
    print(f"max |PSNR difference| = {worst:.4f} dB (tolerance {args.tol} dB): {verdict}")
    return 0 if verdict == "OK" else 1


if __name__ == "__main__":
    sys.exit(main())
