"""Mixture parameters → integer probability tables → constriction range coder, and back.

This is the only module that imports constriction, and the place where determinism is decided.

Why integer tables: the decoder must rebuild the encoder's tables bit for bit on any machine.
Floating-point CDFs (erf, exp) differ in the last ulp between CPU instruction sets and libraries,
and one flipped probability desynchronizes the range decoder. So the float mixture parameters
are first snapped to coarse grids (mean in 1/16 steps, scale on a 64-level log grid, weights in
1/1024 steps), and every table is then assembled with integer arithmetic from one lookup table of
the standard normal CDF (`cdf_lut`), computed once with Python's `math.erfc` and pinned by a test
to a sha256. The grids are chosen so that snapping costs well under 1% of the rate.

Any integer is codable: each element's table covers a window around its mixture centre wide
enough for all components (4.5 σ), plus one escape symbol. An escaped value is then sent as a
32-bit zigzag integer with a uniform model. Nothing is ever clipped.

Coding order (the decoder mirrors it): elements grouped by window size, smallest first, in
raster order inside a group; then the escaped values in the same order.

The same streams also take integer categorical tables (`categorical.CategoricalTables`, the
VQ-VAE's code indices): a segment of symbols, each under its own row, in order, through the same
constriction `Categorical` and the same strict decoder (segments.py decodes a stream of
segments whose tables depend on the segments before).
"""

from __future__ import annotations

import functools
import hashlib
import math
import zlib
from typing import NamedTuple

import constriction
import numpy as np
import torch

from flowcodec_cli.codec.categorical import CategoricalTables
from flowcodec_cli.errors import CorruptStream, DesyncError  # noqa: F401 - re-exported
from flowcodec_cli.models import mixture

MEAN_STEPS_PER_UNIT = 16           # means are snapped to multiples of 1/16
SCALE_LEVELS = 64                  # scales are snapped to a log grid over [SCALE_MIN, SCALE_MAX]
WEIGHT_TOTAL = 1024                # mixture weights are snapped to multiples of 1/1024
CDF_BITS = 16                      # the normal CDF lookup table holds round(2^16 · Φ)
TAIL_SIGMAS = 4.5                  # Φ(-4.5) · 2^16 < 0.5: beyond this the table is saturated
WINDOW_HALF_WIDTHS = (1, 2, 4, 8, 16, 32, 64, 128, 256, 512)
MEAN_LIMIT = float(1 << 20)        # |mean| clamp (only reachable with forged input)
TABLE_BUDGET = 1 << 22             # table entries built at once (bounds memory, ~100 MB)
ESCAPE_LIMIT = 2**31 - 1           # |value − centre| must stay below this (zigzag in 32 bits)


class QuantizedMixture(NamedTuple):
    """Mixture parameters on their integer grids, each (K, N) for N coded elements."""

    weights: np.ndarray   # int32, in 1/WEIGHT_TOTAL units, each >= 0
    means: np.ndarray     # int32, in 1/MEAN_STEPS_PER_UNIT units (|mean| ≤ 2^24)
    scales: np.ndarray    # int32, index into scale_grid()

    def digest(self, crc: int = 0) -> int:
        """CRC32 of the snapped parameters, continuing `crc` (chained over tiles): stored by the
        encoder, checked by the decoder."""
        for array in self:
            crc = zlib.crc32(np.ascontiguousarray(array, dtype="<i4").tobytes(), crc)
        return crc


def scale_grid() -> np.ndarray:
    """The SCALE_LEVELS representable scales (float64, increasing, log-spaced)."""
    lo, hi = math.log(mixture.SCALE_MIN), math.log(mixture.SCALE_MAX)
    return np.array([math.exp(lo + (hi - lo) * i / (SCALE_LEVELS - 1)) for i in range(SCALE_LEVELS)])


def _max_offset() -> int:
    """Largest |j| in cdf_lut: offsets (in 1/16 units) beyond this are saturated for every scale."""
    return math.ceil(TAIL_SIGMAS * MEAN_STEPS_PER_UNIT * mixture.SCALE_MAX)


