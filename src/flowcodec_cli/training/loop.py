"""Training: random crops of photo folders, β drawn across the range, resumable checkpoints.

Run as `flowcodec train` or `python -m flowcodec_cli.train`. Each sample of a batch gets its own
β, drawn log-uniformly from [beta_min, beta_max], so one set of weights learns the whole rate
range. The loss is the information-bottleneck Lagrangian of the brief,

    L = D + β·R,   D = MSE on pixels in [0, 1],   R = bits per dimension (bpp / 3),

divided per sample by sqrt(β / β_mid) so that the high- and low-rate ends get gradients of
comparable size (a per-β positive weight does not move any β's optimum).

Side-information models (`--model side-info`) train on pairs (`stereo.py`): real stereo pairs
from `--stereo` folders and synthetic pairs made from the `--data` photos; the loss is the same
Lagrangian with the reconstruction computed from ŷ and the side view (the distributed objective
when only the decoder sees the side view). `--stereo` with another model trains it on the coded
views of the same pairs, without side information (the "separate" control).

Never imported by encode or decode. Checkpoints hold model, optimizer, step and RNG state so a
killed run resumes exactly where it stopped; `export` writes fp16 weights for `weights/`.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import random
import sys
import time
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from flowcodec_cli.training import stereo_pairs as stereo
from flowcodec_cli.models import build_model, MODEL_CLASSES

IMAGE_SUFFIXES = {".png", ".jpg", ".jpeg", ".ppm", ".tif", ".tiff", ".webp", ".bmp"}


def load_folder_images(folders: list[str], max_side: int, crop: int) -> list[torch.Tensor]:
    """Load every photo of the folders into memory as uint8 (3, H, W) tensors.

    Photos whose short side exceeds `max_side` are downscaled (Lanczos): this removes most JPEG
    artefacts of web photos, which a codec should not learn to reproduce.
    """
    images = []
    for folder in folders:
        for path in sorted(Path(folder).rglob("*")):
            if path.suffix.lower() not in IMAGE_SUFFIXES:
                continue
            with Image.open(path) as im:
                im = im.convert("RGB")
                short = min(im.size)
                if short > max_side:
                    scale = max_side / short
                    im = im.resize((round(im.width * scale), round(im.height * scale)), Image.LANCZOS)
                if min(im.size) < crop:
                    continue
                images.append(torch.from_numpy(np.asarray(im).copy()).permute(2, 0, 1).contiguous())
    return images


def random_batch(images: list[torch.Tensor], batch: int, crop: int, rng: random.Random) -> torch.Tensor:
    """A batch of random crops with random horizontal flips, float32 in [0, 1]."""
    out = torch.empty(batch, 3, crop, crop)
    for i in range(batch):
        img = images[rng.randrange(len(images))]
        top = rng.randrange(img.shape[1] - crop + 1)
        left = rng.randrange(img.shape[2] - crop + 1)
        patch = img[:, top:top + crop, left:left + crop]
        if rng.random() < 0.5:
            patch = patch.flip(2)
        out[i] = patch.float() / 255.0
    return out


def sample_betas(batch: int, beta_min: float, beta_max: float, rng: random.Random) -> torch.Tensor:
    lo, hi = math.log(beta_min), math.log(beta_max)
    return torch.tensor([math.exp(rng.uniform(lo, hi)) for _ in range(batch)], dtype=torch.float32)


def rd_loss(model, x: torch.Tensor, beta: torch.Tensor, bf16: bool,
            rate_weight: float = 1.0, side: torch.Tensor | None = None) -> tuple[torch.Tensor, dict]:
    """The weighted Lagrangian for a batch, plus per-batch bpp and PSNR for the log.

    `rate_weight` < 1 scales β down during a rate warm-up (the β-schedule ablation).
    `side`: the side views, for models that use side information."""
    with torch.autocast(x.device.type, dtype=torch.bfloat16, enabled=bf16):
        out = model(x, beta, side)  # models without side information ignore it
    x_hat = out["x_hat"].float()
    pixels = x.shape[2] * x.shape[3]
    mse = ((x_hat - x) ** 2).mean(dim=(1, 2, 3))  # (B,)
    bits = out["y_bits_per_image"] + out["z_bits_per_image"]  # (B,)
    rate = bits / (3 * pixels)
    beta_mid = math.sqrt(model.config.beta_min * model.config.beta_max)
    weight = (beta / beta_mid).rsqrt()
    loss = ((mse + rate_weight * beta * rate) * weight).mean()
    stats = {
        "loss": loss.item(),
        "bpp": (bits / pixels).mean().item(),
        "psnr": (-10 * torch.log10(mse.detach().clamp(min=1e-10))).mean().item(),
    }
    return loss, stats


def load_grown(model, tensors: dict[str, torch.Tensor]) -> tuple[list[str], list[str], list[str]]:
    """Load trained tensors into a model that may be bigger: new modules keep their init, and a
    weight whose input channels grew (dim 1, e.g. a fusion layer given more inputs) gets the
    trained values for the old channels and zeros for the new ones, so the model computes
    exactly what the trained one did until training moves the new weights.

    Returns (missing keys, unexpected keys, grown keys); any other shape change is an error."""
    own = model.state_dict()
    grown = []
    for key, value in tensors.items():
        if key in own and own[key].shape != value.shape:
            new = own[key]
            if (new.dim() < 2 or new.shape[0] != value.shape[0] or new.shape[2:] != value.shape[2:]
                    or new.shape[1] < value.shape[1]):
                raise SystemExit(f"{key}: trained shape {tuple(value.shape)} does not fit {tuple(new.shape)}")
            widened = torch.zeros_like(new)
            widened[:, :value.shape[1]] = value
            tensors = {**tensors, key: widened}
            grown.append(key)
    missing, unexpected = model.load_state_dict(tensors, strict=False)
    return list(missing), list(unexpected), grown


def save_checkpoint(path: Path, model, optimizer, step: int, args: dict, rng: random.Random,
                    steps_before: int = 0) -> None:
    """Everything a resumed run needs; `steps_before`: steps of the weights it started from."""
    tmp = path.with_suffix(".tmp")
    torch.save({
        "model": model.state_dict(),
        "optimizer": optimizer.state_dict(),
        "step": step,
        "steps_before": steps_before,
        "model_name": model.name,
        "config": model.config.to_dict(),
        "args": args,
        "python_rng": rng.getstate(),
        "torch_rng": torch.get_rng_state(),
    }, tmp)
    os.replace(tmp, path)


def load_checkpoint(path: Path) -> tuple[torch.nn.Module, dict]:
    """The model of a training checkpoint (rebuilt from the config stored in it) and the state."""
    state = torch.load(path, map_location="cpu", weights_only=False)
    model = build_model(state["model_name"], state["config"])
    model.load_state_dict(state["model"])
    return model, state


def _reordered_optimizer_state(state: dict, model) -> dict:
    """The checkpoint's optimizer state, matched to the model's parameters by name.

    torch matches optimizer state to parameters by position; a refactor that registers the same
    modules in another order would silently pair Adam moments with the wrong tensors. The saved
    model state dict lists parameter names in the order they had when the optimizer was made.
    """
    current = [name for name, _ in model.named_parameters()]
    names = set(current)
    saved = [key for key in state["model"] if key in names]
    if saved == current:
        return state["optimizer"]
    position = {name: i for i, name in enumerate(current)}
    saved_opt = state["optimizer"]
    moved = {position[saved[i]]: value for i, value in saved_opt["state"].items()}
    (group,) = saved_opt["param_groups"]
    return {"state": moved, "param_groups": [{**group, "params": list(range(len(current)))}]}


def learning_rate(step: int, total: int, peak: float) -> float:
    """Short warm-up, then cosine decay to 10% of the peak."""
    warmup = 500
    if step < warmup:
        return peak * (step + 1) / warmup
    progress = min(1.0, (step - warmup) / max(1, total - warmup))
    return peak * (0.1 + 0.9 * 0.5 * (1 + math.cos(math.pi * progress)))


def train(args: argparse.Namespace) -> None:
    torch.set_num_threads(args.threads)
    run_dir = Path(args.run_dir)
    run_dir.mkdir(parents=True, exist_ok=True)
    ckpt_path = run_dir / "checkpoint.pt"
    rng = random.Random(args.seed)
    torch.manual_seed(args.seed)

    if ckpt_path.exists():
        model, state = load_checkpoint(ckpt_path)
        step = state["step"]
        steps_before = state.get("steps_before", 0)
        rng.setstate(state["python_rng"])
        torch.set_rng_state(state["torch_rng"])
        print(f"resumed from {ckpt_path} at step {step}", flush=True)
    elif args.init_from:
        # Continue from shipped fp16 weights (a fresh optimizer): training accumulates across
        # sessions even though checkpoints with optimizer state are never committed.
        from flowcodec_cli import zoo
        architecture, config, tensors = zoo.load_state(Path(args.init_from))
        # --config may change training-only fields (e.g. the flow's synthesis_input)
        model = build_model(args.model or architecture, {**config, **json.loads(args.config or "{}")})
        missing, unexpected, grown = load_grown(model, tensors)
        if unexpected:
            raise SystemExit(f"--init-from {args.init_from}: {model.name} has no {unexpected}")
        if missing or grown:  # a bigger model built on a trained one (e.g. side-info on hyperprior)
            print(f"new (not in {args.init_from}): {sorted({k.split('.')[0] for k in missing})}; "
                  f"more input channels: {grown}")
        state, step = None, 0
        steps_before = zoo.trained_steps(Path(args.init_from))
        print(f"initialized from {args.init_from} ({architecture}, {steps_before} steps)", flush=True)
    else:
        overrides = json.loads(args.config) if args.config else {}
        model = build_model(args.model or "hyperprior", overrides)
        state, step, steps_before = None, 0, 0
    device = torch.device(args.device)
    model.to(device)
    optimizer = torch.optim.Adam(model.parameters(), lr=args.lr)
    if state is not None:
        optimizer.load_state_dict(_reordered_optimizer_state(state, model))
    model.train()

    crop_width = args.crop_width or args.crop
    if args.crop % model.stride or crop_width % model.stride:
        raise SystemExit(f"--crop {args.crop} and --crop-width {crop_width} must be multiples "
                         f"of the model stride {model.stride}")
    images = load_folder_images(args.data, args.max_side, args.crop)
    paired = bool(args.stereo) or model.side_info_at_decoder
    pairs = stereo.load_pairs(args.stereo) if args.stereo else []
    print(f"{len(images)} training images, {len(pairs)} stereo pairs, model {model.name} {model.config.to_dict()}, "
          f"{sum(p.numel() for p in model.parameters())} parameters", flush=True)

    log = open(run_dir / "log.jsonl", "a")
    t_last_ckpt = time.time()
    t_start = time.time()
    running: dict = {}
    while step < args.steps:
        for group in optimizer.param_groups:
            group["lr"] = learning_rate(step, args.steps, args.lr)
        if paired:
            x, side = (t.to(device) for t in stereo.random_pair_batch(
                images, pairs, args.batch, args.crop, crop_width, args.real_pair_fraction, rng))
        else:
            x, side = random_batch(images, args.batch, args.crop, rng).to(device), None
        beta = sample_betas(args.batch, model.config.beta_min, model.config.beta_max, rng).to(device)
        rate_weight = min(1.0, step / args.rate_warmup) if args.rate_warmup else 1.0
        loss, stats = rd_loss(model, x, beta, args.bf16, rate_weight, side)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), args.clip)
        optimizer.step()
        step += 1
        for key, value in stats.items():
            running[key] = running.get(key, 0.0) + value
        running["n"] = running.get("n", 0) + 1
        if step % args.log_every == 0:
            count = running.pop("n")
            record = {k: v / count for k, v in running.items()}
            record.update(step=step, lr=optimizer.param_groups[0]["lr"],
                          seconds=round(time.time() - t_start, 1))
            log.write(json.dumps(record) + "\n")
            log.flush()
            print(json.dumps(record), flush=True)
            running = {}
        if time.time() - t_last_ckpt > args.checkpoint_seconds or step == args.steps:
            save_checkpoint(ckpt_path, model, optimizer, step, vars(args), rng, steps_before)
            t_last_ckpt = time.time()
    save_checkpoint(ckpt_path, model, optimizer, step, vars(args), rng, steps_before)


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="flowcodec-train", description=__doc__.splitlines()[0])
    p.add_argument("--model", default=None, choices=sorted(MODEL_CLASSES),
                   help="architecture (default: that of --init-from, else hyperprior)")
    p.add_argument("--config", default="", help="JSON overrides of the model config")
    p.add_argument("--init-from", default="",
                   help="start from these weights (.safetensors, e.g. weights/flow.safetensors) "
                        "instead of a random init; ignored when --run-dir has a checkpoint")
    p.add_argument("--data", nargs="+", required=True, help="image folders (searched recursively)")
    p.add_argument("--run-dir", required=True, help="checkpoint and log folder; resumes if it has one")
    p.add_argument("--steps", type=int, default=40000)
    p.add_argument("--batch", type=int, default=8)
    p.add_argument("--crop", type=int, default=128, help="crop height (and width)")
    p.add_argument("--crop-width", type=int, default=0, help="crop width if not --crop")
    p.add_argument("--stereo", nargs="*", default=[],
                   help="stereo pair folders (left/NAME, right/NAME): train on pairs")
    p.add_argument("--real-pair-fraction", type=float, default=0.25,
                   help="share of real --stereo pairs in a pair batch (the rest are synthetic)")
    p.add_argument("--max-side", type=int, default=384)
    p.add_argument("--lr", type=float, default=3e-4)
    p.add_argument("--clip", type=float, default=1.0)
    p.add_argument("--rate-warmup", type=int, default=0,
                   help="β schedule: ramp the rate term from 0 to β over this many steps (0: off)")
    p.add_argument("--bf16", action=argparse.BooleanOptionalAction, default=True,
                   help="bfloat16 autocast for the transforms (2x faster on AMX/AVX512-BF16 CPUs)")
    p.add_argument("--threads", type=int, default=os.cpu_count() or 1)
    p.add_argument("--device", default="cpu",
                   help="cpu or cuda: where training runs (checkpoints and exports are the same)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--log-every", type=int, default=100)
    p.add_argument("--checkpoint-seconds", type=float, default=240.0)
    return p.parse_args(argv)


def export_checkpoint(checkpoint: str, out: str) -> str:
    """Strip a training checkpoint to fp16 weights + config (safetensors); returns the sha256."""
    from flowcodec_cli import zoo
    model, state = load_checkpoint(Path(checkpoint))
    total = state.get("steps_before", 0) + state["step"]
    sha = zoo.export(model, Path(out), trained_steps=total)
    print(json.dumps({"checkpoint": checkpoint, "step": state["step"], "trained_steps": total,
                      "out": out, "sha256": sha}))
    return sha


def main(argv: list[str] | None = None) -> None:
    argv = sys.argv[1:] if argv is None else argv
    if argv[:1] == ["export"]:
        p = argparse.ArgumentParser(prog="flowcodec-train export")
        p.add_argument("checkpoint")
        p.add_argument("out")
        a = p.parse_args(argv[1:])
        export_checkpoint(a.checkpoint, a.out)
        return
    train(parse_args(argv))


if __name__ == "__main__":
    main()
