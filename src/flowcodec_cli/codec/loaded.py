"""A verified model prepared for coding: float32 transforms, and a float64 copy of its entropy
model that turns ẑ into snapped probability tables identically on every machine.

Determinism: everything that feeds a probability table (h_s, the hyper gains, the factorized prior
of z; the VQ-VAE's index prior and the contexts it reads) runs on the CPU in float64 and is
snapped to integer grids in `entropy.py` (`categorical.py` for the VQ-VAE). The transforms
run in float32: the analysis only on the encoder, and the synthesis after all entropy decoding,
where a last-ulp difference can no longer desynchronize anything.

A model that `codes_indices` (the VQ-VAE) has no entropy model: `tables` is then a float64 copy of
the whole model, which `indices.py` asks for its prior's logits, and the methods below about ẑ,
slices and mixtures do not apply to it.
"""

from __future__ import annotations

import copy
import threading
from typing import NamedTuple

import numpy as np
import torch

from flowcodec_cli import zoo
from flowcodec_cli.codec import entropy, fcx, operating_points
from flowcodec_cli.errors import CodecError
from flowcodec_cli.models import mixture
from flowcodec_cli.models.context import checkerboard_half, checkerboard_place


class LoadedCodec:
    """One registered model, verified and loaded once per process (`get`) and shared by its
    threads: loading and the per-device copies happen under one lock, and coding changes
    nothing of it (eval mode; refinement takes gradients of the latents only)."""

    _cache: dict[str, "LoadedCodec"] = {}
    _lock = threading.Lock()

    def __init__(self, name: str):
        self.name = name
        if name in zoo.REGISTRY and zoo.REGISTRY[name].channel:
            raise CodecError(f"{name} is a channel (JSCC) model, not a file codec: "
                             "use `flowcodec channel`")
        self.model, sha = zoo.load(name)
        self.digest = bytes.fromhex(sha)[:fcx.DIGEST_BYTES]
        self.indexed = getattr(self.model, "codes_indices", False)
        if self.indexed:
            # β chooses a stage count; the header carries the middle β of that count (vqvae.py)
            self.network_beta = self.model.network_beta
            self.tables = self.model.for_coding()
        else:
            # requested β → the β the network runs at, measured for these weights
            # (operating_points.py)
            self.network_beta = operating_points.read(zoo.weights_path(name))
            self.tables = self.model.entropy_model.for_coding()
        self._on_device: dict = {}

    @classmethod
    def get(cls, name: str) -> "LoadedCodec":
        with cls._lock:
            if name not in cls._cache:
                cls._cache[name] = LoadedCodec(name)
            return cls._cache[name]

    def transforms(self, device: str):
        """The float32 model on `device` (analysis and synthesis run there; tables stay on the CPU)."""
        if device == "cpu":
            return self.model
        if device == "cuda" and not torch.cuda.is_available():
            raise CodecError("--device cuda: no CUDA device is available on this machine")
        with self._lock:  # threads share one copy per device (`get` never holds it while here)
            if device not in self._on_device:
                self._on_device[device] = copy.deepcopy(self.model).to(device)
            return self._on_device[device]

    def z_shape(self, height: int, width: int) -> torch.Size:
        """The shape of ẑ for a tile of height × width pixels."""
        stride = self.model.stride
        return torch.Size([1, self.model.config.hyper_channels, -(-height // stride), -(-width // stride)])

    def z_tables(self, z_shape: torch.Size) -> entropy.QuantizedMixture:
        """The factorized prior of z at every position: snapped (K, C·H·W) grids, raster order."""
        return _snapped(self.tables.z_prior(z_shape, torch.float64))

    @property
    def segment_count(self) -> int:
        """A tile's y stream is coded in this many segments: one per channel slice (one slice
        without a context model), two per slice with the checkerboard (docs/format.md §4.2)."""
        return self.tables.slice_count * self.tables.phases

    def segments(self, raw: torch.Tensor) -> "TileSegments":
        """The segments of the tile whose h_s output is `raw`, in coding order."""
        return TileSegments(self.tables, raw)

    @torch.no_grad()
    def hyper_params(self, z_hat: torch.Tensor, beta: float) -> torch.Tensor:
        """h_s's float64 output for integer ẑ (1, C, H, W): what every slice's tables start from."""
        return self.tables.hyper_params(z_hat.double(), torch.tensor([beta], dtype=torch.float64))

    @staticmethod
    def y_tables(params: mixture.MixtureParams) -> entropy.QuantizedMixture:
        return _snapped(params)

    @torch.no_grad()
    def refined(self, y_hat: torch.Tensor) -> torch.Tensor:
        """The float32 latents the synthesis decodes: ŷ plus the predicted residual, if any. In
        float32 like the synthesis it feeds: it never touches a table."""
        return self.model.entropy_model.refined(y_hat.float())

    @torch.no_grad()
    def y_bits(self, values: torch.Tensor, params: mixture.MixtureParams) -> float:
        """The model's information content of (a slice of) ŷ: the range coder writes it ±1%."""
        return float(self.tables.y_bits(values, params)[0])

    @torch.no_grad()
    def z_bits(self, z_hat: torch.Tensor) -> float:
        return float(self.tables.z_bits(z_hat, torch.float64)[0])


class Segment(NamedTuple):
    """One coded segment of a tile's y stream: a slice's channels, all their positions (`half`
    None) or, with the checkerboard, one half of them (0: the anchors, 1: the rest). Its values
    are (1, c, n): C order, each channel's positions in raster order."""
    channels: torch.Tensor | slice
    half: int | None

    def values(self, latents: torch.Tensor) -> torch.Tensor:
        """The segment's elements of latents (1, C, H, W), as (1, c, n)."""
        part = latents[:, self.channels]
        return part.flatten(2) if self.half is None else checkerboard_half(part, self.half)

    def store(self, latents: torch.Tensor, values: torch.Tensor) -> None:
        """Write the segment's values (any shape of c·n elements) into latents, in place."""
        part = latents[:, self.channels]  # latents' own view, or an indexed copy
        if self.half is None:
            part.copy_(values.reshape(part.shape))
        else:
            checkerboard_place(part, values.reshape(*part.shape[:2], -1).to(part.dtype), self.half)
        latents[:, self.channels] = part


class TileSegments:
    """A tile's y stream, segment by segment: each segment and its float64 mixtures, given ŷ as
    coded so far. A checkerboard slice's two halves start from the same channel-corrected
    parameters, computed once (else the context networks, float64 and as costly as the spatial
    ones, would run twice per slice). One per tile and thread: it keeps the current slice's."""

    def __init__(self, tables, raw: torch.Tensor):
        self.tables, self.raw = tables, raw
        self._slice, self._corrected = -1, None

    @torch.no_grad()
    def __call__(self, y_hat: torch.Tensor, k: int) -> tuple[Segment, mixture.MixtureParams]:
        """Segment `k` and its elements' mixtures (1, K, c, n), from ŷ's segments before it."""
        index, phase = divmod(k, self.tables.phases)
        y_hat = y_hat.double()
        if index != self._slice:
            self._slice, self._corrected = index, self.tables.channel_raw(self.raw, y_hat, index)
        half, params = self.tables.phase_prior(self._corrected, y_hat, index, phase)
        return Segment(self.tables.slice_channels(index), half), params


def _snapped(params: mixture.MixtureParams) -> entropy.QuantizedMixture:
    """(1, K, C, H, W) float64 parameters → integer grids of (K, C·H·W) for the range coder."""
    k = params.logits.shape[1]
    return entropy.quantize_params(*(np.ascontiguousarray(p[0].reshape(k, -1).numpy())
                                     for p in params))
