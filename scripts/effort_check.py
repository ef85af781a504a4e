"""What each encoder effort level buys on held-out photos: BD-rate (PSNR) of the default model's
real files at effort 1..3 against effort 0, and the mean encode seconds per picture at each level,
on central crops of the Middlebury left views (never trained or tuned on, and not Kodak). The
decoder is the same at every level; the levels are `codec/effort.py`'s.

    python scripts/effort_check.py [--views even|odd|all] [--levels 1,2,3] [--threads 1] [--out F.json]

The crops and the pooled curve are rdoq_check.py's (same views, crop and β).
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import torch

from rdoq_check import BETAS, CROP, compared, held_out


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--views", choices=("even", "odd", "all"), default="odd")
    p.add_argument("--levels", default="1,2,3")
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--out")
    args = p.parse_args()
    torch.set_num_threads(args.threads)
    names, pictures = held_out(args.views)
    levels = [0] + [int(n) for n in args.levels.split(",")]
    result = compared(pictures, {str(level): {"effort": level} for level in levels})
    report = {"views": names, "crop": CROP, "betas": BETAS, "threads": args.threads,
              "curves": result["curves"], "encode_seconds": result["encode_seconds"],
              "bd_rate_pct_vs_effort0": result["bd_rate_pct"]}
    if args.out:
        Path(args.out).write_text(json.dumps(report, indent=1) + "\n")


if __name__ == "__main__":
    main()
