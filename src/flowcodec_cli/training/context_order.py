"""The slice order of a channel-context model: latent channels by energy, highest first.

    python -m flowcodec_cli.training.context_order weights/flow.safetensors \
        --data ../shared/data/bsds500/val --slices 16,16,32,64,64

Why energy: the high-energy channels are the coarse subbands, and a context model that decodes
them first can predict the fine ones from them (the reverse is weak). The order is measured on
training photos (never Kodak), as the mean of y² over central crops at three β spanning the
model's range (`--betas`), and printed as the `--config` JSON that grows the model
(`flowcodec train --init-from WEIGHTS --config ...`).
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import torch

from flowcodec_cli.training.checkpoints import load_checkpoint_model
from flowcodec_cli.training.data import load_folder_images
from flowcodec_cli.training.evaluate import center_crop


@torch.no_grad()
def channel_energy(model, crops: list[torch.Tensor], betas: tuple[float, ...]) -> torch.Tensor:
    """Mean y² per latent channel over the crops and βs (C,)."""
    total = 0
    for beta in betas:
        for x in crops:
            total = total + (model.analysis(x, torch.tensor([beta])) ** 2).mean(dim=(0, 2, 3))
    return total / (len(betas) * len(crops))


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(prog="python -m flowcodec_cli.training.context_order",
                                description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("weights", type=Path, help="weights (.safetensors) or a training checkpoint")
    p.add_argument("--data", nargs="+", required=True, help="training photo folders (not Kodak)")
    p.add_argument("--slices", default="16,16,32,64,64", help="slice sizes, in decode order")
    p.add_argument("--images", type=int, default=24)
    p.add_argument("--crop", type=int, default=256)
    p.add_argument("--hidden", type=int, default=32, help="width of the context networks")
    p.add_argument("--betas", default="0.0005,0.004,0.03", help="βs the energy is averaged over")
    a = p.parse_args(argv)
    torch.set_num_threads(1)
    model, _ = load_checkpoint_model(a.weights)
    crops = [center_crop(im, a.crop) for im in load_folder_images(a.data, 384, a.crop)[:a.images]]
    energy = channel_energy(model, crops, tuple(float(b) for b in a.betas.split(",")))
    order = torch.argsort(energy, descending=True).tolist()
    print(json.dumps({"context_slices": [int(s) for s in a.slices.split(",")],
                      "context_order": order, "context_hidden": a.hidden}))


if __name__ == "__main__":
    main()
