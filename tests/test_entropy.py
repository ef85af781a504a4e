"""Property tests of the entropy coder: decoded equals encoded, any integer is codable, real bits
track the model's bits, and the tables are pinned bit for bit."""

import math

import numpy as np
import pytest

from flowcodec_cli.codec import entropy

# sha256 of the integer normal-CDF table every encoder and decoder builds. If this changes, every
# existing .fcx file becomes undecodable: treat a failure here as a format break, never "update".
LUT_SHA256 = "d4c84a9f11cf6110a69f636b4368a5132ac100dc7c45629e94c204f7409c0bd5"


def random_mixture(rng, n, k=3, max_scale=8.0, mean_spread=2.0):
    logits = rng.normal(size=(k, n))
    means = rng.normal(size=(k, n)) * mean_spread
    scales = np.exp(rng.uniform(math.log(0.05), math.log(max_scale), size=(k, n)))
    return logits, means, scales


def sample(rng, logits, means, scales):
    weights = np.exp(logits - logits.max(0))
    weights /= weights.sum(0)
    n = logits.shape[1]
    component = (rng.random(n)[None, :] > np.cumsum(weights, 0)).sum(0).clip(0, logits.shape[0] - 1)
    cols = np.arange(n)
    return np.round(means[component, cols] + scales[component, cols] * rng.normal(size=n)).astype(np.int64)


def ideal_bits(values, logits, means, scales):
    erf = np.vectorize(math.erf)
    weights = np.exp(logits - logits.max(0))
    weights /= weights.sum(0)
    cdf = lambda v: 0.5 * (1 + erf((v[None, :] - means) / (scales * math.sqrt(2))))
    p = (weights * (cdf(values + 0.5) - cdf(values - 0.5))).sum(0)
    return float(-np.log2(np.maximum(p, 1e-12)).sum())


def test_lut_is_pinned():
    assert entropy.lut_digest() == LUT_SHA256


def test_lut_is_monotone_and_antisymmetric():
    table = entropy.cdf_lut()
    assert (np.diff(table, axis=1) >= 0).all()
    assert (table + table[:, ::-1] == 1 << entropy.CDF_BITS).all()


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_round_trip_random_mixtures(seed):
    rng = np.random.default_rng(seed)
    params = random_mixture(rng, 5000, max_scale=40.0 if seed == 2 else 8.0)
    values = sample(rng, *params)
    q = entropy.quantize_params(*params)
    decoded = entropy.decode(entropy.encode(values, q), q)
    np.testing.assert_array_equal(decoded, values)


def test_any_integer_is_codable():
    """Values far outside every window take the escape path and still come back exactly."""
    rng = np.random.default_rng(3)
    params = random_mixture(rng, 200, max_scale=1.0)
    values = sample(rng, *params)
    values[[0, 1, 2, 3, 4]] = [10**6, -(10**6), 2**31 - 10, -(2**31) + 10, 513]
    q = entropy.quantize_params(*params)
    np.testing.assert_array_equal(entropy.decode(entropy.encode(values, q), q), values)


def test_values_beyond_32_bits_are_refused_not_clipped():
    rng = np.random.default_rng(4)
    params = random_mixture(rng, 10)
    values = np.zeros(10, dtype=np.int64)
    values[3] = 2**40
    with pytest.raises(OverflowError):
        entropy.encode(values, entropy.quantize_params(*params))


def test_real_bits_track_model_bits():
    """Snapping to the grids and the coder's fixed point cost < 1% over the float model."""
    rng = np.random.default_rng(5)
    params = random_mixture(rng, 20000)
    values = sample(rng, *params)
    real = 8 * len(entropy.encode(values, entropy.quantize_params(*params)))
    ideal = ideal_bits(values, *params)
    assert ideal <= real * 1.001
    assert real < ideal * 1.01


def test_encoding_is_deterministic_and_sensitive_to_tables():
    rng = np.random.default_rng(6)
    params = random_mixture(rng, 3000)
    values = sample(rng, *params)
    q = entropy.quantize_params(*params)
    assert entropy.encode(values, q) == entropy.encode(values, q)
    logits, means, scales = params
    shifted = entropy.quantize_params(logits, means + 0.25, scales)
    assert shifted.digest() != q.digest()


