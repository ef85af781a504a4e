"""Curves and Bjøntegaard deltas from the measured points.

Curves: per codec and setting (per model and β), the mean over images of bpp, of PSNR (the mean
of per-image PSNRs, the convention of the published anchors), of MS-SSIM (converted to dB as
-10·log10(1 - mean MS-SSIM) for plots and BD), of SSIMULACRA2 (None for a setting where any
point lacks it: the `metrics` extra was missing when it was measured), and the median
encode/decode seconds per image.
The first job that really ran for each codec is a warm-up (model loading, first-call costs):
it is left out of the medians unless it is the only point.

Bjøntegaard deltas (metrics.bd_rate / bd_psnr) of every model curve against every other model,
every classical curve measured in the run, and every reference curve shipped in anchors.py
(published ones and our measured classical ones, both over the 24 Kodak images), for PSNR, for
MS-SSIM in dB and for SSIMULACRA2 (no shipped curve has SSIMULACRA2, so it is compared between
the curves of the run only). The method is the cubic VCEG-M33 fit by default (`--bd-method
pchip` for piecewise cubic Hermite); a pair where either curve has fewer than the 4 points a
cubic fit needs falls back to pchip, and the method actually used is recorded with every figure.
"""

from __future__ import annotations

import statistics

import numpy as np

from flowcodec_cli.evaluation import anchors
from flowcodec_cli.evaluation import metrics
from flowcodec_cli.evaluation.bench.measure import ms_ssim_db
from flowcodec_cli.evaluation.bench.plan import Codec

BD_METRICS = ("psnr", "ms_ssim_db", "ssimulacra2")
"""The quality axes of the BD figures, each a key of a curve row and of a bench.json BD entry."""


def _median(values: list[float]) -> float | None:
    return float(statistics.median(values)) if values else None


def _mean(values: list[float | None]) -> float | None:
    """Mean of the values, None if any is missing (a partial mean would be a different set)."""
    if not values or any(v is None for v in values):
        return None
    return float(np.mean(values))


def _timed(points: list[dict]) -> list[dict]:
    """The points whose timings count: all but warm-ups, unless only warm-ups exist."""
    return [p for p in points if not p["warmup"]] or points


def build_curves(codecs: list[Codec], points: list[dict], n_images: int) -> dict[str, dict]:
    """`build_curve` for every codec that has points, keyed by codec."""
    curves = {}
    for codec in codecs:
        mine = [p for p in points if p["codec"] == codec.key]
        if mine:
            curves[codec.key] = build_curve(codec, mine, n_images)
    return curves


def _model_columns(row: dict, group: list[dict], setting: float) -> None:
    """The rate split of a model's curve point: payload, estimate, their ratio, container."""
    # points cached before operating points existed ran the network at the setting itself
    row["network_beta"] = group[0].get("network_beta", setting)
    row["bpp_payload"] = float(np.mean([p["bpp_payload"] for p in group]))
    row["bpp_estimated"] = float(np.mean([p["bpp_estimated"] for p in group]))
    estimated = sum(p["estimated_bits"] for p in group)
    row["payload_over_estimate"] = (sum(p["payload_bits"] for p in group) / estimated
                                    if estimated > 0 else None)
    row["container_bytes"] = float(np.mean([p["container_bytes"] for p in group]))


def _curve_row(codec: Codec, setting: float, group: list[dict], n_images: int) -> dict:
    timed = _timed(group)
    row = {
        "setting": setting,
        "images": len(group),
        "complete": len(group) == n_images,
        "bpp": float(np.mean([p["bpp_file"] for p in group])),
        "psnr": _mean([p["psnr"] for p in group]),
        "ms_ssim": _mean([p["ms_ssim"] for p in group]),
        # .get: points cached before SSIMULACRA2 was measured have no such key
        "ssimulacra2": _mean([p.get("ssimulacra2") for p in group]),
        "median_encode_s": _median([p["encode_s"] for p in timed]),
        "median_decode_s": _median([p["decode_s"] for p in timed]),
    }
    row["ms_ssim_db"] = ms_ssim_db(row["ms_ssim"])
    if codec.kind == "model":
        _model_columns(row, group, setting)
    return row


def _speed(points: list[dict]) -> dict:
    timed = _timed(points)
    return {
        "median_encode_s": _median([p["encode_s"] for p in timed]),
        "median_decode_s": _median([p["decode_s"] for p in timed]),
        "median_encode_mp_s": _median([p["encode_mp_s"] for p in timed
                                       if p["encode_mp_s"] is not None]),
        "median_decode_mp_s": _median([p["decode_mp_s"] for p in timed
                                       if p["decode_mp_s"] is not None]),
        "peak_rss_mib": max((p["rss_after_mib"] for p in points), default=None),
        "points_timed": len(timed),
    }


