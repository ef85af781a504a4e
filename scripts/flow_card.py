"""Rewrite weights/flow.json after scripts/ship_flow.sh shipped continued weights.

    python scripts/flow_card.py --checkpoint runs/flowN/checkpoint.pt --eval runs/eval/flowN.json \
        [--bench KODAK_BENCH.json] [--note TEXT ...]

The new card is built from the artefacts (training.modelcard.build_card: weights, checkpoint,
log); the history the new run's checkpoint cannot know (the earlier training stages, the
earlier held-out checks, the last Kodak bench) is carried over from the card it replaces, so
the chain from the first step to the shipped weights stays in one file.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from flowcodec_cli.training.modelcard import build_card, stage

CARD = Path("weights/flow.json")


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--checkpoint", type=Path, required=True)
    p.add_argument("--eval", type=Path, required=True, help="the held-out check of ship_flow.sh")
    p.add_argument("--bench", type=Path, help="a Kodak `flowcodec bench` report of these weights")
    p.add_argument("--note", action="append", default=[])
    p.add_argument("--via", type=Path, action="append", default=[],
                   help="checkpoint of a run between the shipped weights and this one that never "
                        "shipped (this run's --init-from chain, oldest first; repeatable)")
    a = p.parse_args()
    old = json.loads(CARD.read_text())
    card = build_card(Path("weights/flow.safetensors"), a.checkpoint, a.bench, notes=a.note)
    previous = old["training"]
    card["training"]["earlier_stages"] = previous.get("earlier_stages", []) + [
        {"command": previous["command"], "steps": previous["steps_this_run"],
         "wall_seconds": previous["wall_seconds"], "steps_after": previous["steps"],
         "notes": previous.get("notes", [])}] + [
        {**stage(c), "notes": ["not shipped on its own: the next run continued from it"]}
        for c in a.via]
    result = json.loads(a.eval.read_text())
    previous_steps = previous["steps"]
    card["held_out_check"] = {
        "data": old["held_out_check"]["data"],
        "command": f"scripts/ship_flow.sh {result['checkpoint']} REFERENCE (python -m "
                   "flowcodec_cli.training.evaluate WEIGHTS --data "
                   "../shared/data/stereo/middlebury_trainingQ/left --betas "
                   "0.0002,0.001,0.004,0.015,0.05 --reference REFERENCE, the previous weights' "
                   "curve: held_out_check.curve of the card this one replaced)",
        f"bd_rate_vs_previous_weights_{previous_steps}_steps_pct":
            round(result["bd_rate_vs_reference"], 2),
        "curve": result["curve"],
        "previous_checks": old["held_out_check"],
    }
    for key in ("kodak_of_previous_weights", "kodak"):  # the newest Kodak bench wins
        if key in old:
            card["kodak_of_previous_weights"] = old[key]
    CARD.write_text(json.dumps(card, indent=2) + "\n")
    print(f"wrote {CARD}: {card['training']['steps']} steps, sha256 {card['sha256'][:12]}…")


if __name__ == "__main__":
    main()
