"""Logits → integer categorical tables, identical on every machine: the tables of the VQ-VAE's
code indices (codec/indices.py), the categorical counterpart of entropy.py's mixture tables.

Why the same care as the mixtures: the decoder must rebuild the encoder's tables bit for bit, and
one flipped frequency desynchronizes the range decoder. The logits come from a float64 network on
the CPU (loaded.py); here they are snapped to multiples of 1/LOGIT_STEPS nats, and everything
after the snapping is integer arithmetic and one lookup table of exp (`exp_lut`, built once with
Python's scalar `math.exp` and pinned by a test to a sha256, like entropy.cdf_lut). So the one
floating-point step that decides a table is the snapping: two machines can only disagree on a
logit that lies within a few ulps of a snapping boundary (an odd multiple of 1/(2·LOGIT_STEPS)),
and then the tables' digest, chained into the header's params CRC, makes the decoder refuse.

Each row of K frequencies sums to exactly 2^FREQ_BITS, and every symbol gets at least 1, so any
index stays codable (at most FREQ_BITS bits). With w_i = exp_lut[max_j s_j − s_i] (s the snapped
logits, so w_i = 2^EXP_BITS · e^(−(max − s_i)/LOGIT_STEPS), rounded):

    f_i = 1 + ⌊w_i · (2^FREQ_BITS − K) / Σ_j w_j⌋,   and the remainder (< K) goes to the first
                                                        most probable symbol.

What this costs against the float prior: the snapping moves a probability by at most a factor
e^(±1/(2·LOGIT_STEPS)), and the floor of 1 per symbol reserves K/2^FREQ_BITS of the mass
(0.4% for K = 256): ~0.01 bits per index, measured by tests/test_vqvae_codec.py.
"""

from __future__ import annotations

import functools
import hashlib
import math
import zlib
from typing import NamedTuple

import numpy as np
import torch

LOGIT_STEPS = 32        # logits are snapped to multiples of 1/32 nat
EXP_BITS = 24           # exp_lut holds round(2^24 · e^(−j/LOGIT_STEPS))
FREQ_BITS = 16          # every row of frequencies sums to 2^16
LOGIT_LIMIT = 1e6       # |logit| clamp (only a broken network gets near it)


class CategoricalTables(NamedTuple):
    """Integer frequencies (N, K) int64 of N coded symbols over K values, each row summing to
    2^FREQ_BITS, every entry ≥ 1. What entropy.StreamEncoder codes a segment of indices with."""

    freqs: np.ndarray

    def digest(self, crc: int = 0) -> int:
        """CRC32 of the frequencies (little-endian int32, row by row), continuing `crc`: chained
        into the header's params CRC like QuantizedMixture.digest."""
        return zlib.crc32(np.ascontiguousarray(self.freqs, dtype="<i4").tobytes(), crc)


@functools.lru_cache(maxsize=1)
def exp_lut() -> torch.Tensor:
    """round(2^EXP_BITS · e^(−j/LOGIT_STEPS)) for j = 0, 1, … up to the first 0 (int64): the
    weight of a symbol j grid steps below the row's largest logit; anything further is 0."""
    one = 1 << EXP_BITS
    values, j = [], 0
    while not values or values[-1]:
        values.append(math.floor(one * math.exp(-j / LOGIT_STEPS) + 0.5))
        j += 1
    return torch.tensor(values, dtype=torch.int64)


def lut_digest() -> str:
    return hashlib.sha256(exp_lut().numpy().astype("<i8").tobytes()).hexdigest()


def snap(logits: np.ndarray) -> torch.Tensor:
    """Float logits (N, K) → int64 multiples of 1/LOGIT_STEPS (round half up). The only
    floating-point step that decides a table: elementwise, so no thread count changes it."""
    x = torch.from_numpy(np.asarray(logits, dtype=np.float64))
    x = torch.nan_to_num(x, nan=0.0, posinf=LOGIT_LIMIT, neginf=-LOGIT_LIMIT)
    return x.clamp(-LOGIT_LIMIT, LOGIT_LIMIT).mul(LOGIT_STEPS).add_(0.5).floor_().long()


def tables(logits: np.ndarray) -> CategoricalTables:
    """Float logits (N, K), one row per coded symbol → its integer frequencies (the module
    docstring has the formula). Integer arithmetic over all rows at once."""
    snapped = snap(logits)
    count, codes = snapped.shape
    total = 1 << FREQ_BITS
    if not 1 < codes <= total // 2:
        raise ValueError(f"{codes} symbols: categorical tables code 2 to {total // 2}")
    lut = exp_lut()
    top = snapped.amax(1, keepdim=True)
    weights = lut[(top - snapped).clamp_(max=len(lut) - 1)]          # (N, K), ≤ 2^EXP_BITS
    # ≤ 2^EXP_BITS · 2^FREQ_BITS per product: exact in int64
    freqs = weights.mul(total - codes).div_(weights.sum(1, keepdim=True), rounding_mode="floor")
    freqs.add_(1)
    first_top = (snapped == top).long().argmax(1)                     # the first maximum
    freqs[torch.arange(count), first_top] += total - freqs.sum(1)
    return CategoricalTables(np.ascontiguousarray(freqs.numpy()))


def bits(logits: torch.Tensor, symbols: torch.Tensor) -> float:
    """The float prior's information content of `symbols` (N,) under `logits` (N, K), in bits:
    what the coded stream should cost, up to the tables' rounding."""
    log_p = torch.log_softmax(logits.double(), dim=1).gather(1, symbols.long()[:, None])
    return float(-log_p.sum() / math.log(2))
