"""Write the JSON model card that sits next to a weights file in `weights/`.

Everything in the card is read from artefacts, never typed in: the architecture and config from
the weights file, the training command, data and steps from the checkpoint, the wall time from
the training log, and the Kodak figures from a bench report (`flowcodec bench --json`).

    python -m flowcodec_cli.training.modelcard --weights weights/hyperprior.safetensors \
        --checkpoint runs/hp/checkpoint.pt --bench docs/bench.json --out weights/hyperprior.json
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from flowcodec_cli.codec import operating_points
from flowcodec_cli import zoo
from flowcodec_cli.evaluation.bench.environment import cpu_model
from flowcodec_cli.models import build_model
from flowcodec_cli.training.checkpoints import read_checkpoint, trained_steps


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
    """The model's curve, its BD figures against every curve measured in the same run, and (for
    invertible models) the unquantized round-trip error, from a `flowcodec bench` JSON report."""
    report = json.loads(bench_path.read_text())
    curve = report["curves"][model]
    keep = ("setting", "bpp", "bpp_payload", "bpp_estimated", "payload_over_estimate", "psnr",
            "ms_ssim", "median_encode_s", "median_decode_s")
    return {
        "bench_report": str(bench_path),
        "images": report["config"]["images"],
        "date": report["environment"]["date"],
        "points": [{k: p.get(k) for k in keep} for p in curve["points"]],
        "bd_vs_measured_in_same_run": [
            {"reference": b["reference"], "bd_rate_psnr_pct": b["psnr"]["bd_rate_pct"],
             "bd_psnr_db": b["psnr"]["bd_quality_db"]}
            for b in report["bd"] if b["curve"] == model
            and b["reference_group"] in ("model", "measured in this run")],
        "invertibility": [{k: v for k, v in a.items() if k != "per_image"}
                          for a in report.get("invertibility", []) if a["model"] == model],
    }


def stereo_results(bench_path: Path, model: str) -> dict:
    """The model's curve on held-out stereo pairs and its BD figures against the other curves of
    the same run, from a `flowcodec bench --stereo` JSON report."""
    report = json.loads(bench_path.read_text())
    curve = report["curves"][model]
    keep = ("setting", "bpp", "bpp_estimated", "psnr", "ms_ssim", "psnr_wrong_side",
            "median_encode_s", "median_decode_s")
    return {
        "bench_report": str(bench_path),
        "pairs": report["config"]["pairs"],
        "directory": report["config"]["directory"],
        "date": report["environment"]["date"],
        "role": curve["role"],
        "points": [{k: p.get(k) for k in keep} for p in curve["points"]],
        "bd_vs_same_run": [{"reference": b["reference"], "bd_rate_psnr_pct": b["psnr"]["bd_rate_pct"],
                            "bd_psnr_db": b["psnr"]["bd_quality_db"]}
                           for b in report["bd"] if b["curve"] == model],
    }


def training_command(args: dict) -> str:
    return "flowcodec train " + " ".join(
        f"--{k.replace('_', '-')} {' '.join(v) if isinstance(v, list) else v}"
        for k, v in args.items() if v not in (None, "", False, []))


def stage(checkpoint: Path) -> dict:
    """One training run (a stage of the weights' history), read from its checkpoint and log."""
    state = read_checkpoint(checkpoint)
    return {"command": training_command(state["args"]), "steps": state["step"],
            "steps_after": trained_steps(state),
            "wall_seconds": round(training_wall_seconds(checkpoint.parent / "log.jsonl"))}


def build_card(weights: Path, checkpoint: Path, bench: Path | None,
               earlier: list[Path] = (), stereo_bench: Path | None = None,
               notes: list[str] = ()) -> dict:
    architecture, config, tensors = zoo.load_state(weights)
    model = build_model(architecture, config)
    state = read_checkpoint(checkpoint)
    args = state["args"]
    command = training_command(args)
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
            "data": args["data"] + list(args.get("stereo") or []),
            "steps": trained_steps(state),
            "steps_this_run": state["step"],
            "continued_from": args.get("init_from") or None,
            "batch": args["batch"],
            "crop": args["crop"],
            "wall_seconds": round(training_wall_seconds(checkpoint.parent / "log.jsonl")),
            "hardware": (f"{args.get('threads')} CPU thread(s), {cpu_model()}"
                         if args.get("device", "cpu") == "cpu" else args["device"])
                        + (", bfloat16 autocast" if args.get("bf16") else ", float32"),
            "test_set_used_for_training": False,
            "earlier_stages": [stage(c) for c in earlier],
            "notes": list(notes),  # what the artefacts cannot show (e.g. a change between resumes)
        },
    }
    knots = operating_points.read(weights).knots
    if knots:  # requested β → the β the network runs at (codec/operating_points.py)
        card["operating_points"] = {
            "knots": [list(k) for k in knots],
            "measured_with": "python -m flowcodec_cli.training.operating_points (held-out photos, "
                             "never Kodak); the measurement is in "
                             f"docs/operating_points/{weights.stem}.json",
        }
    if bench is not None:
        card["kodak"] = kodak_results(bench, weights.stem)
    if stereo_bench is not None:
        card["stereo"] = stereo_results(stereo_bench, weights.stem)
    return card


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(prog="python -m flowcodec_cli.training.modelcard", description=__doc__)
    p.add_argument("--weights", type=Path, required=True)
    p.add_argument("--checkpoint", type=Path, required=True,
                   help="the run's checkpoint.pt, or its run record (train export --record) next "
                        "to the run's log.jsonl")
    p.add_argument("--bench", type=Path)
    p.add_argument("--stereo-bench", type=Path, help="a `flowcodec bench --stereo` JSON report")
    p.add_argument("--note", action="append", default=[],
                   help="a training fact the checkpoints do not record (repeatable)")
    p.add_argument("--out", type=Path, required=True)
    p.add_argument("--earlier", type=Path, nargs="*", default=[],
                   help="checkpoints of the runs these weights were continued from (--init-from)")
    a = p.parse_args(argv)
    card = build_card(a.weights, a.checkpoint, a.bench, a.earlier, a.stereo_bench, a.note)
    a.out.write_text(json.dumps(card, indent=2) + "\n")
    print(f"wrote {a.out}")


if __name__ == "__main__":
    main()
