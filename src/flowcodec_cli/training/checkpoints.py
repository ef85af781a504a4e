"""Training checkpoints: save, load, resume, grow and export.

A checkpoint (`runs/NAME/checkpoint.pt`, torch.save of a dict) holds everything a killed run needs
to resume exactly where it stopped:

    model          the model's state dict (weights-file names, see `models.base.file_name`)
    optimizer      the Adam state dict (moments indexed by the position of each parameter)
    step           steps of this run; steps_before: steps of the weights it started from
    model_name     the architecture; config: its config (the model is rebuilt from these two)
    args           the training arguments (vars of the argparse namespace)
    python_rng     the run's random.Random state; torch_rng: torch's CPU generator state
    rank_rngs      only from torchrun runs (training/distributed.py): every rank's python_rng and
                   torch_rng, by rank (rank 0's are the two above)

`export_checkpoint` strips one to fp16 weights for `weights/` (`flowcodec train export`), and
`graft_weights` moves the parts a model grew (the side-information stage) onto newer weights of
the model it grew from (`flowcodec train graft`).
"""

from __future__ import annotations

import json
import random
from pathlib import Path

import torch
from safetensors.torch import save_file

from flowcodec_cli import zoo
from flowcodec_cli.files.atomic import atomic_path
from flowcodec_cli.models import build_model, full_config
from flowcodec_cli.models.base import file_name

#: the entropy model's config fields, which a graft takes from the base (graft_weights)
ENTROPY_FIELDS = ("context_",)


def read_checkpoint(path: Path) -> dict:
    """The raw checkpoint dict (see the module docstring), on the CPU; or, for a `.json` path,
    a run record (`run_record`): what a model card needs of a checkpoint too big to bring back."""
    if Path(path).suffix == ".json":
        return json.loads(Path(path).read_text())
    return torch.load(path, map_location="cpu", weights_only=False)


def trained_steps(state: dict) -> int:
    """A checkpoint state's steps in all: this run's and those of the weights it started from."""
    return state.get("steps_before", 0) + state["step"]


def run_record(state: dict) -> dict:
    """A checkpoint's state without its tensors: the run's args, its step and the steps before it.

    Why: a lent GPU's checkpoints (weights + Adam moments, ~70 MB for the flow) stay on that
    machine; the fp16 export and this record come back, and the model card is built from them."""
    return {"args": state["args"], "step": state["step"], "steps_before": state.get("steps_before", 0)}


def save_checkpoint(path: Path, model, optimizer, step: int, args: dict, rng: random.Random,
                    steps_before: int = 0, rank_rngs: list[dict] | None = None,
                    seconds: float = 0.0) -> None:
    """Everything a resumed run needs; `steps_before`: steps of the weights it started from;
    `rank_rngs`: every rank's RNG states in a distributed run (`model`: the unwrapped model);
    `seconds`: the run's training time so far, over its resumes (what --budget-minutes counts)."""
    ranks = {"rank_rngs": rank_rngs} if rank_rngs is not None else {}
    with atomic_path(path) as tmp:
        torch.save({
            "model": model.state_dict(),
            "optimizer": optimizer.state_dict(),
            "step": step,
            "steps_before": steps_before,
            "seconds": seconds,
            "model_name": model.name,
            "config": model.config.to_dict(),
            "args": args,
            "python_rng": rng.getstate(),
            "torch_rng": torch.get_rng_state(),
            **ranks,
        }, tmp)


def load_checkpoint(path: Path) -> tuple[torch.nn.Module, dict]:
    """The model of a training checkpoint (rebuilt from the config stored in it) and the state."""
    state = read_checkpoint(path)
    model = build_model(state["model_name"], state["config"])
    model.load_state_dict(state["model"])
    return model, state


def load_checkpoint_model(path: Path):
    """The model of a training checkpoint or of a weights file (.safetensors) in eval mode, and
    its state (step, config, training args), so shipped weights can be the reference."""
    if path.suffix == ".safetensors":
        architecture, config, tensors = zoo.load_state(path)
        model = build_model(architecture, config)
        model.load_state_dict(tensors)
        return model.eval(), {"step": zoo.trained_steps(path), "config": config, "args": {}}
    model, state = load_checkpoint(path)
    return model.eval(), state


