"""Regenerate the golden files: `python tests/golden/make_golden.py` (only when the weights or
the format change on purpose; the commit must say why). It also rewrites the worked example of
docs/format.md (format_example.py), which shows one of these files byte by byte.

Each golden `.fcx` is committed with the sha256 of the pixels it must decode to, once per MKL
branch the coding pins (codec/blas.py: AVX2 and AVX512, which differ by one level in a few
pixels). The test (tests/test_golden.py) decodes them on whatever machine runs CI, with its own
branch and with AVX2, so a decoder that rebuilds other tables, or a transform that rounds
differently, is caught on the machine where it happens. A machine without AVX-512 cannot make
the AVX512 digests: it keeps the committed ones.

`python tests/golden/make_golden.py --digests` prints this process's digests (as JSON).
"""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np

from flowcodec_cli import codec
from flowcodec_cli.codec import blas, fcx
from flowcodec_cli.files import images

import format_example

HERE = Path(__file__).resolve().parent
DATA = HERE.parent / "data"


def cases() -> dict[str, tuple[images.Picture, float, str, images.Picture | None]]:
    """name → (picture, β, model, side-information picture or None)."""
    parrots = images.read_image(DATA / "parrots_256x192.png")
    rng = np.random.default_rng(2026)
    yy, xx = np.mgrid[0:37, 0:53]
    smooth = np.stack([xx * 4, yy * 6, (xx + yy) * 2], axis=2).astype(np.uint8)
    alpha = (rng.random((37, 53)) * 255).astype(np.uint8)
    left, right = (images.read_image(DATA / "stereo" / view / "cup_upright.png")
                   for view in ("left", "right"))
    return {
        "parrots_b0.0005": (parrots, 0.0005, "hyperprior", None),
        "parrots_b0.02": (parrots, 0.02, "hyperprior", None),
        "gradient_rgba_b0.005": (images.Picture(smooth, alpha, fcx.LAYOUT_RGBA), 0.005, "hyperprior", None),
        "parrots_tiled64_b0.005": (parrots, 0.005, "hyperprior", None),
        "parrots_flow_b0.002": (parrots, 0.002, "flow", None),
        "cup_dsc_b0.01": (left, 0.01, "dsc", right),
        "parrots_metadata_b0.005": (parrots._replace(metadata=METADATA), 0.005, "hyperprior", None),
    }


# The metadata of the version-2 golden: fixed bytes (a real ICC profile records the time it was
# made), opaque to the container, which stores and returns them as they are.
METADATA = images.Metadata(
    icc=b"\x00\x00\x00\x30" + b"golden ICC bytes: opaque to the container" + b"\x00" * 3,
    exif=bytes.fromhex("4d4d002a0000000800020110000200000008000000260132000200000014"   # Model,
                       "0000002e000000005465737443616d00323032363a30313a30322030333a30"   # DateTime
                       "343a303500"),
    xmp=b'<x:xmpmeta xmlns:x="adobe:ns:meta/"/>')


def encode(picture, beta, model, side, tile) -> bytes:
    """The golden encode: the side picture goes to encoders that see it (joint models) only."""
    joint = codec.LoadedCodec.get(model).model.side_info_at_encoder
    return codec.encode(picture, beta, model, tile=tile, side_info=side if joint else None)[0]


def decoded_digest(data: bytes, side: images.Picture | None, threads: int = 1) -> str:
    """The pixel digest of a golden file's decode on `threads` torch threads (the same for any
    count since MKL is pinned; before, 1 and 2 threads differed on an Intel Xeon)."""
    import torch
    before = torch.get_num_threads()
    torch.set_num_threads(threads)
    try:
        return pixel_digest(codec.decode(data, side_info=side))
    finally:
        torch.set_num_threads(before)


def digests() -> dict[str, str]:
    """name → pixel digest of every committed golden file, decoded in this process."""
    return {name: decoded_digest((HERE / f"{name}.fcx").read_bytes(), case[3])
            for name, case in cases().items()}


def digests_on(branch: str) -> dict[str, str]:
    """`digests()` in a fresh interpreter whose MKL is pinned to `branch`."""
    env = {**os.environ, "MKL_CBWR": branch}
    out = subprocess.run([sys.executable, str(HERE / "make_golden.py"), "--digests"], env=env,
                         check=True, capture_output=True, text=True, cwd=HERE)
    return json.loads(out.stdout)


def pixel_digest(picture: images.Picture) -> str:
    digest = hashlib.sha256(picture.rgb.tobytes())
    if picture.alpha is not None:
        digest.update(picture.alpha.tobytes())
    return digest.hexdigest()


def main() -> None:
    previous = json.loads((HERE / "manifest.json").read_text())
    manifest = {}
    for name, (picture, beta, model, side) in cases().items():
        tile = 64 if "tiled64" in name else codec.DEFAULT_TILE
        data = encode(picture, beta, model, side, tile)
        (HERE / f"{name}.fcx").write_bytes(data)
        manifest[name] = {"fcx_sha256": hashlib.sha256(data).hexdigest(), "decoded_sha256": {}}
    branches = [blas.AVX2] + ([blas.AVX512] if blas.best_branch() == blas.AVX512 else [])
    for branch in (blas.AVX2, blas.AVX512):
        made = digests_on(branch) if branch in branches else None
        for name in manifest:
            kept = previous.get(name, {}).get("decoded_sha256")
            kept = kept.get(branch) if isinstance(kept, dict) else None  # a str: one branch, before
            manifest[name]["decoded_sha256"][branch] = made[name] if made else kept
    (HERE / "manifest.json").write_text(json.dumps(manifest, indent=2) + "\n")
    format_example.main([])  # docs/format.md §2 and the cli.md info example
    print(json.dumps(manifest, indent=2))


if __name__ == "__main__":
    if sys.argv[1:] == ["--digests"]:
        print(json.dumps(digests()))
    else:
        main()
