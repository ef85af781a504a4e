"""How a caller sets the rate of an encode: one of a quality (the -q scale), a β, or a per-image
target (size, bpp, PSNR), and what happens when none is given. The one rule that the command
line (`-q`, `--beta`, `--target-*`) and the Python API (`quality=`, `beta=`, `target_*=`) share,
so the two cannot drift apart; each names the options its own way in the messages (`Spelling`).

Pure Python until a file is coded: the rate is resolved, and a contradictory or impossible
request refused, before torch is imported (the command line refuses before reading any file).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import NamedTuple

from flowcodec_cli import zoo
from flowcodec_cli.errors import CodecError

DEFAULT_QUALITY = 75   # cjpeg's and cwebp's default
DEFAULT_BETA = 0.005   # models without a quality scale (the side-information models)
TARGET_KINDS = ("size", "bpp", "psnr")
SIZE_TOLERANCE = 0.01        # relative, for size and bpp targets
PSNR_TOLERANCE_DB = 0.05


@dataclass(frozen=True)
class Target:
    """What the user asked for: "size" (bytes), "bpp" or "psnr" (dB), per image."""

    kind: str
    value: float

    def __post_init__(self):
        if self.kind not in TARGET_KINDS:
            raise ValueError(f"unknown target {self.kind!r}")
        if not (self.value > 0 and math.isfinite(self.value)):
            raise ValueError(f"--target-{self.kind} must be a positive number, got {self.value}")

    @property
    def needs_decode(self) -> bool:
        return self.kind == "psnr"

    def goal(self, pixels: int) -> float:
        """The target on the search's scale: log bytes for size and bpp, dB for PSNR."""
        if self.kind == "psnr":
            return self.value
        size = self.value if self.kind == "size" else self.value * pixels / 8
        return math.log(size)

    def within(self, measured: float, goal: float) -> bool:
        if self.kind == "psnr":
            return abs(measured - goal) <= PSNR_TOLERANCE_DB
        return abs(math.exp(measured - goal) - 1) <= SIZE_TOLERANCE


class Spelling(NamedTuple):
    """How a front end names the ways to set the rate, for its messages."""
    quality: str
    beta: str
    target: str   # a format string for the target's kind


CLI = Spelling("-q/--quality", "--beta", "--target-{}")
PYTHON = Spelling("quality", "beta", "target_{}")


class RateRequest(NamedTuple):
    """The rate resolved: a β (from a quality, a β or the default) or a per-image target."""
    beta: float | None
    quality: float | None
    target: Target | None


def resolve(model: str, quality: float | None = None, beta: float | None = None,
            targets: dict[str, float | None] | None = None,
            spelling: Spelling = PYTHON) -> RateRequest:
    """At most one way to set the rate; a quality (or the default one) becomes the model's β.
    Raises ValueError for a contradictory or out-of-range request (a usage error), CodecError
    or WeightsError for an unknown model or one without a quality scale."""
    targets = {kind: value for kind, value in (targets or {}).items() if value is not None}
    given = [name for name, value in ((spelling.quality, quality), (spelling.beta, beta))
             if value is not None] + [spelling.target.format(kind) for kind in targets]
    if len(given) > 1:
        raise ValueError(f"{' and '.join(given)} both set the rate: give one")
    zoo.weights_path(model)  # an unknown model: WeightsError naming the known ones
    if targets:
        (kind, value), = targets.items()
        return RateRequest(None, None, Target(kind, float(value)))
    if beta is not None:
        return RateRequest(float(beta), None, None)
    return _from_quality(model, quality, spelling)


def _from_quality(model: str, quality: float | None, spelling: Spelling) -> RateRequest:
    """The β of a quality, or of the default one; the default β for a model without a scale."""
    from flowcodec_cli.codec import quality as scale
    if quality is None and model not in scale.models():
        return RateRequest(DEFAULT_BETA, None, None)
    quality = DEFAULT_QUALITY if quality is None else quality
    try:
        return RateRequest(scale.beta_for_quality(model, quality), quality, None)
    except CodecError as exc:  # no scale for this model, or for these weights
        raise CodecError(f"{spelling.quality}: {exc}") from None


def encode(picture, rate: RateRequest, model: str, device: str = "cpu", side_info=None,
           effort: int = 0):
    """Code a picture at the requested rate: (bytes, EncodeStats, the target search or None).
    The one place that chooses between a plain encode and a target search."""
    from flowcodec_cli.codec import pipeline, rate_control
    if rate.target is None:
        data, stats = pipeline.encode(picture, rate.beta, model, device=device,
                                      side_info=side_info, effort=effort)
        return data, stats, None
    search = rate_control.encode_to_target(picture, rate.target, model, device=device,
                                           side_info=side_info, effort=effort)
    return search.best.data, search.best.stats, search
