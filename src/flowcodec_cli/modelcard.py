"""Write the JSON model card that sits next to a weights file in `weights/`.

Everything in the card is read from artefacts, never typed in: the architecture and config from
the weights file, the training command, data and steps from the checkpoint, the wall time from
the training log, and the Kodak figures from a bench report (`flowcodec bench --json`).

    python -m flowcodec_cli.modelcard --weights weights/hyperprior.safetensors \
        --checkpoint runs/hp/checkpoint.pt --bench docs/bench.json --out weights/hyperprior.json
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import torch

from . import zoo
from .bench import cpu_model
from .models import build_model


def training_wall_seconds(log_path: Path) -> float:
    """Sum of the wall time of every (resumed) segment of a training log."""
    total, last = 0.0, 0.0
    for line in log_path.read_text().splitlines():
        seconds = json.loads(line)["seconds"]
        if seconds < last:  # a resumed run restarts its clock
            total += last
        last = seconds
    return total + last


def kodak_results(bench_path: Path, model: str) -> dict:
    report = json.loads(bench_path.read_text())
    curves = [c for c in report["curves"] if c.get("model") == model or c.get("name") == model]
    bd = [b for b in report.get("bd", []) if b.get("curve") == model]
    return {"bench_report": str(bench_path), "curve": curves, "bd": bd}


def build_card(weights: Path, checkpoint: Path, bench: Path | None) -> dict:
    architecture, config, tensors = zoo.load_state(weights)
    model = build_model(architecture, config)
    state = torch.load(checkpoint, map_location="cpu", weights_only=False)
    args = state["args"]
    command = "flowcodec train " + " ".join(
        f"--{k.replace('_', '-')} {' '.join(v) if isinstance(v, list) else v}"
        for k, v in args.items() if v not in (None, "", False))
    card = {
        "name": weights.stem,
        "architecture": architecture,
        "config": config,
        "parameters": sum(p.numel() for p in model.parameters()),
        "weights_file": weights.name,
        "weights_dtype": "float16",
        "sha256": zoo.sha256_file(weights),
        "beta_range": [config["beta_min"], config["beta_max"]],
        "training": {
            "command": command,
            "data": args["data"],
            "steps": state.get("steps_before", 0) + state["step"],
            "steps_this_run": state["step"],
            "continued_from": args.get("init_from") or None,
            "batch": args["batch"],
            "crop": args["crop"],
            "wall_seconds": round(training_wall_seconds(checkpoint.parent / "log.jsonl")),
            "hardware": (f"{args.get('threads')} CPU thread(s), {cpu_model()}"
                         if args.get("device", "cpu") == "cpu" else args["device"])
                        + (", bfloat16 autocast" if args.get("bf16") else ", float32"),
            "test_set_used_for_training": False,
        },
    }
    if bench is not None:
        card["kodak"] = kodak_results(bench, weights.stem)
    return card


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(prog="python -m flowcodec_cli.modelcard", description=__doc__)
    p.add_argument("--weights", type=Path, required=True)
    p.add_argument("--checkpoint", type=Path, required=True)
    p.add_argument("--bench", type=Path)
    p.add_argument("--out", type=Path, required=True)
    a = p.parse_args(argv)
    card = build_card(a.weights, a.checkpoint, a.bench)
    a.out.write_text(json.dumps(card, indent=2) + "\n")
    print(f"wrote {a.out}")


if __name__ == "__main__":
    main()
