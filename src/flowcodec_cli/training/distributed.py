"""Training on several processes: `torchrun --nproc_per_node N -m flowcodec_cli.training.loop ...`
(or `torchrun ... $(which flowcodec) train ...`) runs N ranks of one DistributedDataParallel run.

torchrun sets RANK, WORLD_SIZE and LOCAL_RANK; without them (or with WORLD_SIZE 1) a `Ranks` is the
single process of today and every method here is a no-op, so one-process training computes and
writes exactly what it did before this module existed. With them, `Ranks.join` opens the process
group (gloo on the CPU, nccl on CUDA, one GPU per local rank) and closes it at exit, and:

- every rank draws its own crops and quantization noise (the loop seeds rank r with seed + r, so
  rank 0 draws what a single process would), and DDP averages the gradients, so a step sees
  N × --batch crops and every rank holds the same weights after it;
- only rank 0 prints, writes log.jsonl and writes the checkpoint; the checkpoint is the unwrapped
  model's, as one process writes it, plus every rank's RNG states (`rank_rngs`), gathered at each
  checkpoint so that a resumed run draws what the uninterrupted one would have;
- rank 0's clock decides when to checkpoint, the ranks wait for the checkpoint to be on disk, and
  a resumed run checks that all ranks start from the same step (one --run-dir they all see).
"""

from __future__ import annotations

import os
import sys
from contextlib import contextmanager
from typing import Iterator

import torch
import torch.distributed as dist
from torch.nn.parallel import DistributedDataParallel


def world_size() -> int:
    """The number of ranks torchrun started (1 outside torchrun)."""
    return int(os.environ.get("WORLD_SIZE", "1"))


def default_threads() -> int:
    """torch threads per rank: the cores shared among the ranks of this machine."""
    local_ranks = int(os.environ.get("LOCAL_WORLD_SIZE", world_size()))
    return max(1, (os.cpu_count() or 1) // local_ranks)


class Ranks:
    """This process's place in the run: rank, world size, the device it trains on, and the few
    collective steps the loop needs (each one a no-op for a single process)."""

    def __init__(self, device: str, rank: int = 0, world: int = 1, local_rank: int = 0):
        self.rank, self.world, self.local_rank = rank, world, local_rank
        self.device = torch.device(device)
        if world > 1 and self.device.type == "cuda":
            self.device = torch.device("cuda", local_rank)

    @property
    def main(self) -> bool:
        """Rank 0: the one that prints, logs and writes checkpoints."""
        return self.rank == 0

    @classmethod
    @contextmanager
    def join(cls, device: str) -> Iterator["Ranks"]:
        """The ranks of this run, read from torchrun's environment, with the process group open
        (and the other ranks' stdout silenced) until the block exits."""
        world = world_size()
        if world == 1:
            yield cls(device)
            return
        ranks = cls(device, int(os.environ["RANK"]), world, int(os.environ["LOCAL_RANK"]))
        if ranks.device.type == "cuda":
            torch.cuda.set_device(ranks.device)
        dist.init_process_group("nccl" if ranks.device.type == "cuda" else "gloo")
        stdout = sys.stdout
        if not ranks.main:
            sys.stdout = open(os.devnull, "w")
        try:
            yield ranks
            # Both ranks past their last collective before either tears gloo down: a rank that
            # destroyed the group while the other's gloo threads were still sending aborted now
            # and then with "terminate called without an active exception" (tests/test_train_ddp).
            dist.barrier()
        finally:
            if sys.stdout is not stdout:
                sys.stdout.close()
                sys.stdout = stdout
            dist.destroy_process_group()

    def wrap(self, model: torch.nn.Module) -> torch.nn.Module:
        """What runs the forward and backward: DDP around the model, whose backward averages the
        gradients over the ranks (and whose construction gives every rank rank 0's weights and
        buffers). The models' buffers are constants, so they are not re-sent at every forward."""
        if self.world == 1:
            return model
        device_ids = [self.device.index] if self.device.type == "cuda" else None
        return DistributedDataParallel(model, device_ids=device_ids, forward_sync_buffers=False)

    def agree(self, flag: bool) -> bool:
        """Rank 0's `flag` on every rank (e.g. whether its clock says it is time to checkpoint)."""
        if self.world == 1:
            return flag
        value = torch.tensor([int(flag)], device=self.device)
        dist.broadcast(value, src=0)
        return bool(value.item())

    def share(self, value: float) -> float:
        """Rank 0's `value` on every rank (e.g. the share of a time budget spent, which sets the
        learning rate and so must be the same everywhere)."""
        if self.world == 1:
            return value
        shared = torch.tensor([value], dtype=torch.float64, device=self.device)
        dist.broadcast(shared, src=0)
        return float(shared.item())

    def mean(self, sums: dict[str, float]) -> dict[str, float]:
        """Per-rank sums of the logged stats averaged over the ranks (equal batches, so this is
        the mean over the global batch)."""
        if self.world == 1:
            return sums
        values = torch.tensor(list(sums.values()), dtype=torch.float64, device=self.device)
        dist.all_reduce(values)
        return {key: value / self.world for key, value in zip(sums, values.tolist())}

    def same_step(self, step: int) -> None:
        """Stop unless every rank starts at the same step: a rank that did not find rank 0's
        checkpoint (a --run-dir not shared between machines) would train another model."""
        if self.world == 1:
            return
        steps = [None] * self.world
        dist.all_gather_object(steps, step)
        if len(set(steps)) > 1:
            raise SystemExit(f"the ranks start at steps {steps}: --run-dir must be one folder "
                             f"that every rank reads (rank 0 alone writes the checkpoint)")

    def rng_states(self, rng) -> list[dict] | None:
        """Every rank's RNG states (python and torch), gathered for rank 0's checkpoint."""
        if self.world == 1:
            return None
        states = [None] * self.world
        dist.all_gather_object(states, {"python_rng": rng.getstate(),
                                        "torch_rng": torch.get_rng_state()})
        return states

    def barrier(self) -> None:
        """Wait for every rank (e.g. until rank 0's checkpoint is on disk)."""
        if self.world > 1:
            dist.barrier()


def rng_state(state: dict, rank: int) -> dict | None:
    """This rank's RNG states in a checkpoint: rank 0's are the checkpoint's own `python_rng` and
    `torch_rng` (so a one-process checkpoint resumes as rank 0 and the other way round), the other
    ranks' are in `rank_rngs`; None when the run that wrote it had no such rank."""
    if rank == 0:
        return {"python_rng": state["python_rng"], "torch_rng": state["torch_rng"]}
    saved = state.get("rank_rngs") or []
    return saved[rank] if rank < len(saved) else None
