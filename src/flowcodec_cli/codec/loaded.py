"""A verified model prepared for coding: float32 transforms, and a float64 copy of its entropy
model that turns ẑ into snapped probability tables identically on every machine.

Determinism: everything that feeds a probability table (h_s, the hyper gains, the factorized prior
of z) runs on the CPU in float64 and is snapped to integer grids in `entropy.py`. The transforms
run in float32: the analysis only on the encoder, and the synthesis after all entropy decoding,
where a last-ulp difference can no longer desynchronize anything.
"""

from __future__ import annotations

import copy
import threading

import numpy as np
import torch

from flowcodec_cli import zoo
from flowcodec_cli.codec import entropy, fcx, operating_points
from flowcodec_cli.errors import CodecError
from flowcodec_cli.models import mixture


class LoadedCodec:
    """One registered model, verified and loaded once per process (`get`)."""

    _cache: dict[str, "LoadedCodec"] = {}
    _lock = threading.Lock()

    def __init__(self, name: str):
        self.name = name
        self.model, sha = zoo.load(name)
        # requested β → the β the network runs at, measured for these weights (operating_points.py)
        self.network_beta = operating_points.read(zoo.weights_path(name))
        self.digest = bytes.fromhex(sha)[:fcx.DIGEST_BYTES]
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

    @torch.no_grad()
    def y_params(self, z_hat: torch.Tensor, beta: float) -> mixture.MixtureParams:
        """Float64 mixture parameters of ŷ, each (1, K, C, H, W), from integer ẑ (1, C, H, W)."""
        return self.tables.y_prior(z_hat.double(), torch.tensor([beta], dtype=torch.float64))

    @staticmethod
    def y_tables(params: mixture.MixtureParams) -> entropy.QuantizedMixture:
        return _snapped(params)

    @torch.no_grad()
    def estimated_bits(self, y_hat: torch.Tensor, z_hat: torch.Tensor,
                       y_params: mixture.MixtureParams) -> float:
        """The model's information content of a tile's ŷ and ẑ (what the range coder writes, ±1%)."""
        y_bits, z_bits = self.tables.rounded_bits(y_hat, z_hat, y_params)
        return float(y_bits[0] + z_bits[0])


def _snapped(params: mixture.MixtureParams) -> entropy.QuantizedMixture:
    """(1, K, C, H, W) float64 parameters → integer grids of (K, C·H·W) for the range coder."""
    k = params.logits.shape[1]
    return entropy.quantize_params(*(np.ascontiguousarray(p[0].reshape(k, -1).numpy())
                                     for p in params))
