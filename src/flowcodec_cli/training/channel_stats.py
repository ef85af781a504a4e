"""The latent statistics of a flow that JSCC (`--model flow-channel`, models/channel.py) starts
from: each latent channel's mean and standard deviation on training photos, and the channels
by variance, highest first (the order in which a bandwidth ratio sends them).

    python -m flowcodec_cli.training.channel_stats weights/flow.safetensors \
        --data ../shared/data/bsds500/train --out src/flowcodec_cli/data/channel_stats.json

Why variance: a channel that is not sent is replaced by its mean, which costs its variance in
squared error (exactly, while the flow is orthonormal; about, after training), so the channels
with the most variance are sent first. They are the coarse subbands. Measured with the flow at
`--flow-beta` (ChannelConfig.flow_beta) on the central crops of the photos (never Kodak). The
output is what `ChannelConfig` reads by default; for other flow weights pass the three lists
in `--config`.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import torch

from flowcodec_cli import zoo
from flowcodec_cli.files.atomic import atomic_path
from flowcodec_cli.models.channel import ChannelConfig
from flowcodec_cli.training.checkpoints import load_checkpoint_model
from flowcodec_cli.training.data import load_folder_images
from flowcodec_cli.training.evaluate import center_crop


@torch.no_grad()
def latent_stats(model, crops: list[torch.Tensor], flow_beta: float) -> dict:
    """Mean, standard deviation and the variance order of f(x) per channel over the crops."""
    beta = torch.tensor([flow_beta])
    h = torch.cat([model.flow(x, beta) for x in crops]).double()   # (N, C, h, w)
    mean, std = h.mean(dim=(0, 2, 3)), h.std(dim=(0, 2, 3))
    order = torch.argsort(std, descending=True)
    share = (std[order].square().cumsum(0) / std.square().sum()).tolist()
    return {"channel_order": order.tolist(),
            "latent_mean": [round(v, 6) for v in mean.tolist()],
            "latent_std": [round(v, 6) for v in std.tolist()],
            "variance_share_of_first": {str(m): round(share[m - 1], 4)
                                        for m in (8, 16, 32, 48, 64, 96) if m <= len(share)}}


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(prog="python -m flowcodec_cli.training.channel_stats",
                                description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("weights", type=Path, help="flow weights (.safetensors) or a checkpoint")
    p.add_argument("--data", nargs="+", required=True, help="training photo folders (not Kodak)")
    p.add_argument("--images", type=int, default=64)
    p.add_argument("--crop", type=int, default=256)
    p.add_argument("--flow-beta", type=float, default=ChannelConfig.flow_beta)
    p.add_argument("--out", type=Path, default=None, help="write the JSON here (else stdout)")
    a = p.parse_args(argv)
    torch.set_num_threads(1)
    model, state = load_checkpoint_model(a.weights)
    crops = [center_crop(im, a.crop)
             for im in load_folder_images(a.data, 384, a.crop)[:a.images]]
    stats = {"weights": str(a.weights), "weights_sha256": zoo.sha256_file(a.weights),
             "trained_steps": state.get("step"),
             "data": [str(d) for d in a.data], "images": len(crops), "crop": a.crop,
             "flow_beta": a.flow_beta, **latent_stats(model, crops, a.flow_beta)}
    text = json.dumps(stats, indent=1) + "\n"
    if a.out is None:
        print(text, end="")
        return
    with atomic_path(a.out) as tmp:
        tmp.write_text(text)
    print(json.dumps({"out": str(a.out),
                      "variance_share_of_first": stats["variance_share_of_first"]}))


if __name__ == "__main__":
    main()
