"""What the encoder's rate-distortion optimized rounding (codec/rdoq.py) costs, A/B in one
process so that the machine's mood cancels: Kodak images 1-8 at β 0.0001 (the slowest rate) on 2
threads, each encoded with the rounding and with nearest rounding in turn; the decode of each file
is the control. Prints the median seconds of each.

    python scripts/rdoq_speed.py      (pause other work on the machine first)
"""

from __future__ import annotations

import statistics
import time
from pathlib import Path

import torch

from flowcodec_cli import codec
from flowcodec_cli.files import images
from flowcodec_cli.models.flow import FlowCodec

KODAK = Path(__file__).resolve().parents[1] / ".." / "shared" / "data" / "kodak"
BETA = 0.0001


def seconds(fn) -> tuple[float, object]:
    start = time.perf_counter()
    result = fn()
    return time.perf_counter() - start, result


def main() -> None:
    torch.set_num_threads(2)
    pictures = [images.read_image(KODAK / f"kodim{i:02d}.png") for i in range(1, 9)]
    codec.encode(pictures[0], BETA)  # load the weights outside the timing
    times = {"encode, rate-distortion rounding": [], "encode, nearest rounding": [], "decode": []}
    for picture in pictures:
        for rounding, label in ((True, "encode, rate-distortion rounding"),
                                (False, "encode, nearest rounding")):
            FlowCodec.rdoq = rounding
            spent, (data, _) = seconds(lambda: codec.encode(picture, BETA))
            times[label].append(spent)
        times["decode"].append(seconds(lambda: codec.decode(data))[0])
    FlowCodec.rdoq = True
    for label, values in times.items():
        print(f"{label}: median {statistics.median(values):.3f} s", [round(v, 2) for v in values])


if __name__ == "__main__":
    main()