def build_curve(codec: Codec, points: list[dict], n_images: int) -> dict:
    """One codec's curve (points sorted by bpp) and its speed and memory figures."""
    by_setting: dict[float, list[dict]] = {}
    for p in points:
        by_setting.setdefault(p["setting"], []).append(p)
    rows = [_curve_row(codec, setting, group, n_images) for setting, group in by_setting.items()]
    rows.sort(key=lambda r: r["bpp"])
    return {
        "key": codec.key,
        "kind": codec.kind,
        "name": f"{codec.key} (ours)" if codec.kind == "model" else codec.key,
        "description": codec.description,
        "setting_kind": codec.setting_kind,
        "weights_sha256": codec.weights_sha256,
        "points": rows,
        "bpp": [r["bpp"] for r in rows],
        "psnr": [r["psnr"] for r in rows],
        "ms_ssim": [r["ms_ssim"] for r in rows],
        "ssimulacra2": [r["ssimulacra2"] for r in rows],
        "speed": _speed(points),
    }


def _rd_points(bpp, quality) -> list[tuple[float, float]] | None:
    """(bpp, quality) pairs, or None when any quality is missing."""
    if quality is None or any(q is None for q in quality):
        return None
    pts = [(float(b), float(q)) for b, q in zip(bpp, quality)]
    return pts if len(pts) >= 2 else None


def curve_points(curve: dict, metric: str) -> list[tuple[float, float]] | None:
    """A run curve's (bpp, quality) for metric "psnr", "ms_ssim_db" or "ssimulacra2"."""
    rows = curve["points"]
    return _rd_points([r["bpp"] for r in rows], [r[metric] for r in rows])


def anchor_points(curve: anchors.Curve, metric: str) -> list[tuple[float, float]] | None:
    """A shipped reference curve's (bpp, quality), None where it does not publish the metric."""
    if metric == "psnr":
        return _rd_points(curve.bpp, curve.psnr)
    if metric != "ms_ssim_db" or curve.ms_ssim is None:  # none publishes SSIMULACRA2
        return None
    return _rd_points(curve.bpp, [ms_ssim_db(v) for v in curve.ms_ssim])


def bd_pair(ours, ref, method: str) -> dict:
    """BD-rate (%) and BD-quality (dB; score points for SSIMULACRA2) of `ours` against `ref`,
    with the method used."""
    if ours is None or ref is None:
        return {"bd_rate_pct": None, "bd_quality_db": None, "method": None,
                "note": "metric not available for one of the curves"}
    used = method
    if method == "cubic" and min(len(ours), len(ref)) < 4:
        used = "pchip"  # a cubic fit needs 4 points per curve
    result = {"method": used}
    try:
        result["bd_rate_pct"] = metrics.bd_rate(ours, ref, method=used)
        result["bd_quality_db"] = metrics.bd_psnr(ours, ref, method=used)
    except ValueError as exc:
        return {"bd_rate_pct": None, "bd_quality_db": None, "method": used, "note": str(exc)}
    if result["bd_rate_pct"] is None or result["bd_quality_db"] is None:
        result["note"] = "no overlap"
    return result


def _references(curves: dict[str, dict]) -> list[tuple[str, str, str, object]]:
    """Every curve a model is compared with: (group, key, name, curve dict or anchors.Curve)."""
    references: list[tuple[str, str, str, object]] = []
    for key, curve in curves.items():
        references.append(("model" if curve["kind"] == "model" else "measured in this run",
                           key, curve["name"], curve))
    for key, curve in anchors.published().items():
        references.append(("published", key, curve.name, curve))
    for key, curve in anchors.measured().items():
        references.append(("reference measurement", key, curve.name, curve))
    return references


def bd_figures(curves: dict[str, dict], method: str) -> list[dict]:
    """BD figures of every model curve against every reference, for PSNR, MS-SSIM dB and
    SSIMULACRA2."""
    references = _references(curves)
    figures = []
    for key, curve in curves.items():
        if curve["kind"] != "model":
            continue
        for group, ref_key, ref_name, ref in references:
            if ref is curve:
                continue
            entry = {"curve": key, "reference": ref_key, "reference_name": ref_name,
                     "reference_group": group}
            for metric in BD_METRICS:
                ours = curve_points(curve, metric)
                theirs = (curve_points(ref, metric) if isinstance(ref, dict)
                          else anchor_points(ref, metric))
                entry[metric] = bd_pair(ours, theirs, method)
            figures.append(entry)
    return figures
