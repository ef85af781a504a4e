"""The flow codec's ablations (issue: flow depth, prior flexibility, β schedule, noise type).

    python -m flowcodec_cli.training.ablation --steps 600 --crop 96 --out docs/flow_ablation.json

Every variant trains from scratch with the same budget (steps, batch, crop, seed, data) and is
measured the same way (`evaluate.py`: rounded latents, the model's bits, PSNR of the central
256² crop of held-out photos). Training never sees the validation photos: BSDS500 `val` is left
out of the training folders here (the shipped weights do train on it). The table in
docs/flow.md is printed by this module from the JSON it writes.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import torch

from flowcodec_cli.evaluation import metrics
from flowcodec_cli.training import evaluate, loop
from flowcodec_cli.training.checkpoints import load_checkpoint_model
from flowcodec_cli.training.data import load_folder_images

DATA = "../shared/data"
TRAIN_FOLDERS = [f"{DATA}/bsds500/train", f"{DATA}/train/imagenet_sample", f"{DATA}/train/sun_hays80"]
VALIDATION_FOLDER = f"{DATA}/bsds500/val"

#: The configuration every variant starts from: the flow as it was when the ablations were first
#: run (Glow's random-rotation 1×1 init), so that earlier variants stay reproducible.
BASE_CONFIG = {"mix_init": "rotation"}

#: name → (model config overrides on BASE_CONFIG, extra training arguments, what it tests)
VARIANTS: dict[str, tuple[dict, list[str], str]] = {
    "base": ({}, [], "4 steps/level, K = 3, uniform noise, β log-uniform from step 0"),
    "depth-1": ({"steps": 1}, [], "flow depth: 1 step per level"),
    "depth-2": ({"steps": 2}, [], "flow depth: 2 steps per level"),
    "K-1": ({"components": 1}, [], "prior flexibility: a single Gaussian (mean-scale)"),
    "gaussian-noise": ({"noise": "gaussian"}, [], "proposal's Gaussian dequantization noise"),
    "rate-warmup": ({}, ["--rate-warmup", "HALF"], "β schedule: rate term ramped 0 → β over the first half"),
    "round-ste": ({"synthesis_input": "round"}, [],
                  "f⁻¹ trained on rounded latents (straight-through) instead of y + noise"),
    "wavelet-init": ({"mix_init": "wavelet"}, [],
                     "1×1 convs start as colour transform + subband permutations, not random rotations"),
}


def run(names: list[str], steps: int, crop: int, batch: int, images: int, out: Path,
        run_root: Path) -> dict:
    validation = load_folder_images([VALIDATION_FOLDER], max_side=10**9, crop=256)[:images]
    betas = [0.0002, 0.0005, 0.002, 0.008, 0.03]
    settings = {"steps": steps, "crop": crop, "batch": batch, "validation_images": len(validation)}
    # Variants measured earlier with the same budget are kept, so variants can be added later.
    previous = json.loads(out.read_text()) if out.exists() else {}
    same = all(previous.get(k) == v for k, v in settings.items())
    results = {k: v for k, v in previous.get("variants", {}).items() if same and k not in names}
    for name in names:
        config, extra, purpose = VARIANTS[name]
        extra = [str(steps // 2) if a == "HALF" else a for a in extra]
        run_dir = run_root / name
        print(f"ablation: {name}", flush=True)
        loop.main(["--model", "flow", "--config", json.dumps({**BASE_CONFIG, **config}), "--data", *TRAIN_FOLDERS,
                   "--run-dir", str(run_dir), "--steps", str(steps), "--batch", str(batch),
                   "--crop", str(crop), "--threads", str(torch.get_num_threads()),
                   "--log-every", "100", *extra])
        model, state = load_checkpoint_model(run_dir / "checkpoint.pt")
        result = evaluate.evaluate(model, validation, betas, 256)
        results[name] = {"purpose": purpose, "config": config, "train_args": extra,
                         "steps": state["step"],
                         "seconds": round(train_seconds(run_dir / "log.jsonl")), **result}
    if "base" in results:
        base = [(p["bpp"], p["psnr"]) for p in results["base"]["curve"]]
        for r in results.values():
            r["bd_rate_vs_base"] = metrics.bd_rate([(p["bpp"], p["psnr"]) for p in r["curve"]],
                                                   base, method="pchip")
    doc = {**settings, "validation": VALIDATION_FOLDER, "betas": betas, "variants": results}
    out.write_text(json.dumps(doc, indent=2) + "\n")
    return doc


def train_seconds(log: Path) -> float:
    lines = log.read_text().splitlines()
    return json.loads(lines[-1])["seconds"] if lines else 0.0


def table(doc: dict) -> str:
    """The markdown table of docs/flow.md."""
    head = "| variant | what it tests | " + " | ".join(f"β={b:g} bpp / dB" for b in doc["betas"])
    head += " | BD-rate vs base |\n|---|---|" + "---|" * len(doc["betas"]) + "---|\n"
    rows = []
    for name, r in doc["variants"].items():
        cells = [f"{p['bpp']:.3f} / {p['psnr']:.2f}" for p in r["curve"]]
        bd = r.get("bd_rate_vs_base")
        rows.append(f"| {name} | {r['purpose']} | " + " | ".join(cells)
                    + f" | {'—' if bd is None else f'{bd:+.1f}%'} |")
    return head + "\n".join(rows) + "\n"


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(prog="python -m flowcodec_cli.training.ablation", description=__doc__)
    p.add_argument("--variants", default=",".join(VARIANTS))
    p.add_argument("--steps", type=int, default=600)
    p.add_argument("--crop", type=int, default=96)
    p.add_argument("--batch", type=int, default=8)
    p.add_argument("--images", type=int, default=12, help="validation photos used")
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--run-root", type=Path, default=Path("runs/ablation"))
    p.add_argument("--out", type=Path, default=Path("docs/flow_ablation.json"))
    p.add_argument("--table-only", action="store_true", help="print the table of an existing --out")
    a = p.parse_args(argv)
    torch.set_num_threads(a.threads)
    doc = json.loads(a.out.read_text()) if a.table_only else run(
        a.variants.split(","), a.steps, a.crop, a.batch, a.images, a.out, a.run_root)
    print(table(doc))


if __name__ == "__main__":
    main()