def test_empty_stream_of_wrong_length_is_an_error():
    rng = np.random.default_rng(7)
    q = entropy.quantize_params(*random_mixture(rng, 10))
    with pytest.raises(ValueError):
        entropy.decode(b"abc", q)


def reference_tables(q, plan, select, half):
    """The probability rows computed the plain way: every component's CDF gathered entry by entry
    from cdf_lut at the window's bin boundaries (clipped to the table), weighted and summed."""
    lut, limit, steps = entropy.cdf_lut(), entropy._max_offset(), entropy.MEAN_STEPS_PER_UNIT
    bounds = (plan.centres[select, None] + np.arange(-half, half + 2)[None, :]) * steps - steps // 2
    cdf = np.zeros(bounds.shape, dtype=np.int64)
    for k in range(q.weights.shape[0]):
        offsets = np.clip(bounds - q.means[k, select, None], -limit, limit) + limit
        cdf += q.weights[k, select, None] * lut[q.scales[k, select, None], offsets]
    escape = q.weights[:, select].sum(0) * (1 << entropy.CDF_BITS) - (cdf[:, -1] - cdf[:, 0])
    return np.concatenate([np.diff(cdf, axis=1), escape[:, None]], axis=1) + 1


@pytest.mark.parametrize("seed", [0, 1])
def test_tables_equal_the_plain_mixture_cdf(seed):
    """The fast table builder (contiguous runs of the phase-regrouped LUT, clamped starts) gives
    exactly the integers of the direct formula, for every window width, including components far
    outside their window and the clamped extremes of the parameter grids."""
    rng = np.random.default_rng(seed)
    wide = random_mixture(rng, 3000, max_scale=80.0, mean_spread=60.0)
    narrow = random_mixture(rng, 3000, max_scale=3.0, mean_spread=1.0)
    logits, means, scales = (np.concatenate(pair, axis=1) for pair in zip(wide, narrow))
    means[:, :50] = rng.choice([-1, 1], size=(3, 50)) * 2.0 ** 21   # clamped to MEAN_LIMIT
    logits[0, 50:100] = -1e4                                            # a zero-weight component
    means[0, 50:100] = 5e4
    q = entropy.quantize_params(logits, means, scales)
    plan = entropy._plan(q)
    seen = set()
    for half, select in entropy._groups(plan):
        seen.add(half)
        np.testing.assert_array_equal(entropy._tables(q, plan, select, half),
                                      reference_tables(q, plan, select, half))
    assert seen == set(entropy.WINDOW_HALF_WIDTHS[1:])  # even SCALE_MIN reaches past ±1


def reference_snap(logits, means, scales):
    """The grids of the module docstring, the plain numpy way (what quantize_params computes)."""
    from flowcodec_cli.models import mixture
    logits = np.nan_to_num(logits, nan=0.0, posinf=entropy.MEAN_LIMIT, neginf=-entropy.MEAN_LIMIT)
    weights = np.exp(logits - logits.max(0))
    weights /= weights.sum(0)
    means = np.clip(np.nan_to_num(means, nan=0.0), -entropy.MEAN_LIMIT, entropy.MEAN_LIMIT)
    scales = np.clip(np.nan_to_num(scales, nan=mixture.SCALE_MAX), mixture.SCALE_MIN, mixture.SCALE_MAX)
    lo, hi = math.log(mixture.SCALE_MIN), math.log(mixture.SCALE_MAX)
    position = (np.log(scales) - lo) / (hi - lo)
    return (np.floor(weights * entropy.WEIGHT_TOTAL + 0.5), np.floor(means * 16 + 0.5),
            np.clip(np.floor(position * (entropy.SCALE_LEVELS - 1) + 0.5), 0, entropy.SCALE_LEVELS - 1))


def reference_plan(q):
    """Window centre (weighted mean, rounded, ties up) and the smallest half-width that covers
    every weighted component to TAIL_SIGMAS, in float64 as the format describes it."""
    steps = entropy.MEAN_STEPS_PER_UNIT
    weights, means = q.weights.astype(np.float64), q.means.astype(np.float64)  # exact
    centres = np.floor((weights * means).sum(0) / weights.sum(0) / steps + 0.5)
    sigma = entropy.scale_grid()[q.scales] * steps
    reach = np.abs(means - centres * steps) + np.ceil(entropy.TAIL_SIGMAS * sigma)
    reach = np.ceil(np.where(weights > 0, reach, 0).max(0) / steps) + 1
    widths = np.array(entropy.WINDOW_HALF_WIDTHS)
    return centres, widths[np.minimum(np.searchsorted(widths, reach), len(widths) - 1)]


