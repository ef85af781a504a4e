"""Rewrite the -q tables of README.md and docs/cli.md from src/flowcodec_cli/data/quality.json.

    python scripts/quality_tables.py          # after python -m flowcodec_cli.training.quality_map

The tables quote what quality_map measured for the shipped weights; writing them by hand after
each retraining drifted, so they are rendered from the one file the encoder reads.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
QUALITY = json.loads((ROOT / "src/flowcodec_cli/data/quality.json").read_text())
README_QS = (30, 50, 75, 90, 100)
CLI_QS = (10, 20, 30, 40, 50, 60, 70, 75, 80, 90, 95, 100)


def typical(model: str) -> dict[int, tuple[float, float]]:
    """Q → (bpp, PSNR) of a model on the held-out photos."""
    return {q: (bpp, psnr) for q, bpp, psnr in QUALITY["models"][model]["typical_bpp_psnr"]}


def readme_table() -> str:
    flow = typical("flow")
    return "\n".join([
        "| Q | " + " | ".join(str(q) for q in README_QS) + " |",
        "|---|" + "----|" * len(README_QS),
        "| bpp | " + " | ".join(f"{flow[q][0]:.2f}" for q in README_QS) + " |",
        "| PSNR | " + " | ".join(f"{flow[q][1]:.1f} dB" for q in README_QS) + " |"])


def cli_table() -> str:
    flow, hyper, jpeg = typical("flow"), typical("hyperprior"), dict(QUALITY["jpeg_psnr"])
    rows = ["| Q | JPEG 4:4:4 PSNR | flow bpp | flow PSNR | hyperprior bpp | hyperprior PSNR |",
            "|---|---|---|---|---|---|"]
    rows += [f"| {q} | {jpeg[q]:.1f} dB | {flow[q][0]:.2f} | {flow[q][1]:.1f} dB | "
             f"{hyper[q][0]:.2f} | {hyper[q][1]:.1f} dB |" for q in CLI_QS]
    return "\n".join(rows)


def replace_table(path: Path, header: str, table: str) -> None:
    """Replace the Markdown table whose first line starts with `header`."""
    text = path.read_text()
    pattern = re.compile(rf"^{re.escape(header)}.*\n(?:\|.*\n)*", re.M)
    if len(pattern.findall(text)) != 1:
        raise SystemExit(f"{path}: expected one table starting {header!r}")
    path.write_text(pattern.sub(lambda _: table + "\n", text))


if __name__ == "__main__":
    replace_table(ROOT / "README.md", "| Q | 30 |", readme_table())
    replace_table(ROOT / "docs/cli.md", "| Q | JPEG 4:4:4 PSNR |", cli_table())
    print("rewrote the -q tables of README.md and docs/cli.md")
