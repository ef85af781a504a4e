"""BD-rate of one bench run's model curve against another run's (the same model at two encoder
efforts, whose bench runs are separate: `--effort` applies to every model of a run), and each
run's median encode and decode seconds per image at every β.

    python scripts/effort_bd.py EFFORT3/bench.json EFFORT0/bench.json [--model flow]
"""

from __future__ import annotations

import argparse
import json

from flowcodec_cli.evaluation.bench.curves import bd_pair, curve_points


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("ours", help="bench.json of the run measured")
    parser.add_argument("reference", help="bench.json of the run it is compared with")
    parser.add_argument("--model", default="flow")
    args = parser.parse_args()
    runs = [json.load(open(path)) for path in (args.ours, args.reference)]
    curves = [run["curves"][args.model] for run in runs]
    for run, curve in zip(runs, curves):
        print(f"effort {run['config']['effort']}:")
        for point in curve["points"]:
            print(f"  β {point['setting']:<8g} {point['bpp']:.4f} bpp {point['psnr']:.2f} dB  "
                  f"encode {point['median_encode_s']:.2f} s  decode {point['median_decode_s']:.2f} s")
    for metric in ("psnr", "ms_ssim_db"):
        bd = bd_pair(*(curve_points(curve, metric) for curve in curves), "cubic")
        value = "n/a: " + bd["note"] if bd["bd_rate_pct"] is None else f"{bd['bd_rate_pct']:+.2f}%"
        print(f"BD-rate ({metric}) effort {runs[0]['config']['effort']} vs "
              f"{runs[1]['config']['effort']}: {value} ({bd['method']})")


if __name__ == "__main__":
    main()
