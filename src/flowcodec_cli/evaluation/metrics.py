"""Image quality metrics and Bjøntegaard deltas, the numbers `flowcodec bench` reports.

Conventions follow CompressAI's Kodak result files, so that our curves can be laid next to the
published ones without a conversion step:

* PSNR-RGB: 10·log10(255² / MSE), the MSE taken over all H·W·3 samples of the 8-bit images.
* MS-SSIM-RGB: the 5-scale MS-SSIM of Wang, Simoncelli & Bovik (2003) on float RGB in [0, 255]
  (data range 255), 11-tap Gaussian window with σ = 1.5, weights
  (0.0448, 0.2856, 0.3001, 0.2363, 0.1333), computed per channel and averaged over the channels.
  We call `pytorch_msssim`, the implementation CompressAI itself uses, rather than writing our
  own: the published MS-SSIM numbers were made with it, and a second implementation would differ
  in details (padding when halving odd sizes, clamping of negative terms) by more than the
  differences we want to see.
* SSIMULACRA2 (Cloudinary / libjxl, 2022): a perceptual score from 100 (identical) down, below 0
  for very strong distortion; 90 is visually lossless, 70 high quality, 50 medium, 30 low. It is
  computed on sRGB → linear → XYB over 6 scales, so it sees colour and compression artifacts
  (ringing, blocking, blurring) that PSNR and MS-SSIM weigh poorly. We call the `ssimulacra2`
  package, an optional extra (`pip install 'flowcodec-cli[metrics]'`): a numpy/scipy port of
  libjxl's tool that needs no weights and no network. It follows the C++ tool step by step but
  is not bit-exact with it (an exact Gaussian blur instead of the recursive one, and a different
  edge rule when halving odd sizes). Without the package the score is None.
* All are per image; a data set's figure is the arithmetic mean of per-image values.

Bjøntegaard deltas compare two rate-distortion curves by their average gap over the quality
(BD-rate) or rate (BD-PSNR) interval where both are defined. Each curve is a list of
(bpp, quality) points. Two ways of drawing a curve through the points are offered:

* ``"cubic"``: the original VCEG-M33 method (Bjøntegaard 2001): a least-squares cubic polynomial
  in log-rate. It is what most learned-compression papers quote.
* ``"pchip"``: piecewise cubic Hermite interpolation (Fritsch & Carlson), as in Bjøntegaard's
  later update of the method and the JVET common-test-condition spreadsheets. It passes through
  every point and cannot overshoot, so it behaves on curves with many or unevenly spaced points
  where a single cubic can wiggle. Implemented with numpy alone (no scipy dependency); its
  integrals match scipy's `PchipInterpolator` to 1e-14.
"""

from __future__ import annotations

import io
import math
from collections.abc import Sequence

import numpy as np

from flowcodec_cli.codec.picture import check_rgb_pair, psnr  # noqa: F401 - metrics.psnr is public

Curve = Sequence[tuple[float, float]]

MS_SSIM_WEIGHTS = (0.0448, 0.2856, 0.3001, 0.2363, 0.1333)
MS_SSIM_WIN_SIZE = 11
MS_SSIM_WIN_SIGMA = 1.5
# The 11-tap window must fit inside the image at the coarsest of the 5 scales, i.e. after four
# halvings: the smaller side must exceed (11 - 1) * 2**4 = 160 pixels.
MS_SSIM_MIN_SIDE = (MS_SSIM_WIN_SIZE - 1) * 2 ** (len(MS_SSIM_WEIGHTS) - 1) + 1


def ms_ssim(a: np.ndarray, b: np.ndarray) -> float | None:
    """5-scale MS-SSIM between two HxWx3 uint8 RGB images, or None if the image is too small.

    Returns None when the smaller side is below `MS_SSIM_MIN_SIDE` (161 px): at five scales the
    11-tap window no longer fits, and a variant with fewer scales or a smaller window would be a
    different metric whose values cannot be compared with published MS-SSIM. Callers print
    "n/a" instead.
    """
    check_rgb_pair(a, b)
    if min(a.shape[:2]) < MS_SSIM_MIN_SIDE:
        return None
    import torch  # local: keeps `import flowcodec_cli.metrics` light for the PSNR/BD users
    from pytorch_msssim import ms_ssim as _ms_ssim

    def to_tensor(x: np.ndarray) -> torch.Tensor:  # HxWx3 uint8 -> (1, 3, H, W) float32 0..255
        return torch.from_numpy(np.ascontiguousarray(x.transpose(2, 0, 1))).float()[None]

    with torch.no_grad():
        value = _ms_ssim(to_tensor(a), to_tensor(b), data_range=255.0, size_average=True,
                         win_size=MS_SSIM_WIN_SIZE, win_sigma=MS_SSIM_WIN_SIGMA,
                         weights=list(MS_SSIM_WEIGHTS))
    return float(value)


