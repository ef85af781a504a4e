"""Training is resumable and cumulative: a run stops and resumes from its checkpoint, exports fp16
weights that record their steps, and a new run can start from those weights."""

import json
from pathlib import Path

import torch

from flowcodec_cli.training import loop as train
from flowcodec_cli import zoo
from flowcodec_cli.models import build_model

DATA = Path(__file__).parent / "data"
TINY = json.dumps({"levels": 2, "steps": 1, "hidden": 8, "hyper_width": 16, "hyper_channels": 8})


def _train(run_dir: Path, steps: int, *extra: str) -> None:
    train.main(["--model", "flow", "--config", TINY, "--data", str(DATA), "--run-dir", str(run_dir),
                "--steps", str(steps), "--batch", "2", "--crop", "32", "--threads", "1",
                "--log-every", "1", "--no-bf16", *extra])


def test_resume_export_and_continue(tmp_path):
    run = tmp_path / "run"
    _train(run, 2)
    first = torch.load(run / "checkpoint.pt", weights_only=False)
    assert first["step"] == 2 and first["optimizer"]["state"]
    _train(run, 3)  # resumes: one more step, not three
    log = [json.loads(line) for line in (run / "log.jsonl").read_text().splitlines()]
    assert [r["step"] for r in log] == [1, 2, 3]
    assert all(r["psnr"] > 0 and r["bpp"] > 0 for r in log)

    weights = tmp_path / "flow.safetensors"
    sha = train.export_checkpoint(str(run / "checkpoint.pt"), str(weights))
    assert sha == zoo.sha256_file(weights) and zoo.trained_steps(weights) == 3

    _train(tmp_path / "more", 2, "--init-from", str(weights))
    more = torch.load(tmp_path / "more" / "checkpoint.pt", weights_only=False)
    assert more["steps_before"] == 3 and more["step"] == 2


def test_optimizer_state_follows_parameter_names():
    """A checkpoint whose modules were registered in another order resumes onto the right tensors."""
    model = build_model("flow", json.loads(TINY))
    optimizer = torch.optim.Adam(model.parameters())
    model(torch.rand(1, 3, 32, 32), torch.tensor([0.001]))["x_hat"].sum().backward()
    optimizer.step()
    names = [n for n, _ in model.named_parameters()]
    saved_opt = optimizer.state_dict()
    # Pretend the saved run listed its parameters in reverse order.
    reverse = {old: len(names) - 1 - old for old in range(len(names))}
    state = {"model": {n: None for n in reversed(names)},
             "optimizer": {"state": {reverse[i]: v for i, v in saved_opt["state"].items()},
                           "param_groups": saved_opt["param_groups"]}}
    restored = train._reordered_optimizer_state(state, model)
    for i, values in saved_opt["state"].items():
        assert torch.equal(restored["state"][i]["exp_avg"], values["exp_avg"])
