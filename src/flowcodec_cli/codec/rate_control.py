"""Size and quality targets: find the β that gives a file of a wanted size, bpp or PSNR.

A learned codec has no closed form from β to bytes: the rate depends on the image. So, like the
classical encoders' size targets (`cwebp -size`, `cjpeg`-style two-pass tools), every candidate is
a real encode (and, for a PSNR target, a real decode), and the search walks β until the measured
value is within tolerance: 1% of the size, 0.05 dB of the PSNR. Size and PSNR both fall as β
grows, smoothly in log β, so the search is a bracketing secant method in log β: the first guess
comes from the model's typical curve on held-out photos (codec/quality.py), extrapolation uses the
last two probes (or a typical slope), and once the target is bracketed the next probe
interpolates between the bracket's ends. Probes whose network β′ (the header's β) would repeat
an earlier one are not coded twice, and a target beyond the model's range stops at the range's
end. The file kept is the closest probe; every probe is reported.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np

from flowcodec_cli.codec import pipeline, quality
from flowcodec_cli.codec.loaded import LoadedCodec
from flowcodec_cli.codec.operating_points import rounded
from flowcodec_cli.codec.picture import Picture, psnr
from flowcodec_cli.codec.rate_request import Target  # noqa: F401 - rate_control.Target is public
from flowcodec_cli.errors import CodecError

MAX_PROBES = 8
# Typical slopes on held-out photos (docs/operating_points/flow.json): d log(bytes) / d log β
# and d PSNR / d log β, used until two probes give the image's own slope.
TYPICAL_LOG_SIZE_SLOPE = -0.5
TYPICAL_PSNR_SLOPE_DB = -2.7


@dataclass
class Probe:
    beta: float              # the β asked for
    network_beta: float      # the header's β
    bytes: int
    psnr: float | None
    data: bytes = field(repr=False)
    stats: pipeline.EncodeStats = field(repr=False)

    def record(self) -> dict:
        out = {"beta": self.beta, "network_beta": self.network_beta, "bytes": self.bytes}
        if self.psnr is not None:
            out["psnr"] = round(self.psnr, 4)
        return out


@dataclass
class Search:
    """The outcome: the probe kept, every probe, and whether the target was met."""

    best: Probe
    probes: list[Probe]
    reached: bool

    def record(self) -> dict:
        return {"reached": self.reached, "probes": [p.record() for p in self.probes]}


def encode_to_target(picture: Picture, target: Target, model_name: str, device: str = "cpu",
                     side_info: Picture | None = None, effort: int = 0) -> Search:
    """Encode `picture` at the β whose file meets `target` (see the module docstring)."""
    codec = LoadedCodec.get(model_name)
    lo_beta, hi_beta = codec.model.config.beta_min, codec.model.config.beta_max
    pixels = picture.rgb.shape[0] * picture.rgb.shape[1]
    goal = target.goal(pixels)

    def measure(beta: float) -> Probe:
        data, stats = pipeline.encode(picture, beta, model_name, device=device,
                                      side_info=side_info, effort=effort)
        quality_db = None
        if target.needs_decode:
            quality_db = psnr(picture.rgb, pipeline.decode(data, side_info=side_info,
                                                           device=device).rgb)
        return Probe(beta, stats.network_beta, len(data), quality_db, data, stats)

    def value(probe: Probe) -> float:
        return probe.psnr if target.needs_decode else math.log(probe.bytes)

    probes: list[Probe] = []
    x = math.log(_first_guess(model_name, target, pixels, lo_beta, hi_beta))
    while len(probes) < MAX_PROBES:
        beta = rounded(min(hi_beta, max(lo_beta, math.exp(x))))
        if any(p.network_beta == codec.network_beta(beta) for p in probes):
            break  # no β left between the probes: the closest one is as good as it gets
        probes.append(measure(beta))
        if target.within(value(probes[-1]), goal):
            break
        x = _next_log_beta(probes, value, goal, target.kind)
    best = min(probes, key=lambda p: _miss(value(p), goal))
    return Search(best, probes, target.within(value(best), goal))


def _miss(measured: float, goal: float) -> float:
    return abs(measured - goal)


def _first_guess(model_name: str, target: Target, pixels: int, lo: float, hi: float) -> float:
    """β from the model's typical curve on held-out photos, or the middle of its range."""
    try:
        log_betas = [math.log(b) for _, b in quality.knots(model_name)]
        typical = quality.typical(model_name)
    except CodecError:
        return math.sqrt(lo * hi)
    if target.kind == "psnr":
        measured, wanted = [row[2] for row in typical], target.value
    else:
        measured = [math.log(row[1]) for row in typical]
        wanted = target.goal(pixels) - math.log(pixels / 8)  # log bpp
    # Both columns grow with Q (and β falls): interpolate against the measured column.
    return math.exp(float(np.interp(wanted, measured, log_betas)))


def _next_log_beta(probes: list[Probe], value, goal: float, kind: str) -> float:
    """The next log β: interpolation inside the tightest bracket if the target is bracketed,
    else a secant step from the last two probes (or the typical slope from one)."""
    points = sorted((math.log(p.beta), value(p)) for p in probes)
    above = [pt for pt in points if pt[1] > goal]   # too large a file / too good: raise β
    below = [pt for pt in points if pt[1] < goal]
    if above and below:
        (x0, y0), (x1, y1) = max(above), min(below)
        return x0 + (y0 - goal) / (y0 - y1) * (x1 - x0)  # y0 > goal > y1
    last = math.log(probes[-1].beta), value(probes[-1])
    slope = TYPICAL_PSNR_SLOPE_DB if kind == "psnr" else TYPICAL_LOG_SIZE_SLOPE
    if len(probes) >= 2:
        prev = math.log(probes[-2].beta), value(probes[-2])
        if prev[0] != last[0] and (last[1] - prev[1]) / (last[0] - prev[0]) < 0:
            slope = (last[1] - prev[1]) / (last[0] - prev[0])
    step = (goal - last[1]) / slope
    return last[0] + max(-3.0, min(3.0, step))  # at most a factor e³ per step
