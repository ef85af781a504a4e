"""Training throughput: steps per second of one configuration, measured on random crops.

    python -m flowcodec_cli.training.throughput --model flow --batch 8 --crop 128 --threads 2 \
        --steps 20 [--weights weights/flow.safetensors] [--bf16] [--channels-last] [--compile]
        [--profile 15] [--out result.json]

Why: rate-distortion here is bound by training compute, so a faster step is a better codec. The
same step as `flowcodec train` (forward, loss, backward, clipping, Adam) runs on random images
after `--warmup` steps that are not timed; the median step time is reported with the CPU's
name and whether it computes bfloat16 natively (without AVX512-BF16 or AMX, bf16 autocast is
emulated and can be many times slower than float32). Only the machine's idle time is meaningful:
run it while nothing else trains. `--profile N` prints the N operators that take the most time
in one more step (torch.profiler), which says where a step goes before anything is changed.
"""

from __future__ import annotations

import argparse
import json
import math
import statistics
import time
from pathlib import Path

import torch

from flowcodec_cli.models import build_model
from flowcodec_cli.training.loss import rd_loss

NATIVE_BF16_FLAGS = ("avx512_bf16", "amx_bf16")


def native_bf16() -> bool:
    """Whether this CPU has bfloat16 arithmetic in hardware (Linux: /proc/cpuinfo flags)."""
    try:
        flags = Path("/proc/cpuinfo").read_text().split()
    except OSError:
        return False
    return any(flag in flags for flag in NATIVE_BF16_FLAGS)


def step_seconds(model, batch: int, crop: int, steps: int, warmup: int, bf16: bool,
                 channels_last: bool) -> list[float]:
    """Wall seconds of each timed training step on random crops and random β."""
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-5)
    generator = torch.Generator().manual_seed(0)
    times = []
    for i in range(warmup + steps):
        x = torch.rand(batch, 3, crop, crop, generator=generator)
        if channels_last:
            x = x.contiguous(memory_format=torch.channels_last)
        beta = torch.exp(torch.empty(batch).uniform_(*_log_range(model), generator=generator))
        start = time.perf_counter()
        loss, _ = rd_loss(model, x, beta, bf16)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        optimizer.step()
        if i >= warmup:
            times.append(time.perf_counter() - start)
    return times


def profile_table(model, batch: int, crop: int, bf16: bool, rows: int) -> str:
    """torch.profiler's operator table (self CPU time) of one training step."""
    from torch.profiler import ProfilerActivity, profile
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-5)
    generator = torch.Generator().manual_seed(1)
    x = torch.rand(batch, 3, crop, crop, generator=generator)
    beta = torch.exp(torch.empty(batch).uniform_(*_log_range(model), generator=generator))
    with profile(activities=[ProfilerActivity.CPU]) as prof:
        loss, _ = rd_loss(model, x, beta, bf16)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
    return prof.key_averages().table(sort_by="self_cpu_time_total", row_limit=rows)


def _log_range(model) -> tuple[float, float]:
    return math.log(model.config.beta_min), math.log(model.config.beta_max)


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(prog="python -m flowcodec_cli.training.throughput",
                                description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--model", default="flow")
    p.add_argument("--config", default="{}", help="JSON overrides of the model config")
    p.add_argument("--weights", type=Path, default=None,
                   help="take the architecture config from a weights file (what training runs)")
    p.add_argument("--batch", type=int, default=8)
    p.add_argument("--crop", type=int, default=128)
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--steps", type=int, default=20)
    p.add_argument("--warmup", type=int, default=3)
    p.add_argument("--bf16", action="store_true", help="bfloat16 autocast, as `flowcodec train --bf16`")
    p.add_argument("--channels-last", action="store_true", help="channels_last model and inputs")
    p.add_argument("--compile", action="store_true", help="torch.compile the model (inductor)")
    p.add_argument("--profile", type=int, default=0, metavar="N",
                   help="print the N most expensive operators of one step")
    p.add_argument("--out", type=Path, help="append the result as one JSON line")
    a = p.parse_args(argv)
    torch.set_num_threads(a.threads)
    config = json.loads(a.config)
    if a.weights:
        from flowcodec_cli.zoo import read_metadata
        config = {**json.loads(read_metadata(a.weights)["config"]), **config}
    model = build_model(a.model, config).train()
    if a.channels_last:
        model = model.to(memory_format=torch.channels_last)
    if a.compile:
        model = torch.compile(model)
    if a.profile:
        print(profile_table(model, a.batch, a.crop, a.bf16, a.profile))
    times = step_seconds(model, a.batch, a.crop, a.steps, a.warmup, a.bf16, a.channels_last)
    median = statistics.median(times)
    from flowcodec_cli.evaluation.bench.environment import cpu_model
    result = {"model": a.model, "batch": a.batch, "crop": a.crop, "threads": a.threads,
              "bf16": a.bf16, "channels_last": a.channels_last, "compile": a.compile,
              "steps_timed": a.steps,
              "median_step_seconds": round(median, 4), "steps_per_second": round(1 / median, 3),
              "cpu": cpu_model(), "native_bf16": native_bf16(), "torch": torch.__version__}
    print(json.dumps(result))
    if a.out:
        with open(a.out, "a") as f:
            f.write(json.dumps(result) + "\n")


if __name__ == "__main__":
    main()
