"""Distributed training: `flowcodec train` under torchrun with 2 CPU processes (gloo).

Each run starts tests/ddp_worker.py, which trains a tiny flow and records, per rank and step, a
digest of the crops drawn and of the parameters after the step, and every checkpoint write.
"""

import json
import os
import random
import subprocess
import sys
from pathlib import Path

import pytest
import torch
import torch.distributed as dist

from flowcodec_cli.models import build_model
from flowcodec_cli.training import loop
from flowcodec_cli.training.data import load_folder_images, random_batch
from ddp_worker import digest

pytestmark = pytest.mark.skipif(not (dist.is_available() and dist.is_gloo_available()),
                                reason="torch.distributed with gloo is not available")

HERE = Path(__file__).parent
TINY = json.dumps({"levels": 2, "steps": 1, "hidden": 8, "hyper_width": 16, "hyper_channels": 8})
SEED = 7


def torchrun(out: Path, run_dir: Path, steps: int) -> list[list[dict]]:
    """Train `steps` steps of a tiny flow on 2 ranks; returns each rank's records of this run."""
    out.mkdir(exist_ok=True)
    for rank_file in out.glob("rank*.jsonl"):
        rank_file.unlink()
    command = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2",
               str(HERE / "ddp_worker.py"), str(out),
               "--model", "flow", "--config", TINY, "--data", str(HERE / "data"),
               "--run-dir", str(run_dir), "--steps", str(steps), "--batch", "2", "--crop", "32",
               "--threads", "1", "--log-every", "1", "--no-bf16", "--seed", str(SEED)]
    env = {**os.environ, "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}
    done = subprocess.run(command, env=env, capture_output=True, text=True, timeout=180)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    return [[json.loads(line) for line in (out / f"rank{r}.jsonl").read_text().splitlines()]
            for r in range(2)]


def steps_of(records: list[dict]) -> dict[int, dict]:
    return {r["step"]: r for r in records if "step" in r}


def checkpoint(run_dir: Path) -> dict:
    return torch.load(run_dir / "checkpoint.pt", weights_only=False)


def assert_equal(a, b, where="checkpoint"):
    """Bitwise equality of nested checkpoint contents."""
    if isinstance(a, torch.Tensor):
        assert torch.equal(a, b), where
    elif isinstance(a, dict):
        assert a.keys() == b.keys(), where
        for key in a:
            assert_equal(a[key], b[key], f"{where}.{key}")
    elif isinstance(a, (list, tuple)):
        assert len(a) == len(b), where
        for i, (x, y) in enumerate(zip(a, b)):
            assert_equal(x, y, f"{where}[{i}]")
    else:
        assert a == b, where


@pytest.fixture(scope="module")
def uninterrupted(tmp_path_factory):
    """A 4-step run on 2 ranks: (records per rank, run dir)."""
    tmp = tmp_path_factory.mktemp("ddp")
    return torchrun(tmp / "out", tmp / "run", 4), tmp / "run"


def test_ranks_hold_the_same_weights_after_every_step_and_draw_their_own_crops(uninterrupted):
    (rank0, rank1), run_dir = uninterrupted
    steps0, steps1 = steps_of(rank0), steps_of(rank1)
    assert sorted(steps0) == sorted(steps1) == [1, 2, 3, 4]
    assert [steps0[s]["params"] for s in steps0] == [steps1[s]["params"] for s in steps0]
    assert len({steps0[s]["params"] for s in steps0}) == 4  # and they did train
    assert all(steps0[s]["crops"] != steps1[s]["crops"] for s in steps0)
    # Rank 0 draws what one process with the same seed would: seed + rank seeds the ranks.
    images = load_folder_images([str(HERE / "data")], 384, 32)
    assert steps0[1]["crops"] == digest([random_batch(images, 2, 32, random.Random(SEED))])


def test_rank_0_alone_logs_and_writes_the_unwrapped_model(uninterrupted):
    (rank0, rank1), run_dir = uninterrupted
    assert [r["saved"] for r in rank0 if "saved" in r] == [4, 4]  # at --steps, and at exit
    assert not [r for r in rank1 if "saved" in r]
    log = [json.loads(line) for line in (run_dir / "log.jsonl").read_text().splitlines()]
    assert [r["step"] for r in log] == [1, 2, 3, 4]
    state = checkpoint(run_dir)
    assert state["model"].keys() == build_model("flow", json.loads(TINY)).state_dict().keys()
    assert state["step"] == 4 and len(state["rank_rngs"]) == 2
    assert_equal(state["rank_rngs"][0], {"python_rng": state["python_rng"],
                                         "torch_rng": state["torch_rng"]})


def test_a_resumed_run_ends_where_the_uninterrupted_one_does(uninterrupted, tmp_path):
    """2 steps, stop, resume to 4: each rank restores its own RNG states, so the steps after the
    resume draw the same crops and give the same weights, bit for bit."""
    (rank0, _), full_run = uninterrupted
    torchrun(tmp_path / "out", tmp_path / "run", 2)
    resumed0, resumed1 = torchrun(tmp_path / "out", tmp_path / "run", 4)
    assert sorted(steps_of(resumed0)) == sorted(steps_of(resumed1)) == [3, 4]
    for step, record in steps_of(resumed0).items():
        assert record == steps_of(rank0)[step]
    assert_equal(checkpoint(tmp_path / "run") | {"args": None, "seconds": None},
                 checkpoint(full_run) | {"args": None, "seconds": None})  # all but the clock
    log = [json.loads(line) for line in (tmp_path / "run" / "log.jsonl").read_text().splitlines()]
    assert [r["step"] for r in log] == [1, 2, 3, 4]


def test_a_one_process_checkpoint_resumes_as_rank_0_and_leaves_new_ranks_their_seed(tmp_path):
    """Today's checkpoints have no `rank_rngs`: under torchrun rank 0 takes their RNG states, and
    a rank the run did not have keeps its fresh seed (the other way round, one process resumes
    a torchrun checkpoint as its rank 0)."""
    run = tmp_path / "run"
    loop.main(["--model", "flow", "--config", TINY, "--data", str(HERE / "data"), "--run-dir",
               str(run), "--steps", "1", "--batch", "2", "--crop", "32", "--threads", "1",
               "--no-bf16"])
    state = checkpoint(run)
    assert "rank_rngs" not in state
    for rank in (0, 1):
        rng = random.Random(SEED + rank)
        fresh = rng.getstate()
        loop.resume(run / "checkpoint.pt", rng, rank)
        assert rng.getstate() == (state["python_rng"] if rank == 0 else fresh)
        assert torch.equal(torch.get_rng_state(), state["torch_rng"]) == (rank == 0)