@functools.lru_cache(maxsize=1)
def cdf_lut() -> np.ndarray:
    """round(2^CDF_BITS · Φ(j / (16 σ_s))) for every scale level s and offset j in [-J, J].

    Shape (SCALE_LEVELS, 2J+1), int32 (values ≤ 2^16). Built with `math.erfc` (scalar libm, the same on every
    x86-64 and ARM machine we know of) and verified by `lut_digest()` in the test-suite.
    """
    limit = _max_offset()
    one = 1 << CDF_BITS
    table = np.full((SCALE_LEVELS, 2 * limit + 1), one, dtype=np.int32)
    for s, sigma in enumerate(scale_grid()):
        # Only the unsaturated part needs erfc; the lower half is defined by symmetry,
        # T(-j) = 2^16 - T(j), which keeps the table exactly antisymmetric.
        reach = min(limit, math.ceil(TAIL_SIGMAS * MEAN_STEPS_PER_UNIT * sigma))
        denom = MEAN_STEPS_PER_UNIT * sigma * math.sqrt(2.0)
        upper = [math.floor(0.5 * one * math.erfc(-j / denom) + 0.5) for j in range(reach + 1)]
        table[s, limit:limit + reach + 1] = upper
        table[s, :limit + 1] = one - table[s, limit:][::-1]
    return table


def lut_digest() -> str:
    return hashlib.sha256(cdf_lut().astype("<i8").tobytes()).hexdigest()


def quantize_params(logits: np.ndarray, means: np.ndarray, scales: np.ndarray) -> QuantizedMixture:
    """Snap float64 mixture parameters (each (K, N)) onto the integer grids.

    The softmax is computed here in float64 from the network's logits; the network that produced
    them also ran in float64 (see codec.py), so an ulp-level difference between machines is ~1e-16
    relative and practically never moves a value across a grid boundary. If it ever does, the
    parameter digest catches it. Computed with torch (elementwise, on its threads: the result of
    an elementwise operation does not depend on how it is split), sums over components in a fixed
    order.
    """
    logits, means, scales = (torch.from_numpy(np.asarray(a, dtype=np.float64))
                             for a in (logits, means, scales))
    # Only a forged or corrupt file can make the network emit non-finite or absurd values; they
    # are mapped into range so the tables stay well-defined (the parameter CRC then fails).
    logits = torch.nan_to_num(logits, nan=0.0, posinf=MEAN_LIMIT, neginf=-MEAN_LIMIT)
    means = torch.nan_to_num(means, nan=0.0).clamp_(-MEAN_LIMIT, MEAN_LIMIT)
    scales = torch.nan_to_num(scales, nan=mixture.SCALE_MAX).clamp_(mixture.SCALE_MIN, mixture.SCALE_MAX)
    weights = logits.sub_(logits.amax(0, keepdim=True)).exp_()
    weights /= _component_sum(weights)
    # The largest weight is at least 1/K, so every mixture keeps a non-zero quantized weight.
    # int32, exact (the grids stay far below 2^31): what the plan reads and the CRC hashes
    q_weights = weights.mul_(WEIGHT_TOTAL).add_(0.5).floor_().int()
    q_means = means.mul_(MEAN_STEPS_PER_UNIT).add_(0.5).floor_().int()
    lo, hi = math.log(mixture.SCALE_MIN), math.log(mixture.SCALE_MAX)
    position = scales.log_().sub_(lo).div_(hi - lo)
    q_scales = position.mul_(SCALE_LEVELS - 1).add_(0.5).floor_().clamp_(0, SCALE_LEVELS - 1).int()
    return QuantizedMixture(q_weights.numpy(), q_means.numpy(), q_scales.numpy())


def _component_sum(values: torch.Tensor) -> torch.Tensor:
    """Σ_k values[k] in the order k = 0, 1, …: the same float64 sum on every machine."""
    total = values[0].clone()
    for row in values[1:]:
        total += row
    return total


class _Plan(NamedTuple):
    """Where each element sits in the coding order, and where its table rows start."""

    centres: np.ndarray      # (N,) int64, integer centre of the window
    half_widths: np.ndarray  # (N,) int32, one of WINDOW_HALF_WIDTHS
    starts: torch.Tensor     # (K, N) int32, index in phase_lut() of each component's CDF run


@functools.lru_cache(maxsize=1)
def _tail_steps() -> torch.Tensor:
    """ceil(TAIL_SIGMAS · σ_s) in 1/MEAN_STEPS_PER_UNIT units for every scale level s (int32)."""
    return torch.from_numpy(np.ceil(TAIL_SIGMAS * (scale_grid() * MEAN_STEPS_PER_UNIT)).astype(np.int32))


