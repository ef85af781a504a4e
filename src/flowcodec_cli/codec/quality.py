"""The quality scale `-q Q` (0-100, higher is better): Q → the β a model runs at.

Q means what it means to a JPEG user: at quality Q a model aims for the PSNR that libjpeg reaches
at quality Q on the same photos, so equal Q gives about equal PSNR across models
(`training/quality_map.py` measures the map on held-out photos and says how). The map is a few
(Q, β) knots per model in `data/quality.json`, each measured on one weights file, whose sha256 it
records: weights shipped without re-measuring the map are refused rather than given a scale that
belongs to other weights. Between knots, log β is linear in Q; the map is monotone (a higher Q
never gives a larger β).

Pure Python: the command line resolves Q before it loads torch.
"""

from __future__ import annotations

import json
import math
from bisect import bisect_right
from functools import lru_cache
from pathlib import Path

from flowcodec_cli import zoo
from flowcodec_cli.codec.operating_points import rounded
from flowcodec_cli.errors import CodecError

DATA_PATH = Path(__file__).resolve().parents[1] / "data" / "quality.json"
Q_MIN, Q_MAX = 0.0, 100.0


@lru_cache(maxsize=1)
def _measured() -> dict:
    return json.loads(DATA_PATH.read_text())


def models() -> set[str]:
    """The models that have a quality scale."""
    return set(_measured()["models"])


def knots(model_name: str) -> list[tuple[float, float]]:
    """The (Q, β) knots of a registered model; CodecError if it has no scale for its weights."""
    entry = _measured()["models"].get(model_name)
    if entry is None:
        raise CodecError(f"model {model_name} has no quality scale (-q); use --beta")
    if entry["sha256"] != zoo.REGISTRY[model_name].sha256:
        raise CodecError(f"the quality scale of {model_name} was measured on other weights "
                         "(rerun training/quality_map.py); use --beta")
    return [(float(q), float(b)) for q, b in entry["knots"]]


def beta_for_quality(model_name: str, q: float) -> float:
    """The β of quality q for a model: log-linear between the measured knots."""
    if not Q_MIN <= q <= Q_MAX:
        raise ValueError(f"quality {q} outside [{Q_MIN:g}, {Q_MAX:g}]")
    points = knots(model_name)
    i = min(max(bisect_right([k for k, _ in points], q), 1), len(points) - 1)
    (q0, b0), (q1, b1) = points[i - 1], points[i]
    t = (q - q0) / (q1 - q0)
    return rounded(math.exp((1 - t) * math.log(b0) + t * math.log(b1)))


def typical(model_name: str) -> list[tuple[int, float, float]]:
    """(Q, bpp, PSNR) of the measured knots on the held-out photos: what to expect."""
    return [tuple(row) for row in _measured()["models"][model_name]["typical_bpp_psnr"]]