def reordered_optimizer_state(state: dict, model) -> dict:
    """The checkpoint's optimizer state, matched to the model's parameters by name.

    torch matches optimizer state to parameters by position; a refactor that registers the same
    modules in another order would silently pair Adam moments with the wrong tensors. The
    optimizer was made from `model.parameters()`; the checkpoint records names only in its model
    state dict, under file names (`entropy_model.h_s.0.weight` is `h_s.0.weight`). Two layouts of
    that state dict are known to come from a model with this one's parameter order: the one this
    model's `state_dict()` has (it lists the entropy model's tensors last), and the parameter
    order itself (checkpoints from before the entropy model was a submodule). Any other order is
    taken as the order the optimizer had.
    """
    current = [file_name(name) for name, _ in model.named_parameters()]
    names = set(current)
    saved = [key for key in state["model"] if key in names]
    if saved in (current, [key for key in model.state_dict() if key in names]):
        return state["optimizer"]
    position = {name: i for i, name in enumerate(current)}
    saved_opt = state["optimizer"]
    moved = {position[saved[i]]: value for i, value in saved_opt["state"].items()}
    (group,) = saved_opt["param_groups"]
    return {"state": moved, "param_groups": [{**group, "params": list(range(len(current)))}]}


def load_grown(model, tensors: dict[str, torch.Tensor]) -> tuple[list[str], list[str], list[str]]:
    """Load trained tensors into a model that may be bigger: new modules keep their init, and a
    weight whose input channels grew (dim 1, e.g. a fusion layer given more inputs) gets the
    trained values for the old channels and zeros for the new ones, so the model computes
    exactly what the trained one did until training moves the new weights.

    A model may name new modules that start as copies of trained ones (`grown_copies`, e.g. the
    VQ-VAE's side network as its analysis): those are copied instead of keeping their init.

    Returns (missing keys, unexpected keys, grown keys); any other shape change is an error."""
    own = model.state_dict()
    grown = []
    for new, source in getattr(model, "grown_copies", {}).items():
        if hasattr(model, new) and not any(key.startswith(new + ".") for key in tensors):
            tensors = {**tensors, **{new + key[len(source):]: value for key, value in tensors.items()
                                     if key.startswith(source + ".")}}
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


def export_weights(model, path: Path, trained_steps: int | None = None) -> str:
    """Write a model's weights as fp16 safetensors with its config (what `zoo.load` reads back);
    returns the sha256 to pin in zoo.py."""
    tensors = {k: v.detach().to(torch.float16).contiguous() for k, v in model.state_dict().items()}
    metadata = {"architecture": model.name, "config": json.dumps(model.config.to_dict())}
    if trained_steps is not None:
        metadata["trained_steps"] = str(trained_steps)
    with atomic_path(path) as tmp:
        save_file(tensors, str(tmp), metadata=metadata)
    return zoo.sha256_file(path)


def export_checkpoint(checkpoint: str, out: str, record: str | None = None) -> str:
    """Strip a training checkpoint to fp16 weights + config (safetensors); returns the sha256.
    `record`: also write the run record (`run_record`) there, for a model card elsewhere."""
    model, state = load_checkpoint(Path(checkpoint))
    if record:
        Path(record).write_text(json.dumps(run_record(state), indent=1) + "\n")
    total = trained_steps(state)
    sha = export_weights(model, Path(out), trained_steps=total)
    print(json.dumps({"checkpoint": checkpoint, "step": state["step"], "trained_steps": total,
                      "out": out, "sha256": sha}))
    return sha


def graft_weights(grown: str, base: str, out: str, parts: list[str]) -> str:
    """Weights of `grown` whose every tensor outside the top-level `parts` is replaced by the
    tensor of the same name in `base`, written like `export_weights`; returns the sha256.

    Why: the side-information stage trains on a frozen flow (`--train-only`). When the flow is
    trained further and ships again, the stage moves onto the new flow instead of training again;
    the result must be checked on held-out pairs before it ships, like any weights. The base's
    config must be the grown model's, field for field where they share fields, defaults filled
    in (a field added later, at its default, is no difference), except the entropy model's
    context fields (`ENTROPY_FIELDS`): the side stage never reads the entropy model (it is blind
    to the side view), so a base whose entropy model grew (the checkerboard) passes it on."""
    g_arch, g_config, g_tensors = zoo.load_state(Path(grown))
    b_arch, b_config, b_tensors = zoo.load_state(Path(base))
    g_full, b_full = full_config(g_arch, g_config), full_config(b_arch, b_config)
    followed = {k: b_full[k] for k in b_full if k.startswith(ENTROPY_FIELDS)}
    if differ := sorted(k for k in b_full if g_full.get(k) != b_full[k] and k not in followed):
        raise SystemExit(f"graft: {base} is built differently ({', '.join(differ)})")
    kept = {k for k in g_tensors if k.split(".")[0] in parts}
    if not kept:
        raise SystemExit(f"graft: {grown} has no parts {parts}")
    model = build_model(g_arch, {**g_config, **followed})
    names = model.state_dict().keys()
    if missing := sorted(k for k in names if k not in kept and k not in b_tensors):
        raise SystemExit(f"graft: {base} lacks {missing[:3]}")
    model.load_state_dict({k: (g_tensors[k] if k in kept else b_tensors[k]) for k in names})
    steps = zoo.trained_steps(Path(base))
    return export_weights(model, Path(out), trained_steps=steps)