def _plan(q: QuantizedMixture) -> _Plan:
    """Window of each element: centred on the weighted mean, covering every component's tail.
    Integer arithmetic only (int32 torch tensors, int64 weighted sums), all elements at once."""
    steps = MEAN_STEPS_PER_UNIT
    weights, means, scales = (torch.from_numpy(np.asarray(a)).to(torch.int32) for a in q)
    total = weights.sum(0, dtype=torch.int64)
    centre_steps = (weights.to(torch.int64) * means).sum(0)
    # Integer rounding of (weighted mean / steps) to the nearest integer, ties up.
    centres = torch.div(2 * centre_steps + total * steps, 2 * total * steps, rounding_mode="floor")
    centres32 = centres.to(torch.int32)  # |centre| ≤ 2^20 (MEAN_LIMIT)
    reach_steps = (means - centres32 * steps).abs_().add_(_tail_steps()[scales])
    reach_steps = reach_steps.masked_fill_(weights <= 0, 0).amax(0)
    reach = torch.div(reach_steps + steps - 1, steps, rounding_mode="floor") + 1
    widths = torch.tensor(WINDOW_HALF_WIDTHS, dtype=torch.int32)
    half_widths = widths[torch.searchsorted(widths, reach).clamp_(max=len(WINDOW_HALF_WIDTHS) - 1)]
    starts = _run_starts(means, scales, centres32, half_widths)
    return _Plan(centres.numpy(), half_widths.numpy(), starts)


