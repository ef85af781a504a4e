"""Measuring the quality scale `-q Q` (0-100): which β each model runs at for a given Q.

Users come with JPEG's scale in their hands (cjpeg, cwebp, avifenc and cjxl all read `-q 75` as
"about as good as JPEG at 75"), so Q is defined by JPEG itself: the target quality of Q is the PSNR
that libjpeg (through Pillow, standard tables) reaches at quality Q on held-out photos, with
full-resolution chroma (4:4:4, as avifenc and cjxl code by default: with 4:2:0 the top of JPEG's
scale stops at 39 dB on these photos, below what our models reach). A model runs at Q at the β whose real rate-distortion point reaches
that PSNR on the same photos. So equal Q gives about equal PSNR across models (and about JPEG's
PSNR at that Q, in a fraction of JPEG's bytes), and Q is monotone in quality for every model.
Where a model cannot reach the target (above its best quality, below its worst), Q is held at the
end of its β range.

The model side is the curve `training/operating_points.py` measured (network β′ → mean MSE over
the held-out crops, with real rounding and bits); the β asked for is the one whose β′ (the runtime
map of operating_points) is the β′ that reaches the target. The result is a package data file,
`flowcodec_cli/data/quality.json`: per model, the sha256 of the weights it was measured on and
(Q, β) knots every 5 points of Q, plus the typical bpp and PSNR of each knot on these photos (the
table of `encode --help`). Rerun it whenever weights ship:

    python -m flowcodec_cli.training.quality_map docs/operating_points/flow.json \
        docs/operating_points/hyperprior.json

The photos are the ones the operating points were measured on (held out from training, never
Kodak).
"""

from __future__ import annotations

import argparse
import io
import json
import math
from pathlib import Path

import numpy as np
from PIL import Image

from flowcodec_cli import zoo
from flowcodec_cli.codec import quality
from flowcodec_cli.codec.operating_points import OperatingPoints, rounded
from flowcodec_cli.training.data import load_folder_images
from flowcodec_cli.training.evaluate import center_crop

QUALITY_STEP = 5            # knots at Q = 0, 5, ..., 100


def jpeg_psnr(images: list[np.ndarray], q: int) -> float:
    """PSNR of the mean MSE of Pillow's 4:4:4 JPEG at quality q over uint8 (H, W, 3) images, the same
    averaging as the operating-point curve (mean of per-image MSE)."""
    errors = []
    for rgb in images:
        buffer = io.BytesIO()
        Image.fromarray(rgb).save(buffer, format="JPEG", quality=q, subsampling=0)
        decoded = np.asarray(Image.open(buffer).convert("RGB"), dtype=np.float64)
        errors.append(np.mean((decoded - rgb) ** 2) / 255.0 ** 2)
    return -10 * math.log10(float(np.mean(errors)))


def model_curve(points: dict) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(log β′, PSNR, bpp) of an operating-points measurement, PSNR made non-increasing in β′
    (the measurement's noise must not make the quality scale non-monotone)."""
    grid = sorted(points["grid"], key=lambda p: p["beta"])
    log_beta = np.log([p["beta"] for p in grid])
    psnr = np.minimum.accumulate([-10 * math.log10(p["mse"]) for p in grid])
    bpp = np.array([3 * p["bits_per_dim"] for p in grid])
    return log_beta, psnr, bpp


def network_beta_for(psnr_target: float, log_beta: np.ndarray, psnr: np.ndarray) -> float:
    """The β′ whose measured PSNR is the target, log-linear between grid points, clamped to
    the grid (the model's range)."""
    # np.interp needs increasing x: PSNR falls as β′ grows, so interpolate on the reversed curve.
    return float(math.exp(np.interp(psnr_target, psnr[::-1], log_beta[::-1])))


def requested_beta_for(network_beta: float, points: OperatingPoints) -> float:
    """The β to ask for so that the runtime map runs the network at `network_beta`: bisection
    in log β (the map is monotone), clamped to the model's range."""
    lo, hi = math.log(points.beta_min), math.log(points.beta_max)
    for _ in range(60):
        mid = 0.5 * (lo + hi)
        if points(math.exp(mid)) < network_beta:
            lo = mid
        else:
            hi = mid
    return rounded(math.exp(hi))


def measure_model(points_json: dict, targets: dict[int, float]) -> dict:
    """One model's (Q, β) knots and their typical bpp and PSNR on the held-out crops."""
    path = Path(points_json["weights"])
    config = json.loads(zoo.read_metadata(path)["config"])
    runtime = OperatingPoints(tuple(map(tuple, points_json["knots"])), config["beta_min"],
                              config["beta_max"])
    log_beta, psnr, bpp = model_curve(points_json)
    knots, typical = [], []
    for q, target in targets.items():
        network = network_beta_for(target, log_beta, psnr)
        beta = requested_beta_for(network, runtime)
        at = math.log(runtime(beta))
        knots.append([q, beta])
        typical.append([q, round(float(np.interp(at, log_beta, bpp)), 3),
                        round(float(np.interp(at, log_beta, psnr)), 2)])
    return {"sha256": points_json["sha256"], "knots": knots, "typical_bpp_psnr": typical}


def model_name(sha256: str) -> str:
    """The registered model whose pinned weights were measured."""
    for name, entry in zoo.REGISTRY.items():
        if entry.sha256 == sha256:
            return name
    raise SystemExit(f"no registered model has weights {sha256[:12]}… (update zoo.py first)")


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(prog="python -m flowcodec_cli.training.quality_map",
                                description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("points", nargs="+", type=Path,
                   help="operating-points measurements (docs/operating_points/MODEL.json)")
    p.add_argument("--out", type=Path, default=quality.DATA_PATH)
    a = p.parse_args(argv)
    measured = [json.loads(path.read_text()) for path in a.points]
    data, crop = measured[0]["data"], measured[0]["crop"]
    if any(m["data"] != data or m["crop"] != crop for m in measured):
        raise SystemExit("the operating points were measured on different photos")
    images = [(center_crop(im, crop)[0] * 255).round().byte().permute(1, 2, 0).numpy()
              for im in load_folder_images(data, max_side=10**9, crop=crop)]
    targets = {q: jpeg_psnr(images, q) for q in range(0, 101, QUALITY_STEP)}
    targets = dict(zip(targets, np.maximum.accumulate(list(targets.values()))))
    result = {
        "definition": "Q -> the PSNR of Pillow's JPEG at quality Q (4:4:4) on these photos; "
                      "each model's beta reaching that PSNR on the same photos",
        "data": data, "crop": crop, "images": len(images),
        "jpeg_psnr": [[q, round(float(t), 2)] for q, t in targets.items()],
        "models": {model_name(m["sha256"]): measure_model(m, targets) for m in measured},
    }
    a.out.write_text(json.dumps(result, indent=1) + "\n")
    for name, model in result["models"].items():
        print(name, " ".join(f"Q{q}:{b:g}" for q, b in model["knots"]))
    print(f"wrote {a.out}")


if __name__ == "__main__":
    main()
