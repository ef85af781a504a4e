"""From the β a user asks for to the β the network runs at: the runtime map.

`--beta` promises the rate weight of L = D + β·R with real quantization and real bits. The network's
β input was trained against a stand-in (noise for the rate, straight-through rounding for the
distortion), so its operating point at input β is the Lagrangian optimum for some other weight.
For each requested β the encoder therefore runs the network at the β′ that minimizes the real
D + β·R on held-out photos, and stores β′ in the header (the decoder needs nothing else).

The map is a few (β, β′) knots stored in the weights file's metadata, so the weights digest
covers them. They are measured by `training/operating_points.py`; a weights file without knots
runs at the requested β (the identity map).
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from pathlib import Path

from flowcodec_cli import zoo

METADATA_KEY = "operating_points"
SIGNIFICANT_DIGITS = 4      # β′ is rounded so headers and the card stay readable


def rounded(value: float) -> float:
    return float(f"{value:.{SIGNIFICANT_DIGITS}g}")


@dataclass(frozen=True)
class OperatingPoints:
    """A monotone map β → β′, log-log linear between knots, clamped to the model's β range."""

    knots: tuple[tuple[float, float], ...]  # (β, β′), β increasing; empty: the identity
    beta_min: float
    beta_max: float

    def __call__(self, beta: float) -> float:
        import numpy as np  # here, not at import: the command line reads `rounded` before numpy
        if not self.knots:
            return beta
        betas = [math.log(b) for b, _ in self.knots]
        ratios = [math.log(p) - math.log(b) for b, p in self.knots]
        # Between knots the log-ratio β′/β is interpolated; beyond the end knots it is held.
        ratio = float(np.interp(math.log(beta), betas, ratios))
        return rounded(min(self.beta_max, max(self.beta_min, beta * math.exp(ratio))))

    @classmethod
    def from_metadata(cls, metadata: dict, config: dict) -> "OperatingPoints":
        knots = tuple((float(b), float(p)) for b, p in json.loads(metadata.get(METADATA_KEY, "[]")))
        return cls(knots, config["beta_min"], config["beta_max"])


def read(path: Path) -> OperatingPoints:
    """The operating points stored in a weights file (the identity if it has none)."""
    metadata = zoo.read_metadata(path)
    return OperatingPoints.from_metadata(metadata, json.loads(metadata["config"]))