# Half-range of `phase_lut`'s runs, in whole bins (MEAN_STEPS_PER_UNIT table entries each): the
# saturated reach of `cdf_lut` plus the widest window, so that clamping a window's start into the
# range only ever moves a run whose entries are all saturated, which never changes a table.
_PHASE_PAD = -(-_max_offset() // MEAN_STEPS_PER_UNIT) + 2 * WINDOW_HALF_WIDTHS[-1] + 4
_RUN_LENGTH = 2 * _PHASE_PAD + 1


@functools.lru_cache(maxsize=1)
def phase_lut() -> torch.Tensor:
    """`cdf_lut` regrouped by phase, flattened: entry [s, p, m] = cdf_lut at scale s and offset
    MEAN_STEPS_PER_UNIT·(m − _PHASE_PAD) + p (clipped to the table, i.e. saturated).

    Why: bin boundaries are one integer apart, MEAN_STEPS_PER_UNIT entries apart in `cdf_lut`, so
    in this layout one component's CDF at all boundaries of a window is a contiguous run, copied
    by a row index instead of gathered entry by entry (4× faster tables at high rates).
    Pure integer re-indexing of `cdf_lut`: it adds nothing that could differ between machines.
    """
    steps, limit = MEAN_STEPS_PER_UNIT, _max_offset()
    runs = np.arange(-_PHASE_PAD, _PHASE_PAD + 1)
    offsets = steps * runs[None, :] + np.arange(steps)[:, None]          # (phase, m)
    index = np.clip(offsets, -limit, limit) + limit
    return torch.from_numpy(np.ascontiguousarray(cdf_lut()[:, index]).ravel())


def _run_starts(means: torch.Tensor, scales: torch.Tensor, centres: torch.Tensor,
                half_widths: torch.Tensor) -> torch.Tensor:
    """(K, N) start in `phase_lut` of each component's CDF at its element's window boundaries."""
    steps = MEAN_STEPS_PER_UNIT
    # first bin boundary of each window, in 1/steps units: centre − half − 1/2
    first = centres * steps - steps // 2 - steps * half_widths
    offset = first - means                                             # boundary 0 − mean_k
    run = torch.div(offset, steps, rounding_mode="floor")
    phase = offset.sub_(steps * run)
    run = torch.minimum(run, _PHASE_PAD - 2 * half_widths - 1).clamp_(min=-_PHASE_PAD)
    return scales.mul(steps).add_(phase).mul_(_RUN_LENGTH).add_(run).add_(_PHASE_PAD)


def _tables(q: QuantizedMixture, plan: _Plan, select: np.ndarray, half: int) -> np.ndarray:
    """Integer probability rows for the selected elements: (n, 2·half + 2), last column = escape.

    Row = Σ_k w_k · (CDF_k at the window's 2·half + 2 bin boundaries), differenced; the escape
    takes the rest of the total mass. Every entry is >= 1 so every symbol stays codable; rows are
    exact integers (as float64, which represents them exactly), which constriction rescales
    deterministically. Integer arithmetic throughout, so torch's threads cannot change a bit.
    """
    bounds = 2 * half + 2
    runs = phase_lut()
    # every contiguous run of `bounds` entries, as rows of a (overlapping, read-only) view
    windows = runs.as_strided((runs.numel() - bounds + 1, bounds), (1, 1))
    chosen = torch.from_numpy(select)
    weights = torch.from_numpy(q.weights).index_select(1, chosen).to(torch.int32)
    rows = windows.index_select(0, plan.starts.index_select(1, chosen).flatten())  # whole rows
    rows = rows.view(-1, chosen.numel(), bounds)                                # (K, n, bounds)
    # int32 is exact: weights ≤ 2^10 times CDF values ≤ 2^16, summed over K = 3.
    rows.mul_(weights[:, :, None])
    cdf = rows[0]
    for component in rows[1:]:
        cdf += component
    table = torch.empty((chosen.numel(), bounds), dtype=torch.float64)
    torch.sub(cdf[:, 1:], cdf[:, :-1], out=table[:, :-1])
    table[:, -1] = _component_sum(weights) * (1 << CDF_BITS) - (cdf[:, -1] - cdf[:, 0])
    return table.add_(1).numpy()


def _groups(plan: _Plan):
    """(half-width, element indices) in coding order, in chunks of at most TABLE_BUDGET entries:
    any image size costs the same peak memory, and the bitstream is the same (constriction's
    queue coder concatenates consecutive encode calls seamlessly)."""
    for half in WINDOW_HALF_WIDTHS:
        select = np.flatnonzero(plan.half_widths == half)
        chunk = max(1, TABLE_BUDGET // (2 * half + 2))
        for start in range(0, select.size, chunk):
            yield half, select[start:start + chunk]


def _zigzag(v: np.ndarray) -> np.ndarray:
    return np.where(v >= 0, 2 * v, -2 * v - 1).astype(np.uint64)


def _unzigzag(u: np.ndarray) -> np.ndarray:
    u = u.astype(np.int64)
    return np.where(u % 2 == 0, u // 2, -(u + 1) // 2)


_UNIFORM_16 = constriction.stream.model.Uniform(1 << 16)


def _categorical():
    return constriction.stream.model.Categorical(perfect=False)


def _encode_segment(encoder, values: np.ndarray, q: QuantizedMixture) -> None:
    """Append integer `values` (N,) under the snapped mixtures `q` to a range encoder: the
    in-window symbols group by group, then the escaped values' 32-bit residuals."""
    values = np.asarray(values, dtype=np.int64)
    plan = _plan(q)
    escaped_positions = []
    for half, select in _groups(plan):
        offset = values[select] - plan.centres[select]
        escape = np.abs(offset) > half
        symbols = np.where(escape, 2 * half + 1, offset + half).astype(np.int32)
        encoder.encode(symbols, _categorical(), _tables(q, plan, select, half))
        escaped_positions.append(select[escape])
    escaped = np.concatenate(escaped_positions) if escaped_positions else np.empty(0, np.int64)
    if escaped.size:
        residual = values[escaped] - plan.centres[escaped]
        if np.abs(residual).max() > ESCAPE_LIMIT:
            raise OverflowError("latent value out of the codable range (|v| >= 2^31)")
        zz = _zigzag(residual)
        halves = np.stack([zz >> 16, zz & 0xFFFF], axis=1).reshape(-1).astype(np.int32)
        encoder.encode(halves, _UNIFORM_16)


def _chunks(tables: CategoricalTables):
    """(rows, their float64 frequencies) of a categorical segment, TABLE_BUDGET entries at a time
    (the float copy constriction takes stays bounded; consecutive calls code as one). C order:
    constriction reads a column-major array's memory as if it were row-major."""
    count, codes = tables.freqs.shape
    step = max(1, TABLE_BUDGET // codes)
    for start in range(0, count, step):
        rows = slice(start, start + step)
        yield rows, np.ascontiguousarray(tables.freqs[rows], dtype=np.float64)


def _encode_symbols(encoder, symbols: np.ndarray, tables: CategoricalTables) -> None:
    """Append symbols (N,), symbol i under row i of `tables`, to a range encoder."""
    symbols = np.asarray(symbols, dtype=np.int64)
    if symbols.shape != tables.freqs.shape[:1] or np.any(symbols < 0) \
            or np.any(symbols >= tables.freqs.shape[1]):
        raise ValueError(f"symbols {symbols.shape} do not fit tables {tables.freqs.shape}")
    for rows, probabilities in _chunks(tables):
        encoder.encode(symbols[rows].astype(np.int32), _categorical(), probabilities)


class StreamEncoder:
    """One range-coded stream written in segments, each under its own tables (the channel slices
    of a context model, whose tables depend on the segments before). One segment is `encode`,
    under snapped mixtures (integer values) or categorical tables (symbols 0 … K−1)."""

    def __init__(self):
        self._encoder = constriction.stream.queue.RangeEncoder()

    def encode(self, values: np.ndarray, q: QuantizedMixture | CategoricalTables) -> None:
        if isinstance(q, CategoricalTables):
            _encode_symbols(self._encoder, values, q)
        else:
            _encode_segment(self._encoder, values, q)

    def bytes(self) -> bytes:
        return self._encoder.get_compressed().astype("<u4").tobytes()


def encode(values: np.ndarray, q: QuantizedMixture) -> bytes:
    """Range-code integer `values` (N,) under the snapped mixtures; returns little-endian bytes."""
    stream = StreamEncoder()
    stream.encode(values, q)
    return stream.bytes()


class StreamDecoder:
    """The mirror of StreamEncoder: segments are decoded in order, each under the tables the
    caller builds from the segments before; `finish` checks the whole stream.

    The range decoder cannot tell where a stream ends, so a damaged stream would decode to other
    values without complaint. Range coding is deterministic, so the decoder re-encodes what it
    decoded with the tables it already built, and the stream must be exactly that encoding: a
    truncated, extended or emptied stream always fails, a flipped byte almost always (a damaged
    stream can be, by chance, the exact encoding of other values; tests/test_entropy.py measures
    how rarely). Every failure is a CorruptStream."""

    def __init__(self, data: bytes):
        if len(data) % 4:
            raise CorruptStream("its length is not a multiple of 4 bytes")
        self._data = data
        self._decoder = constriction.stream.queue.RangeDecoder(
            np.frombuffer(data, dtype="<u4").astype(np.uint32))
        self._check = constriction.stream.queue.RangeEncoder()

    def decode(self, q: QuantizedMixture | CategoricalTables) -> np.ndarray:
        """The next segment's integer values (N,) under the snapped mixtures or categorical
        tables `q`."""
        try:
            return self._decode_segment(q)
        except (AssertionError, ValueError, RuntimeError, OverflowError) as exc:  # constriction
            raise CorruptStream(str(exc) or type(exc).__name__) from None

    def finish(self) -> None:
        """Refuse the stream unless it is exactly the encoding of what was decoded from it."""
        if self._check.get_compressed().astype("<u4").tobytes() != self._data:
            raise CorruptStream("it is not the encoding of what it decodes to")

    def _decode_segment(self, q: QuantizedMixture | CategoricalTables) -> np.ndarray:
        if isinstance(q, CategoricalTables):
            return self._decode_symbols(q)
        plan = _plan(q)
        values = np.zeros(plan.centres.size, dtype=np.int64)
        escaped_positions = []
        for half, select in _groups(plan):
            tables = _tables(q, plan, select, half)
            symbols = self._decoder.decode(_categorical(), tables)
            self._check.encode(symbols, _categorical(), tables)
            symbols = symbols.astype(np.int64)
            values[select] = plan.centres[select] + symbols - half
            escaped_positions.append(select[symbols == 2 * half + 1])
        escaped = np.concatenate(escaped_positions) if escaped_positions else np.empty(0, np.int64)
        if escaped.size:
            halves = self._decoder.decode(_UNIFORM_16, 2 * escaped.size)
            self._check.encode(halves, _UNIFORM_16)
            halves = halves.astype(np.uint64).reshape(-1, 2)
            values[escaped] = plan.centres[escaped] + _unzigzag((halves[:, 0] << 16) | halves[:, 1])
        return values

    def _decode_symbols(self, tables: CategoricalTables) -> np.ndarray:
        symbols = np.zeros(tables.freqs.shape[0], dtype=np.int64)
        for rows, probabilities in _chunks(tables):
            symbols[rows] = part = self._decoder.decode(_categorical(), probabilities)
            self._check.encode(part, _categorical(), probabilities)
        return symbols


def decode(data: bytes, q: QuantizedMixture) -> np.ndarray:
    """Mirror of `encode`: bytes + the same snapped mixtures -> integer values (N,); raises
    CorruptStream unless the stream is exactly their encoding (see StreamDecoder)."""
    stream = StreamDecoder(data)
    values = stream.decode(q)
    stream.finish()
    return values
