"""Training: random crops of photo folders, β drawn across the range, resumable checkpoints.

Run as `flowcodec train` or `python -m flowcodec_cli.training.loop`; `flowcodec train export
CHECKPOINT OUT` writes fp16 weights for `weights/`. This module is the loop and its command line;
the pieces it puts together live beside it:

    data.py          photo folders in memory, random crops, the β of each sample
    stereo_pairs.py  real stereo pairs and synthetic pairs, for side-information models
    loss.py          the rate-distortion Lagrangian
    checkpoints.py   save, resume (model, optimizer, step, RNG state), grow, export
    distributed.py   the ranks of a torchrun run: process group, DDP, rank-0 writes, RNG states

A run starts from its checkpoint if `--run-dir` has one (resuming exactly where it stopped), else
from `--init-from` weights (a fresh optimizer), else from a random init. Under `torchrun
--nproc_per_node N` it is one rank of a DistributedDataParallel run (distributed.py): each step then
sees N × --batch crops, and rank 0 alone logs and writes the checkpoint. Side-information models
(`--model flow-side-info`) train on pairs: real stereo pairs from `--stereo` folders and synthetic
pairs made from the `--data` photos. `--stereo` with another model trains it on the coded views
of the same pairs, without side information (the "separate" control).

Never imported by encode or decode.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import math
import random
import sys
import time
from pathlib import Path
from typing import Callable

import torch

from flowcodec_cli import zoo
from flowcodec_cli.models import build_model, MODEL_CLASSES
from flowcodec_cli.models.base import file_name
from flowcodec_cli.training import stereo_pairs as stereo
from flowcodec_cli.training.checkpoints import (export_checkpoint, graft_weights, load_checkpoint,
                                                load_grown, reordered_optimizer_state,
                                                save_checkpoint)
from flowcodec_cli.training.data import load_folder_images, random_batch, sample_betas
from flowcodec_cli.training.distributed import default_threads, Ranks, rng_state
from flowcodec_cli.training.loss import rd_loss
from flowcodec_cli.training.throughput import native_bf16

#: draws the next batch from the run's RNG: (views, side views or None), on the training device
BatchSource = Callable[[random.Random], tuple[torch.Tensor, torch.Tensor | None]]


def learning_rate(step: int, total: int, peak: float, time_spent: float = 0.0) -> float:
    """Short warm-up, then cosine decay to 10% of the peak.

    `time_spent`: the share of a --budget-minutes wall-clock budget used so far; the decay
    follows whichever of steps and time is further along, so a run cut off by its budget (a
    lent GPU, a session's end) still ends at the low learning rate that a finished one does."""
    warmup = 500
    if step < warmup:
        return peak * (step + 1) / warmup
    progress = min(1.0, max((step - warmup) / max(1, total - warmup), time_spent))
    return peak * (0.1 + 0.9 * 0.5 * (1 + math.cos(math.pi * progress)))


def resume(ckpt_path: Path, rng: random.Random, rank: int = 0) -> tuple[torch.nn.Module, dict, int, int]:
    """The model of a checkpoint, with the run's RNGs (this rank's) set back to where it stopped.

    A rank the checkpoint has no RNG states for (it was written by fewer ranks, e.g. by one
    process) keeps the fresh seed the loop gave it (--seed + rank)."""
    model, state = load_checkpoint(ckpt_path)
    saved = rng_state(state, rank)
    if saved is not None:
        rng.setstate(saved["python_rng"])
        torch.set_rng_state(saved["torch_rng"])
    print(f"resumed from {ckpt_path} at step {state['step']}", flush=True)
    return model, state, state["step"], state.get("steps_before", 0)


def init_from_weights(args: argparse.Namespace) -> tuple[torch.nn.Module, int]:
    """A model started from shipped fp16 weights, and the steps behind them.

    Training accumulates across sessions this way even though checkpoints with optimizer state
    are never committed. `--config` may change training-only fields (e.g. the flow's
    synthesis_input), and the model may be bigger than the trained one (see `load_grown`)."""
    weights = Path(args.init_from)
    architecture, config, tensors = zoo.load_state(weights)
    model = build_model(args.model or architecture, {**config, **json.loads(args.config or "{}")})
    missing, unexpected, grown = load_grown(model, tensors)
    if unexpected:
        raise SystemExit(f"--init-from {args.init_from}: {model.name} has no {unexpected}")
    if missing or grown:  # a bigger model built on a trained one (e.g. flow-side-info on flow)
        print(f"new (not in {args.init_from}): {sorted({file_name(k).split('.')[0] for k in missing})}; "
              f"more input channels: {grown}")
    steps_before = zoo.trained_steps(weights)
    print(f"initialized from {args.init_from} ({architecture}, {steps_before} steps)", flush=True)
    return model, steps_before


def build_or_resume(args: argparse.Namespace, ckpt_path: Path, rng: random.Random,
                    rank: int = 0) -> tuple[torch.nn.Module, dict | None, int, int]:
    """(model, checkpoint state or None, step, steps_before): resumed from the run's checkpoint,
    else initialized from --init-from weights, else a fresh --model with --config overrides."""
    if ckpt_path.exists():
        return resume(ckpt_path, rng, rank)
    if args.init_from:
        model, steps_before = init_from_weights(args)
        return model, None, 0, steps_before
    overrides = json.loads(args.config) if args.config else {}
    return build_model(args.model or "hyperprior", overrides), None, 0, 0


def freeze_all_but(model: torch.nn.Module, parts: list[str]) -> None:
    """`--train-only PART ...`: only the parameters under these top-level modules learn.

    Why: a part grown onto a trained model (the side-information stage on the flow) first
    learns with the rest frozen, which skips the frozen transforms' weight gradients: a side-info
    step on the flow costs a third of a full one. On the VQ-VAE, a frozen quantizer also keeps
    its codebooks (which learn by EMA, not by gradients), so the conditional VQ-VAE grown on a
    trained one codes exactly the same indices as it: that one is its separate control."""
    if not parts:
        return
    names = {name.split(".")[0] for name, _ in model.named_parameters()}
    if unknown := sorted(set(parts) - names):
        raise SystemExit(f"--train-only: {model.name} has no {unknown} (it has {sorted(names)})")
    for name, parameter in model.named_parameters():
        parameter.requires_grad_(name.split(".")[0] in parts)
    for name, part in model.named_children():  # what learns without gradients: VQ codebooks
        for module in part.modules():
            if hasattr(module, "learning"):
                module.learning = name in parts


def make_optimizer(model: torch.nn.Module, lr: float, state: dict | None) -> torch.optim.Optimizer:
    """Adam over the model's parameters, with the checkpoint's moments when resuming."""
    optimizer = torch.optim.Adam(model.parameters(), lr=lr)
    if state is not None:
        optimizer.load_state_dict(reordered_optimizer_state(state, model))
    return optimizer


def batch_source(args: argparse.Namespace, model, device: torch.device) -> BatchSource:
    """Load the training photos (and stereo pairs) and return what draws a batch from them:
    pairs for side-information models or when --stereo is given, single crops otherwise."""
    crop_width = args.crop_width or args.crop
    if args.crop % model.stride or crop_width % model.stride:
        raise SystemExit(f"--crop {args.crop} and --crop-width {crop_width} must be multiples "
                         f"of the model stride {model.stride}")
    images = load_folder_images(args.data, args.max_side, args.crop)
    paired = bool(args.stereo) or model.side_info_at_decoder
    pairs = stereo.load_pairs(args.stereo) if args.stereo else []
    print(f"{len(images)} training images, {len(pairs)} stereo pairs, model {model.name} {model.config.to_dict()}, "
          f"{sum(p.numel() for p in model.parameters())} parameters", flush=True)

    def draw(rng: random.Random) -> tuple[torch.Tensor, torch.Tensor | None]:
        if paired:
            x, side = stereo.random_pair_batch(images, pairs, args.batch, args.crop, crop_width,
                                               args.real_pair_fraction, rng)
            return x.to(device), side.to(device)
        return random_batch(images, args.batch, args.crop, rng).to(device), None
    return draw


def train_step(model, optimizer, args: argparse.Namespace, step: int, draw: BatchSource,
               rng: random.Random, net: torch.nn.Module | None = None,
               time_spent: float = 0.0) -> dict:
    """One optimizer step (`step` counts the steps done before it); returns the batch's stats.

    The draws from `rng` come in a fixed order, batch then βs, so a resumed run repeats them.
    `net`: the model's DistributedDataParallel wrapper under torchrun, whose backward averages
    the gradients over the ranks before they are clipped. `time_spent`: see learning_rate."""
    for group in optimizer.param_groups:
        group["lr"] = learning_rate(step, args.steps, args.lr, time_spent)
    x, side = draw(rng)
    beta = sample_betas(args.batch, model.config.beta_min, model.config.beta_max, rng).to(x.device)
    rate_weight = min(1.0, step / args.rate_warmup) if args.rate_warmup else 1.0
    loss, stats = rd_loss(model, x, beta, args.bf16, rate_weight, side, net)
    optimizer.zero_grad(set_to_none=True)
    loss.backward()
    torch.nn.utils.clip_grad_norm_(model.parameters(), args.clip)
    optimizer.step()
    return stats


class TrainingLog:
    """Averages the step stats over every `every` steps and writes them as one JSON line to the
    run's log.jsonl and to stdout, with the step, learning rate and seconds since the start.

    `mean` averages the sums over the ranks of a torchrun run (every rank calls `add`; only rank
    0 has a `file`)."""

    def __init__(self, file, every: int, mean: Callable[[dict], dict] = lambda sums: sums):
        self.file, self.every, self.mean = file, every, mean
        self.start = time.time()
        self.sums: dict[str, float] = {}
        self.count = 0

    def add(self, step: int, stats: dict, lr: float) -> None:
        for key, value in stats.items():
            self.sums[key] = self.sums.get(key, 0.0) + value
        self.count += 1
        if step % self.every:
            return
        record = {k: v / self.count for k, v in self.mean(self.sums).items()}
        record.update(step=step, lr=lr, seconds=round(time.time() - self.start, 1))
        self.sums, self.count = {}, 0
        if self.file is None:
            return
        self.file.write(json.dumps(record) + "\n")
        self.file.flush()
        print(json.dumps(record), flush=True)


def train(args: argparse.Namespace) -> None:
    """Train until --steps (or until --budget-minutes of the run's wall clock are spent),
    checkpointing every --checkpoint-seconds and at the end; under torchrun, as one rank of a
    DistributedDataParallel run (see distributed.py)."""
    with Ranks.join(args.device) as ranks:
        torch.set_num_threads(args.threads)
        run_dir = Path(args.run_dir)
        run_dir.mkdir(parents=True, exist_ok=True)
        ckpt_path = run_dir / "checkpoint.pt"
        rng = random.Random(args.seed + ranks.rank)  # rank 0 draws what one process would
        torch.manual_seed(args.seed + ranks.rank)  # and its init and noise; DDP sends rank 0's weights
        model, state, step, steps_before = build_or_resume(args, ckpt_path, rng, ranks.rank)
        ranks.same_step(step)
        model.to(ranks.device)
        freeze_all_but(model, args.train_only)
        optimizer = make_optimizer(model, args.lr, state)
        model.train()
        net = ranks.wrap(model)
        draw = batch_source(args, model, ranks.device)

        spent_before = state.get("seconds", 0.0) if state else 0.0  # over earlier resumes
        started = time.time()

        def seconds() -> float:
            return spent_before + time.time() - started

        def checkpoint(step: int) -> None:
            rank_rngs = ranks.rng_states(rng)
            if ranks.main:
                save_checkpoint(ckpt_path, model, optimizer, step, vars(args), rng, steps_before,
                                rank_rngs, seconds())
            ranks.barrier()

        log_path = run_dir / "log.jsonl"
        with open(log_path, "a") if ranks.main else contextlib.nullcontext() as log_file:
            log = TrainingLog(log_file, args.log_every, ranks.mean)
            last_checkpoint = time.time()
            budget = args.budget_minutes * 60
            while step < args.steps:
                time_spent = ranks.share(seconds() / budget) if budget else 0.0
                stats = train_step(model, optimizer, args, step, draw, rng, net, time_spent)
                step += 1
                log.add(step, stats, optimizer.param_groups[0]["lr"])
                due = ranks.agree(time.time() - last_checkpoint > args.checkpoint_seconds)
                if time_spent >= 1.0:
                    print(f"--budget-minutes {args.budget_minutes:g} spent at step {step}", flush=True)
                    break
                if due or step == args.steps:
                    checkpoint(step)
                    last_checkpoint = time.time()
        checkpoint(step)


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="flowcodec-train", description=__doc__.splitlines()[0])
    p.add_argument("--model", default=None, choices=sorted(MODEL_CLASSES),
                   help="architecture (default: that of --init-from, else hyperprior)")
    p.add_argument("--config", default="", help="JSON overrides of the model config")
    p.add_argument("--init-from", default="",
                   help="start from these weights (.safetensors, e.g. weights/flow.safetensors) "
                        "instead of a random init; ignored when --run-dir has a checkpoint")
    p.add_argument("--train-only", nargs="*", default=[], metavar="PART",
                   help="train only these top-level parts (e.g. latent_pull fusion); the "
                        "rest stays frozen")
    p.add_argument("--data", nargs="+", required=True, help="image folders (searched recursively)")
    p.add_argument("--run-dir", required=True, help="checkpoint and log folder; resumes if it has one")
    p.add_argument("--steps", type=int, default=40000)
    p.add_argument("--budget-minutes", type=float, default=0.0,
                   help="also stop after this many minutes of training (counted over resumes), "
                        "with the learning rate decayed over them (0: no budget)")
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
    p.add_argument("--bf16", action=argparse.BooleanOptionalAction, default=None,
                   help="bfloat16 autocast for the transforms (default: on for cuda and on CPUs "
                        "with AVX512-BF16/AMX, where it is ~2x faster; off on other CPUs, which "
                        "emulate it many times slower than float32)")
    p.add_argument("--threads", type=int, default=None,
                   help="torch threads (default: the cores; under torchrun, the cores // the "
                        "processes on this machine)")
    p.add_argument("--device", default="cpu",
                   help="cpu or cuda: where training runs (checkpoints and exports are the same)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--log-every", type=int, default=100)
    p.add_argument("--checkpoint-seconds", type=float, default=240.0)
    args = p.parse_args(argv)
    if args.bf16 is None:  # resolved here, so the checkpoint records what ran
        args.bf16 = args.device != "cpu" or native_bf16()
    if args.threads is None:
        args.threads = default_threads()
    return args


