"""Joint source–channel coding at run time: which weights, and one simulated transmission of an
image over an AWGN channel (`flowcodec channel`, `flowcodec bench --channel`). The model and the
channel are models/channel.py; docs/channel.md says what is measured and how.

Weights: a `flowcodec train --model flow-channel` file given by path; else the zoo's entry
trained for the requested ratio, or `zoo.CHANNEL_MODEL` (verified like every zoo model); without
one, the verified `flow` weights wrapped in the channel model, whose receiver is then untrained:
the MMSE baseline. A `flow` weights file given by path is wrapped the same way.

Reproducible: the noise comes from a torch.Generator seeded with `seed` (the same noise for every
SNR, scaled: common random numbers, so a sweep's curve is not jagged by the draws), and the
transforms run without oneDNN like the codec's (codec/pipeline.py), so the same image, SNR,
ratio, seed and weights give the same pixels with any thread count.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from flowcodec_cli import zoo
from flowcodec_cli.codec.picture import psnr
from flowcodec_cli.codec.pipeline import deterministic
from flowcodec_cli.codec.tiles import image_tensor, to_rgb
from flowcodec_cli.errors import WeightsError
from flowcodec_cli.models import build_model
from flowcodec_cli.models.channel import ChannelCodec, awgn, parse_ratio

SWEEP_SNRS = tuple(float(s) for s in range(0, 21, 2))
"""`--sweep`: 0, 2, ..., 20 dB."""


@dataclass(frozen=True)
class ChannelWeights:
    """A loaded channel model and what it is, for reports."""

    model: ChannelCodec
    name: str          # "flow-channel", "flow (untrained receiver)" or a file name
    sha256: str
    trained: bool      # False: the receiver is the untrained MMSE baseline


_NEW_PARTS = ("latent_mean", "latent_log_std", "power_log_gain", "receiver.")


def _wrap(path: Path, sha: str, label: str, config: dict, tensors: dict) -> ChannelWeights:
    """Flow weights in the channel model: every flow tensor loads, the new parts keep their
    initialization (the MMSE baseline)."""
    model = build_model(ChannelCodec.name, config)
    missing, unexpected = model.load_state_dict(tensors, strict=False)
    if unexpected or any(not key.startswith(_NEW_PARTS) for key in missing):
        raise WeightsError(f"{path.name}: does not fit the channel model (missing {missing}, "
                           f"unexpected {unexpected})")
    return ChannelWeights(model.eval(), label, sha, trained=False)


def registered(ratio=None) -> str | None:
    """The zoo's JSCC entry for a bandwidth ratio: the one trained for it, else CHANNEL_MODEL
    (None when neither is registered)."""
    try:
        wanted = None if ratio is None else parse_ratio(ratio)
    except ValueError:  # refused with its usage message by whoever sends at that ratio
        wanted = None
    if wanted is not None:
        for entry in zoo.REGISTRY.values():
            if entry.channel and entry.ratio and parse_ratio(entry.ratio) == wanted:
                return entry.name
    return zoo.CHANNEL_MODEL if zoo.CHANNEL_MODEL in zoo.REGISTRY else None


def load(weights: str | Path | None = None, ratio=None) -> ChannelWeights:
    """The channel model (module docstring): `weights`, else the zoo's entry for `ratio`
    (`registered`). Raises WeightsError when weights are missing, fail their check, or hold
    another architecture."""
    name = registered(ratio) if weights is None else None
    if name is not None:
        model, sha = zoo.load(name)
        return ChannelWeights(model, name, sha, trained=True)
    if weights is None:
        path, sha = zoo.verify("flow")
        _, config, tensors = zoo.load_state(path)
        return _wrap(path, sha, "flow (untrained receiver)", config, tensors)
    path = Path(weights)
    if not path.is_file():
        raise WeightsError(f"weights file {path} not found")
    sha = zoo.sha256_file(path)
    architecture, config, tensors = zoo.load_state(path)
    if architecture == "flow":
        return _wrap(path, sha, f"{path.name} (untrained receiver)", config, tensors)
    if architecture != ChannelCodec.name:
        raise WeightsError(f"{path.name} holds a {architecture!r} model, expected "
                           f"{ChannelCodec.name!r} or 'flow'")
    model = build_model(architecture, config)
    missing, unexpected = model.load_state_dict(tensors, strict=False)
    if missing or unexpected:
        raise WeightsError(f"{path.name}: missing keys {missing}, unexpected keys {unexpected}")
    return ChannelWeights(model.eval(), path.name, sha, trained=True)


@dataclass
class Received:
    """One transmission of one image at one SNR."""

    snr_db: float
    rgb: np.ndarray        # (H, W, 3) uint8, what the receiver shows
    psnr: float
    seconds: float         # receiver (MMSE, f_φ, f⁻¹) for this SNR
    send_seconds: float    # transmitter (f, power normalization), once per image


@dataclass(frozen=True)
class Budget:
    """What a transmission of an image uses: k channel uses for n = 3·H·W pixel values. k
    counts the padded latents (H and W rounded up to the flow's stride), so for sizes that are
    not multiples of it k/n is a little above the nominal ratio."""

    sent_channels: int
    latent_channels: int
    channel_uses: int
    pixel_values: int

    @property
    def effective_ratio(self) -> float:
        return self.channel_uses / self.pixel_values


def budget(model: ChannelCodec, height: int, width: int, ratio=None) -> Budget:
    s = model.latent_stride
    positions = -(-height // s) * -(-width // s)
    sent = model.sent_channels(ratio)
    return Budget(sent, model.config.latent_channels, sent * positions, 3 * height * width)


@deterministic
def transmit(model: ChannelCodec, rgb: np.ndarray, snrs, ratio=None,
             seed: int = 0) -> list[Received]:
    """Send one image (H, W, 3) uint8 once and receive it at each SNR in dB, with the noise of
    `seed` (module docstring). Raises ValueError for an unsupported ratio."""
    model.sent_channels(ratio)  # refuse a bad ratio before any work
    height, width = rgb.shape[:2]
    start = time.perf_counter()
    x = image_tensor(rgb, model.latent_stride)
    v, scale = model.send(model.latents(x), ratio)
    send_seconds = time.perf_counter() - start
    received = []
    for snr in snrs:
        start = time.perf_counter()
        snr_db = torch.tensor([float(snr)])
        r = awgn(v, snr_db, torch.Generator().manual_seed(seed))
        x_hat = model.reconstruct(model.receive(r, scale, snr_db, ratio))
        out = to_rgb(x_hat[0, :, :height, :width])
        received.append(Received(float(snr), out, psnr(rgb, out),
                                 time.perf_counter() - start, send_seconds))
    return received