@pytest.mark.parametrize("seed", [0, 1])
def test_snapping_and_windows_equal_the_plain_formulas(seed):
    """quantize_params and the window plan (torch, all elements at once) give exactly the numbers
    of the plain formulas, including non-finite and out-of-range parameters of forged files."""
    rng = np.random.default_rng(seed)
    logits, means, scales = random_mixture(rng, 20000, max_scale=90.0, mean_spread=40.0)
    logits[0, :30], means[1, 30:60], scales[2, 60:90] = np.nan, np.inf, np.nan
    logits[1, 90:120], means[0, 120:150], scales[0, 150:180] = -np.inf, -1e30, 1e-30
    q = entropy.quantize_params(logits, means, scales)
    for got, want in zip(q, reference_snap(logits, means, scales)):
        np.testing.assert_array_equal(got, want)
    centres, half_widths = reference_plan(q)
    plan = entropy._plan(q)
    np.testing.assert_array_equal(plan.centres, centres)
    np.testing.assert_array_equal(plan.half_widths, half_widths)


# --- a damaged stream is refused, never decoded to other values --------------------------------


@pytest.fixture(scope="module")
def coded_stream():
    """A few hundred symbols (some escaped) under snapped tables, and their stream."""
    rng = np.random.default_rng(8)
    params = random_mixture(rng, 300)
    values = sample(rng, *params)
    values[[7, 150]] = [700, -5000]  # the escape path's words are part of the stream too
    q = entropy.quantize_params(*params)
    return values, q, entropy.encode(values, q)


def test_valid_stream_decodes_exactly(coded_stream):
    values, q, data = coded_stream
    assert len(data) >= 64 and len(data) % 4 == 0
    np.testing.assert_array_equal(entropy.decode(data, q), values)


def flip_middle_byte(data: bytes) -> bytes:
    bad = bytearray(data)
    bad[len(bad) // 2] ^= 0xFF
    return bytes(bad)


DAMAGE = {
    "byte flipped in the middle": flip_middle_byte,
    "last word dropped": lambda d: d[:-4],
    "zero word appended": lambda d: d + bytes(4),
    "word appended": lambda d: d + b"\x12\x34\x56\x78",
    "empty": lambda d: b"",
    "first word only": lambda d: d[:4],
}


@pytest.mark.parametrize("kind", DAMAGE)
def test_damaged_stream_is_refused(coded_stream, kind):
    _, q, data = coded_stream
    bad = DAMAGE[kind](data)
    assert bad != data
    with pytest.raises(entropy.CorruptStream):
        entropy.decode(bad, q)
    assert issubclass(entropy.CorruptStream, ValueError)


@pytest.fixture(scope="module")
def flip_outcomes(coded_stream):
    """Decode the stream with each of its bytes inverted in turn: 'refused' (CorruptStream),
    'accepted' (decoded; the values must then differ), or the name of any other exception."""
    values, q, data = coded_stream
    outcomes = []
    for i in range(len(data)):
        bad = bytearray(data)
        bad[i] ^= 0xFF
        try:
            decoded = entropy.decode(bytes(bad), q)
        except entropy.CorruptStream:
            outcomes.append("refused")
            continue
        except Exception as exc:  # noqa: BLE001 - reported by test_damage_raises_only_corrupt_stream
            outcomes.append(type(exc).__name__)
            continue
        outcomes.append("accepted")
        assert not np.array_equal(decoded, values)  # two streams never decode to the same values
    return outcomes


def test_most_single_byte_flips_are_refused(flip_outcomes):
    """The re-encoding check is exact, but a near-optimal coder has little redundancy: a damaged
    stream can be the valid encoding of other values (none of this stream's 112 inverted bytes
    is, but 6 of 300 single-bit and single-byte flips of a similar stream were). The file's
    CRC32, not this check, is what catches accidents."""
    assert flip_outcomes.count("accepted") <= 0.05 * len(flip_outcomes)


def test_damage_raises_only_corrupt_stream(flip_outcomes):
    """constriction's own errors on a broken stream (e.g. an AssertionError 'invalid for the
    employed entropy model') reach callers as CorruptStream, the one error of the contract."""
    assert set(flip_outcomes) <= {"refused", "accepted"}