SSIMULACRA2_MIN_SIDE = 8
"""libjxl's tool refuses smaller images; the port would return 100 for them (no scale fits)."""


def ssimulacra2_unavailable() -> str | None:
    """Why SSIMULACRA2 cannot be computed here (the optional package is missing or broken), or
    None when it can: bench says so once per run instead of once per point."""
    try:
        import ssimulacra2  # noqa: F401
    except ImportError as exc:
        if getattr(exc, "name", None) == "ssimulacra2":
            return "the ssimulacra2 package is not installed"
        return f"the ssimulacra2 package does not import ({exc})"
    return None


def _as_file(rgb: np.ndarray) -> io.BytesIO:
    """An in-memory PPM of the image: the package only reads images through `PIL.Image.open`,
    and a lossless in-memory file spares a temporary folder (about 3 ms for 768x512)."""
    from PIL import Image
    buf = io.BytesIO()
    Image.fromarray(rgb).save(buf, format="PPM")
    buf.seek(0)
    return buf


def ssimulacra2(a: np.ndarray, b: np.ndarray) -> float | None:
    """SSIMULACRA2 of `b` against the original `a` (HxWx3 uint8 RGB), or None when the optional
    package is not installed or a side is below `SSIMULACRA2_MIN_SIDE`. About 0.8 s for a
    768x512 image on one core, four to five times MS-SSIM."""
    check_rgb_pair(a, b)
    if min(a.shape[:2]) < SSIMULACRA2_MIN_SIDE or ssimulacra2_unavailable() is not None:
        return None
    from ssimulacra2 import compute_ssimulacra2
    return float(compute_ssimulacra2(_as_file(a), _as_file(b)))


# --- Bjøntegaard deltas ---------------------------------------------------------------------


def _as_arrays(curve: Curve) -> tuple[np.ndarray, np.ndarray]:
    pts = np.asarray(curve, dtype=np.float64)
    if pts.ndim != 2 or pts.shape[1] != 2:
        raise ValueError("a curve is a list of (bpp, quality) pairs")
    if not np.all(np.isfinite(pts)) or np.any(pts[:, 0] <= 0):
        raise ValueError("curve points must be finite with bpp > 0")
    return pts[:, 0], pts[:, 1]


def _pchip_slopes(x: np.ndarray, y: np.ndarray) -> np.ndarray:
    """Fritsch-Carlson derivatives at the knots: the ones that keep each piece monotone."""
    h = np.diff(x)
    delta = np.diff(y) / h
    if len(x) == 2:
        return np.array([delta[0], delta[0]])
    d = np.zeros_like(y)
    # Interior knots: weighted harmonic mean of the neighbouring secant slopes, or 0 at a
    # local extremum (slopes of opposite sign, or a flat piece) so that nothing overshoots.
    w1 = 2 * h[1:] + h[:-1]
    w2 = h[1:] + 2 * h[:-1]
    same_sign = np.sign(delta[:-1]) * np.sign(delta[1:]) > 0
    with np.errstate(divide="ignore", invalid="ignore"):
        harmonic = (w1 + w2) / (w1 / delta[:-1] + w2 / delta[1:])
    d[1:-1] = np.where(same_sign, harmonic, 0.0)
    # End knots: one-sided three-point estimate, clamped to stay shape preserving.
    for end, (h0, h1, d0, d1) in ((0, (h[0], h[1], delta[0], delta[1])),
                                  (-1, (h[-1], h[-2], delta[-1], delta[-2]))):
        s = ((2 * h0 + h1) * d0 - h0 * d1) / (h0 + h1)
        if np.sign(s) != np.sign(d0):
            s = 0.0
        elif np.sign(d0) != np.sign(d1) and abs(s) > abs(3 * d0):
            s = 3 * d0
        d[end] = s
    return d


