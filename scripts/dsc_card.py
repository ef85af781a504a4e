"""Rewrite weights/dsc.json from the weights that ship and one `flowcodec bench --stereo` report.

    python scripts/dsc_card.py REPORT.json [--report-copy docs/stereo.json]

dsc's side stage is trained once on the frozen flow and grafted onto every flow that ships
(scripts/ship_flow.sh), so its card changes with each flow: the sha256, the flow it sits on, and
the held-out stereo figures of the bench run that measured these weights. The training history
(the side stage's runs) stays as it is.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from flowcodec_cli import zoo
from flowcodec_cli.training.modelcard import stereo_results

CARD, FLOW_CARD = Path("weights/dsc.json"), Path("weights/flow.json")


def bd(report: dict, curve: str, reference: str) -> dict | None:
    """BD-rate (PSNR) and BD-PSNR of one curve against another, as measured in the report."""
    for b in report["bd"]:
        if b["curve"] == curve and b["reference"] == reference:
            return {"bd_rate_psnr_pct": round(b["psnr"]["bd_rate_pct"], 2),
                    "bd_psnr_db": round(b["psnr"]["bd_quality_db"], 3)}
    return None


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("report", type=Path, help="a flowcodec bench --stereo JSON report")
    p.add_argument("--report-copy", type=Path, default=Path("docs/stereo.json"),
                   help="where the report is kept in the repository (named in the card)")
    a = p.parse_args()
    report = json.loads(a.report.read_text())
    card, flow_card = json.loads(CARD.read_text()), json.loads(FLOW_CARD.read_text())
    sha = zoo.sha256_file(Path("weights/dsc.safetensors"))
    if report["curves"]["dsc"]["weights_sha256"] != sha:
        raise SystemExit(f"{a.report} measured other dsc weights than weights/dsc.safetensors")
    card["sha256"] = sha
    card["training"]["steps"] = flow_card["training"]["steps"]
    card["grafted_onto"] = {"weights": "weights/flow.safetensors", "sha256": flow_card["sha256"],
                            "trained_steps": flow_card["training"]["steps"]}
    card["stereo"] = stereo_results(a.report, "dsc")
    card["stereo"]["bench_report"] = str(a.report_copy)
    models = ",".join(report["config"]["models"])
    card["held_out_check"] = {
        "data": "../shared/data/stereo/middlebury_trainingQ (15 pairs, never trained on; "
                "tabletop_half is the training stereo set)",
        "command": f"flowcodec bench {report['config']['directory']} --stereo --models {models} "
                   f"--threads 1 (report copied to {a.report_copy})",
        "dsc_vs_shipped_flow": bd(report, "dsc", "flow"),
        "dsc_vs_dsc_separate": bd(report, "dsc", "dsc-separate"),
        "dsc_wrong_side_vs_flow": bd(report, "dsc (wrong side)", "flow"),
        "dsc_joint_vs_dsc": bd(report, "dsc-joint", "dsc"),
        "dsc_joint_vs_flow": bd(report, "dsc-joint", "flow"),
    }
    CARD.write_text(json.dumps(card, indent=2) + "\n")
    print(f"wrote {CARD}: sha256 {sha[:12]}…, grafted onto flow {flow_card['sha256'][:12]}…")


if __name__ == "__main__":
    main()
