"""Quick rate-distortion of a training checkpoint: the ablations' yardstick.

    python -m flowcodec_cli.training.evaluate runs/abl-base/checkpoint.pt --data DIR [--crop 256] \
        [--betas 0.0002,0.001,0.005,0.02] [--reference other.json] --out result.json

For each image (the central crop), at each β: the latents are rounded as in the codec, and the
rate is the model's information content of ŷ and ẑ (what the range coder gets within ~1%, see
`flowcodec bench`), the distortion the PSNR of the clamped reconstruction. No files are written,
so it is fast enough to compare short training runs. `--reference` adds the BD-rate (PSNR)
against another result file. Real `.fcx` files and Kodak figures come from `flowcodec bench`.

The VQ-VAE (`codes_indices`) has no ŷ and ẑ: at β it sends its first `stages_for_beta(β)` stages
and its rate is the prior's information content of their indices, stage by stage as the coder
tables them (codec/indices.py; the file is that within ~1%). A model that decodes with a side view
is refused: this takes single images (`flowcodec bench --stereo` measures those).
"""

from __future__ import annotations

import argparse
import json
import math
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from flowcodec_cli.evaluation import metrics
from flowcodec_cli.training.checkpoints import load_checkpoint_model
from flowcodec_cli.training.data import load_folder_images


def center_crop(image: torch.Tensor, crop: int) -> torch.Tensor:
    """uint8 (3, H, W) → float (1, 3, crop, crop) in [0, 1], the central square."""
    _, h, w = image.shape
    top, left = (h - crop) // 2, (w - crop) // 2
    return image[None, :, top:top + crop, left:left + crop].float() / 255.0


@torch.no_grad()
def rd_point(model, x: torch.Tensor, beta: float) -> tuple[float, float]:
    """(bpp, PSNR) of one image at β with rounded latents (the VQ-VAE: its coded indices)."""
    if getattr(model, "codes_indices", False):
        return _index_rd_point(model, x, beta)
    b = torch.tensor([beta])
    entropy_model = model.entropy_model
    y = model.analysis(x, b)
    y_hat, z_hat = torch.round(y), torch.round(entropy_model.hyper_analysis(y, b))
    raw = entropy_model.hyper_params(z_hat, b)
    y_params = entropy_model.params_given(raw, y_hat)
    y_bits, z_bits = entropy_model.rounded_bits(y_hat, z_hat, y_params)
    x_hat = model.synthesis(entropy_model.refined(y_hat), b).clamp(0, 1)
    pixels = x.shape[2] * x.shape[3]
    mse = float(((x_hat - x) ** 2).mean())
    return float(y_bits + z_bits) / pixels, -10 * np.log10(max(mse, 1e-12))


def _index_rd_point(model, x: torch.Tensor, beta: float) -> tuple[float, float]:
    """The VQ-VAE's (bpp, PSNR): nearest codes of its first stages_for_beta(β) stages, the
    prior's bits of each stage given the stages before it."""
    stages = int(model.stages_for_beta(beta))
    indices = model.quantize(model.analysis(x), stages)
    nats = sum(F.cross_entropy(model.prior_logits(k, model.dequantize(indices[:, :k])).double(),
                               indices[:, k], reduction="sum") for k in range(stages))
    x_hat = model.synthesis(model.dequantize(indices)).clamp(0, 1)
    mse = float(((x_hat - x) ** 2).mean())
    bits = float(nats) / math.log(2)
    return bits / (x.shape[2] * x.shape[3]), -10 * np.log10(max(mse, 1e-12))


def evaluate(model, images: list[torch.Tensor], betas: list[float], crop: int) -> dict:
    """The mean (bpp, PSNR) over the central crops of the images at each β."""
    crops = [center_crop(im, crop) for im in images]
    curve = []
    for beta in betas:
        points = [rd_point(model, x, beta) for x in crops]
        curve.append({"beta": beta, "bpp": float(np.mean([p[0] for p in points])),
                      "psnr": float(np.mean([p[1] for p in points]))})
    return {"images": len(crops), "crop": crop, "curve": curve}


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(prog="python -m flowcodec_cli.training.evaluate", description=__doc__)
    p.add_argument("checkpoint", type=Path)
    p.add_argument("--data", nargs="+", required=True)
    p.add_argument("--crop", type=int, default=256)
    p.add_argument("--betas", default="0.0002,0.0005,0.002,0.008,0.03")
    p.add_argument("--reference", type=Path, help="another result JSON: adds BD-rate vs it")
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--out", type=Path, required=True)
    a = p.parse_args(argv)
    torch.set_num_threads(a.threads)
    model, state = load_checkpoint_model(a.checkpoint)
    if model.side_info_at_decoder:
        raise SystemExit(f"{a.checkpoint}: {model.name} decodes with a side view; this takes "
                         "single images (use flowcodec bench --stereo)")
    images = load_folder_images(a.data, max_side=10**9, crop=a.crop)
    result = {"checkpoint": str(a.checkpoint), "step": state["step"], "config": state["config"],
              "train_args": {k: v for k, v in state["args"].items() if k != "data"},
              **evaluate(model, images, [float(b) for b in a.betas.split(",")], a.crop)}
    if a.reference:
        ref = json.loads(a.reference.read_text())["curve"]
        mine = result["curve"]
        result["bd_rate_vs_reference"] = metrics.bd_rate(
            [(r["bpp"], r["psnr"]) for r in mine], [(r["bpp"], r["psnr"]) for r in ref],
            method="pchip")
        result["reference"] = str(a.reference)
    a.out.write_text(json.dumps(result, indent=2) + "\n")
    print(json.dumps({k: result[k] for k in ("checkpoint", "step", "curve")}))
    if "bd_rate_vs_reference" in result:
        print(f"BD-rate vs {a.reference}: {result['bd_rate_vs_reference']:+.2f}%")


if __name__ == "__main__":
    main()