def _pchip_integral(x: np.ndarray, y: np.ndarray, lo: float, hi: float) -> float:
    """Exact integral over [lo, hi] (inside [x0, xn]) of the PCHIP interpolant through (x, y)."""
    d = _pchip_slopes(x, y)
    h = np.diff(x)
    delta = np.diff(y) / h
    # Each piece as y_k + c1 t + c2 t² + c3 t³ with t = x - x_k.
    c1 = d[:-1]
    c2 = (3 * delta - 2 * d[:-1] - d[1:]) / h
    c3 = (d[:-1] + d[1:] - 2 * delta) / h ** 2
    total = 0.0
    for k in range(len(h)):
        a, b = max(lo, x[k]), min(hi, x[k + 1])
        if b <= a:
            continue

        def antiderivative(t: float) -> float:
            return y[k] * t + c1[k] * t ** 2 / 2 + c2[k] * t ** 3 / 3 + c3[k] * t ** 4 / 4

        total += antiderivative(b - x[k]) - antiderivative(a - x[k])
    return float(total)


def _mean_over(x: np.ndarray, y: np.ndarray, lo: float, hi: float, method: str) -> float:
    """Mean of the curve y(x), drawn through the points by `method`, over [lo, hi]."""
    order = np.argsort(x)
    x, y = x[order], y[order]
    if method == "cubic":
        if len(x) < 4:
            raise ValueError("the cubic (VCEG-M33) fit needs at least 4 points per curve")
        p = np.polyint(np.polyfit(x, y, 3))
        integral = np.polyval(p, hi) - np.polyval(p, lo)
    elif method == "pchip":
        if len(x) < 2:
            raise ValueError("pchip needs at least 2 points per curve")
        if np.any(np.diff(x) <= 0):
            raise ValueError("pchip needs distinct abscissae (no two points at the same value)")
        integral = _pchip_integral(x, y, lo, hi)
    else:
        raise ValueError(f"unknown method {method!r}; use 'cubic' or 'pchip'")
    return float(integral) / (hi - lo)


def _overlap(u: np.ndarray, v: np.ndarray) -> tuple[float, float] | None:
    lo, hi = max(u.min(), v.min()), min(u.max(), v.max())
    return (float(lo), float(hi)) if hi > lo else None


def bd_rate(curve_a: Curve, curve_ref: Curve, method: str = "cubic") -> float | None:
    """Average bit-rate difference of `curve_a` against `curve_ref` at equal quality, in percent.

    Negative means `curve_a` needs fewer bits (-50.0: half the rate). log(rate) is modelled as a
    function of quality for each curve, the two are averaged over the quality interval both
    curves cover, and the mean log-rate gap is turned back into a ratio. Working in log-rate
    makes a constant rate ratio a constant offset, which is why that ratio is recovered exactly.
    Returns None when the quality ranges do not overlap (there is nothing to compare).
    """
    rate_a, q_a = _as_arrays(curve_a)
    rate_r, q_r = _as_arrays(curve_ref)
    span = _overlap(q_a, q_r)
    if span is None:
        return None
    gap = (_mean_over(q_a, np.log(rate_a), *span, method)
           - _mean_over(q_r, np.log(rate_r), *span, method))
    return (math.exp(gap) - 1.0) * 100.0


def bd_psnr(curve_a: Curve, curve_ref: Curve, method: str = "cubic") -> float | None:
    """Average quality gain of `curve_a` over `curve_ref` at equal rate (dB for PSNR curves).

    Quality is modelled as a function of log(rate), and the two curves are averaged over the
    log-rate interval both cover. Positive means `curve_a` is better. Works for any quality
    measure (MS-SSIM too, then in MS-SSIM units). Returns None when the rate ranges do not
    overlap.
    """
    rate_a, q_a = _as_arrays(curve_a)
    rate_r, q_r = _as_arrays(curve_ref)
    log_a, log_r = np.log(rate_a), np.log(rate_r)
    span = _overlap(log_a, log_r)
    if span is None:
        return None
    return _mean_over(log_a, q_a, *span, method) - _mean_over(log_r, q_r, *span, method)
