"""`make demo`'s last line: size, bpp and PSNR of a coded sample, measured from the real files."""

from __future__ import annotations

import os
import sys


from flowcodec_cli.files.images import read_image
from flowcodec_cli.evaluation.metrics import psnr


def main(argv: list[str]) -> None:
    original_path, fcx_path, decoded_path = argv
    original, decoded = read_image(original_path), read_image(decoded_path)
    height, width = original.rgb.shape[:2]
    size = os.path.getsize(fcx_path)
    print(f"{original_path}: {width}x{height} -> {fcx_path}: {size} bytes, "
          f"{8 * size / (width * height):.4f} bpp, PSNR {psnr(original.rgb, decoded.rgb):.2f} dB "
          f"(decoded: {decoded_path})")


if __name__ == "__main__":
    main(sys.argv[1:])
