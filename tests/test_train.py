"""Training is resumable and cumulative: a run stops and resumes from its checkpoint, exports fp16
weights that record their steps, and a new run can start from those weights."""

import json
import random
from pathlib import Path

import torch

from flowcodec_cli import zoo
from flowcodec_cli.models import build_model
from flowcodec_cli.models.base import file_name
from flowcodec_cli.training import checkpoints
from flowcodec_cli.training import loop as train

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
    sha = checkpoints.export_checkpoint(str(run / "checkpoint.pt"), str(weights))
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
    state = {"model": {file_name(n): None for n in reversed(names)},
             "optimizer": {"state": {reverse[i]: v for i, v in saved_opt["state"].items()},
                           "param_groups": saved_opt["param_groups"]}}
    restored = checkpoints.reordered_optimizer_state(state, model)
    for i, values in saved_opt["state"].items():
        assert torch.equal(restored["state"][i]["exp_avg"], values["exp_avg"])


def test_a_resumed_checkpoint_keeps_the_adam_moments_of_each_parameter(tmp_path):
    """Checkpoints name the entropy model's tensors without their `entropy_model.` prefix and list
    them last; resuming still gives every parameter, those of the entropy model included, its own
    Adam moments."""
    model = build_model("flow", json.loads(TINY))
    optimizer = torch.optim.Adam(model.parameters())
    out = model(torch.rand(1, 3, 32, 32), torch.tensor([0.001]))
    (out["x_hat"].sum() + out["y_bits_per_image"].sum() + out["z_bits_per_image"].sum()).backward()
    optimizer.step()
    path = tmp_path / "checkpoint.pt"
    checkpoints.save_checkpoint(path, model, optimizer, 1, {}, random.Random(0))

    resumed, state = checkpoints.load_checkpoint(path)
    resumed_optimizer = torch.optim.Adam(resumed.parameters())
    resumed_optimizer.load_state_dict(checkpoints.reordered_optimizer_state(state, resumed))
    before = dict(model.named_parameters())
    after = dict(resumed.named_parameters())
    entropy = [name for name in before if name.startswith("entropy_model.")]
    assert entropy and any(optimizer.state[before[name]] for name in entropy)
    for name in before:
        old, new = optimizer.state[before[name]], resumed_optimizer.state[after[name]]
        assert old.keys() == new.keys()
        for key in old:
            assert torch.equal(old[key], new[key]), (name, key)


def test_bf16_defaults_to_what_the_hardware_computes_natively(monkeypatch):
    """bf16 autocast is emulated (many times slower) on CPUs without AVX512-BF16/AMX, so it is on
    by default only where it is native, or on CUDA; an explicit flag always wins, and the
    resolved value is what the checkpoint's args record."""
    base = ["--data", "x", "--run-dir", "y"]
    for native in (False, True):
        monkeypatch.setattr(train, "native_bf16", lambda: native)
        assert train.parse_args(base).bf16 is native
        assert train.parse_args([*base, "--bf16"]).bf16 is True
        assert train.parse_args([*base, "--no-bf16"]).bf16 is False
        assert train.parse_args([*base, "--device", "cuda"]).bf16 is True


def test_a_time_budget_stops_the_run_with_the_learning_rate_decayed(tmp_path):
    """--budget-minutes (a lent GPU's minutes, a session's end) stops early and checkpoints, and the
    cosine decay follows the clock, so the cut-off run ends at the bottom learning rate."""
    assert abs(train.learning_rate(600, 100_000, 1e-3, time_spent=1.0) - 1e-4) < 1e-12
    assert train.learning_rate(600, 100_000, 1e-3, time_spent=0.5) < train.learning_rate(600, 100_000, 1e-3)
    run = tmp_path / "run"
    _train(run, 100_000, "--budget-minutes", "0.0001")  # 6 ms: spent after the first step
    state = torch.load(run / "checkpoint.pt", weights_only=False)
    assert 1 <= state["step"] <= 2 and state["seconds"] > 0.006
    _train(run, 100_000, "--budget-minutes", "0.0001")  # the budget counts over resumes: spent
    again = torch.load(run / "checkpoint.pt", weights_only=False)
    assert again["step"] <= state["step"] + 1 and again["seconds"] > state["seconds"]


def test_a_run_record_builds_the_same_model_card_as_its_checkpoint(tmp_path):
    """A lent GPU's checkpoints stay there; the export's run record stands in for them."""
    from flowcodec_cli.training.modelcard import build_card
    run = tmp_path / "run"
    _train(run, 2)
    weights, record = tmp_path / "w.safetensors", run / "run.json"
    train.main(["export", str(run / "checkpoint.pt"), str(weights), "--record", str(record)])
    from_checkpoint = build_card(weights, run / "checkpoint.pt", None)
    from_record = build_card(weights, record, None)
    assert from_record == from_checkpoint and from_record["training"]["steps"] == 2


def test_a_checkerboard_grown_onto_trained_weights_starts_at_zero_and_learns(tmp_path):
    """`--init-from W --config '{"context_checkerboard": true}'`: the spatial context networks are
    new (their last layer zero) and are trained from the first step: the anchors reach them."""
    context = {**json.loads(TINY), "context_slices": [16, 32], "context_hidden": 4}
    train.main(["--model", "flow", "--config", json.dumps(context), "--data", str(DATA),
                "--run-dir", str(tmp_path / "plain"), "--steps", "1", "--batch", "2", "--crop", "32",
                "--threads", "1", "--no-bf16"])
    weights = tmp_path / "plain.safetensors"
    checkpoints.export_checkpoint(str(tmp_path / "plain" / "checkpoint.pt"), str(weights))
    _train(tmp_path / "grown", 2, "--init-from", str(weights),
           "--config", json.dumps({"context_checkerboard": True}))
    state = torch.load(tmp_path / "grown" / "checkpoint.pt", weights_only=False)
    assert state["config"]["context_checkerboard"] and list(state["config"]["context_slices"]) == [16, 32]
    last = [v for k, v in state["model"].items() if "spatial" in k and k.endswith("4.weight")]
    assert len(last) == 2 and all(0 < w.abs().max() < 0.01 for w in last)