def main(argv: list[str] | None = None) -> None:
    """`flowcodec train ARGS` (see parse_args), `flowcodec train export CHECKPOINT OUT`, or
    `flowcodec train graft GROWN BASE OUT --parts PART ...` (checkpoints.graft_weights)."""
    argv = sys.argv[1:] if argv is None else argv
    if argv[:1] == ["graft"]:
        p = argparse.ArgumentParser(prog="flowcodec-train graft",
                                    description=graft_weights.__doc__.splitlines()[0])
        p.add_argument("grown")
        p.add_argument("base")
        p.add_argument("out")
        p.add_argument("--parts", nargs="+", required=True)
        a = p.parse_args(argv[1:])
        print(json.dumps({"out": a.out, "sha256": graft_weights(a.grown, a.base, a.out, a.parts)}))
        return
    if argv[:1] == ["export"]:
        p = argparse.ArgumentParser(prog="flowcodec-train export")
        p.add_argument("checkpoint")
        p.add_argument("out")
        p.add_argument("--record", help="also write the run record (args, steps) here, as JSON: "
                                        "with the run's log.jsonl, what a model card needs")
        a = p.parse_args(argv[1:])
        export_checkpoint(a.checkpoint, a.out, a.record)
        return
    train(parse_args(argv))


if __name__ == "__main__":
    main()
