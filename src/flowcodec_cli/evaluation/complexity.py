"""Multiply-accumulates per pixel of a model's parts: analysis, synthesis and the entropy model.

    python -m flowcodec_cli.evaluation.complexity --models flow,hyperprior [--size 512x768]

Why: speed on a plain CPU is part of the product, and seconds depend on the machine while MACs
do not. The parts are counted as the codec runs them: the analysis (encoder only), the synthesis
with the latent residual prediction (decoder only), and the entropy model: h_a (encoder only),
and h_s plus the context networks, which both sides run to build the tables. Counted with
torch's FLOP counter on one forward pass (convolutions and matrix products; element-wise work
is not counted), divided by 2 (a MAC is two FLOPs) and by the pixels of the image.
"""

from __future__ import annotations

import argparse
import json

import torch
from torch.utils.flop_counter import FlopCounterMode

from flowcodec_cli import zoo
from flowcodec_cli.codec.loaded import TileSegments


def _macs(fn) -> int:
    counter = FlopCounterMode(display=False)
    with counter, torch.no_grad():
        fn()
    return counter.get_total_flops() // 2


def _coded_context(entropy, raw: torch.Tensor, y_hat: torch.Tensor) -> None:
    """The context networks as the coder runs them: `codec/loaded.TileSegments`, segment by
    segment (each slice's channel context once, the spatial networks past their first layer
    only at the non-anchors)."""
    segments = TileSegments(entropy, raw)
    for k in range(entropy.slice_count * entropy.phases):
        segments(y_hat, k)


def part_macs(model, height: int, width: int, beta: float = 0.005) -> dict[str, float]:
    """MACs per pixel of each part of `model` on a height × width image (multiples of the stride)."""
    b = torch.tensor([beta])
    x = torch.rand(1, 3, height, width)
    entropy = model.entropy_model
    y = torch.round(model.analysis(x, b))
    z_hat = torch.round(entropy.hyper_analysis(y, b))
    raw = entropy.hyper_params(z_hat, b)
    parts = {
        "analysis": _macs(lambda: model.analysis(x, b)),
        "hyper_analysis": _macs(lambda: entropy.hyper_analysis(y, b)),
        "hyper_synthesis": _macs(lambda: entropy.hyper_params(z_hat, b)),
        "context": _macs(lambda: _coded_context(entropy, raw, y)),
        "synthesis": _macs(lambda: model.synthesis(entropy.refined(y), b)),
    }
    pixels = height * width
    per_pixel = {name: macs / pixels for name, macs in parts.items()}
    per_pixel["encoder_total"] = sum(per_pixel[k] for k in ("analysis", "hyper_analysis",
                                                             "hyper_synthesis", "context"))
    per_pixel["decoder_total"] = sum(per_pixel[k] for k in ("hyper_synthesis", "context", "synthesis"))
    return {name: round(value, 1) for name, value in per_pixel.items()}


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(prog="python -m flowcodec_cli.evaluation.complexity",
                                description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--models", default="flow,hyperprior")
    p.add_argument("--size", default="512x768", help="HEIGHTxWIDTH (default: a Kodak image)")
    a = p.parse_args(argv)
    height, width = (int(v) for v in a.size.lower().split("x"))
    torch.set_num_threads(1)
    for name in a.models.split(","):
        model, sha = zoo.load(name)
        if getattr(model, "codes_indices", False):
            raise SystemExit(f"{name}: a VQ-VAE has no hyperprior entropy model; this count "
                             "covers the mixture models only")
        print(json.dumps({"model": name, "weights_sha256": sha[:12], "size": [height, width],
                          "macs_per_pixel": part_macs(model, height, width)}))


if __name__ == "__main__":
    main()
