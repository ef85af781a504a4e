"""`flowcodec bench DIR --stereo`: the side-information codecs on stereo pairs, with real files.

DIR holds `left/NAME` and `right/NAME` (pairs of any size; both views of a pair the same
size). Each left view is coded; the right view is the side information. Four curves:

* default     — what a user without a second view runs: the shipped default model
* separate    — no side information anywhere (`dsc-separate`: the same codec trained on the same
                pairs for the same steps, so the comparison is not about training)
* distributed — side information at the decoder only (`dsc`, the product)
* joint       — side information at the encoder too (`dsc-joint`, the upper bound)

and, when asked for (`--models ... vqvae,vqvae-side`), seed 004's system: the conditional VQ-VAE
(`vqvae-side`, side view at the decoder) and its control, the VQ-VAE it was grown on (`vqvae`:
the same encoder, codebooks and prior, so the same files' rates).

and the BD-rates between them; the headline is `dsc` against the default model, the user's
question ("does decoding with my second view make files smaller at equal quality?"). For models
that decode with side information, every file is also decoded with a *wrong* side image (the
right view of the next pair, resized to fit): the decode must still give a valid picture, and the
curve of those PSNRs at the same rates ("dsc, wrong side") shows what a wrong view costs.
Points are cached like bench's (cache.py), keyed by the pair and the wrong side image's pair, so
an interrupted run (dsc-joint encodes take tens of seconds) resumes where it stopped.
"""

from __future__ import annotations

import hashlib
import json
import sys
import tempfile
from functools import partial
from pathlib import Path

import numpy as np
from PIL import Image

from flowcodec_cli import zoo
from flowcodec_cli.evaluation.bench.cache import cache_key, cache_load, cache_path, cache_store
from flowcodec_cli.evaluation.bench.curves import BD_METRICS, bd_pair, build_curves, curve_points
from flowcodec_cli.evaluation.bench.environment import environment
from flowcodec_cli.evaluation.bench.failures import attempt, describe, notice
from flowcodec_cli.evaluation.bench.formatting import fmt, table
from flowcodec_cli.evaluation.bench.images import BenchImage, read_rgb
from flowcodec_cli.codec.picture import psnr
from flowcodec_cli.evaluation.bench.measure import measure_model, optional_metrics_notice, peak_rss_mib
from flowcodec_cli.evaluation.bench.options import BenchUsageError, check_count
from flowcodec_cli.evaluation.bench.plan import Codec, plan_models
from flowcodec_cli.evaluation.bench.report import write_text
from flowcodec_cli.evaluation.bench.run import BenchResult
from flowcodec_cli.files.images import Picture, stereo_pairs  # after bench.images: see there

FORMAT = "flowcodec-bench-stereo/1"
ROLES = {zoo.DEFAULT_MODEL: "default", "dsc-separate": "separate", "dsc": "distributed",
         "dsc-joint": "joint"}
DEFAULT_MODELS = tuple(ROLES)
ROLES.update({"vqvae": "VQ separate", "vqvae-side": "VQ distributed (seed 004)"})
STEREO_BETAS = (0.001, 0.0025, 0.006, 0.015, 0.035)
"""Inside every stereo model's β range; about 0.15 to 1.5 bpp on the Middlebury pairs. A model
with a sweep of its own (the VQ-VAE's one β per stage count, plan.own_betas) keeps it."""
WRONG = " (wrong side)"


def list_pairs(directory: Path, limit: int | None) -> list[tuple[str, Path, Path]]:
    """files.images.stereo_pairs, with a usage error that says what is missing."""
    directory = Path(directory)
    if not (directory / "left").is_dir() or not (directory / "right").is_dir():
        raise BenchUsageError(f"{directory}: --stereo needs left/ and right/ folders")
    pairs = stereo_pairs(directory)
    if not pairs:
        raise BenchUsageError(f"{directory}: no pairs (left/NAME with a right/NAME)")
    return pairs[:limit] if limit is not None else pairs


def wrong_side(rgb: np.ndarray, height: int, width: int) -> np.ndarray:
    """Another scene's view resized to (height, width): valid, but showing the wrong content."""
    return np.array(Image.fromarray(rgb).resize((width, height), Image.BICUBIC))


def measure_pair(codec: Codec, beta: float, name: str, sha: str, left: np.ndarray,
                 right: np.ndarray, other: np.ndarray, workdir: Path) -> dict:
    """bench's `measure_model` on the left view with the right view as side information; models
    that decode with side information also decode the same file with the wrong side image, made
    from `other` (another pair's right view) by `wrong_side`."""
    from flowcodec_cli import codec as neural
    from flowcodec_cli.codec import fcx
    point, data = measure_model(codec, beta, BenchImage(name, Path(name), sha, left), "cpu",
                                workdir, side=right)
    if neural.LoadedCodec.get(codec.key).model.side_info_at_decoder:
        wrong = wrong_side(other, *left.shape[:2])
        garbled = neural.decode(data, side_info=Picture(wrong, None, fcx.LAYOUT_RGB))
        point["psnr_wrong_side"] = psnr(left, garbled.rgb)  # the loss, not the full metrics
    return point


def _read_pairs(pairs: list, errors: list) -> list[tuple[str, np.ndarray, np.ndarray, str]]:
    """(name, left, right, sha256 of both views' samples); an unreadable or mismatched pair is
    reported, recorded and skipped."""
    loaded = []
    for name, left_path, right_path in pairs:
        try:
            left, right = read_rgb(left_path), read_rgb(right_path)
            if left.shape != right.shape:
                raise ValueError(f"left is {left.shape[1]}x{left.shape[0]}, "
                                 f"right {right.shape[1]}x{right.shape[0]}")
        except Exception as exc:  # noqa: BLE001 - reported and skipped
            notice(f"{left_path}: {describe(exc)} (skipped)")
            errors.append((str(left_path), exc))
            continue
        sha = hashlib.sha256(left.tobytes() + right.tobytes()).hexdigest()
        loaded.append((name, left, right, sha))
    return loaded


def _job_image(loaded: list, i: int) -> BenchImage:
    """Pair i as a cache key: the left view named by the samples of both views and of the wrong
    side image's source (the next pair's right view), all of which its point depends on."""
    name, left, _, sha = loaded[i]
    other_sha = loaded[(i + 1) % len(loaded)][3]
    key = hashlib.sha256(f"stereo:{sha}:{other_sha}".encode()).hexdigest()
    return BenchImage(name, Path(name), key, left)


def _measure_pairs(planned: list[Codec], loaded: list, errors: list, quiet: bool,
                   cache_dir: Path) -> tuple[list[dict], int]:
    """Every (model, β, pair) point, from the cache or measured (with a progress bar on
    stderr), and how many were measured."""
    from tqdm import tqdm
    jobs = [(c, b, i) for c in planned for b in c.settings for i in range(len(loaded))]
    points, warmed, measured_count = [], set(), 0
    bar = tqdm(total=len(jobs), disable=quiet, unit="job", file=sys.stderr, dynamic_ncols=True)
    try:
        with tempfile.TemporaryDirectory(prefix="flowcodec-stereo-") as tmp:
            for codec, beta, i in jobs:
                name, left, right, sha = loaded[i]
                image = _job_image(loaded, i)
                path, key = cache_path(cache_dir, codec, beta, image), cache_key(codec, beta, image)
                bar.set_description(f"{codec.key} {beta:g}", refresh=False)
                point = cache_load(path, key)
                if point is None:
                    other = loaded[(i + 1) % len(loaded)][2]
                    job = partial(measure_pair, codec, beta, name, sha, left, right, other, Path(tmp))
                    measured = attempt(f"{name}: {codec.key} at β {beta:g}", job, errors)
                    if measured is not None:
                        point = {"codec": codec.key, "kind": "model", "setting": float(beta),
                                 "image": name, "pair_sha256": sha, **measured,
                                 "warmup": codec.key not in warmed,
                                 "rss_after_mib": peak_rss_mib()}
                        warmed.add(codec.key)
                        measured_count += 1
                        cache_store(path, key, point)
                        point = {**point, "cached": False}
                else:
                    point = {**point, "image": name, "cached": True}
                if point is not None:
                    points.append(point)
                bar.update(1)
    finally:
        bar.close()
    return points, measured_count


def _stereo_curves(planned: list[Codec], points: list[dict], n_pairs: int) -> dict[str, dict]:
    """bench curves, plus each curve's role and each point's mean PSNR with the wrong side."""
    curves = build_curves(planned, points, n_pairs)
    for key, curve in curves.items():
        curve["role"] = ROLES.get(key, key)
        for row in curve["points"]:
            wrong = [p["psnr_wrong_side"] for p in points if p["codec"] == key
                     and p["setting"] == row["setting"] and "psnr_wrong_side" in p]
            row["psnr_wrong_side"] = float(np.mean(wrong)) if wrong else None
    return curves


def _wrong_side_curves(curves: dict[str, dict]) -> dict[str, dict]:
    """For each side-information curve, the same files decoded with the wrong side image: the
    same rates, the wrong-side PSNRs (for BD-rate against the other curves)."""
    wrong = {}
    for key, curve in curves.items():
        rows = curve["points"]
        if rows and all(r["psnr_wrong_side"] is not None for r in rows):
            wrong[key + WRONG] = {"points": [{"bpp": r["bpp"], "psnr": r["psnr_wrong_side"],
                                              "ms_ssim_db": None, "ssimulacra2": None}
                                             for r in rows]}
    return wrong


def _bd_between(curves: dict[str, dict], method: str) -> list[dict]:
    """BD figures of every curve against every other one, and of each wrong-side curve against
    the curves measured with no or the right side information."""
    bd = []
    wrong = _wrong_side_curves(curves)
    for key, curve in {**curves, **wrong}.items():
        for ref_key, ref in curves.items():
            if ref_key != key and not key.startswith(ref_key + WRONG):
                bd.append({"curve": key, "reference": ref_key,
                           **{metric: bd_pair(curve_points(curve, metric),
                                              curve_points(ref, metric), method)
                              for metric in BD_METRICS}})
    return bd


def headline(doc: dict) -> list[dict]:
    """The figures a user with a second view asks for, from the BD table: `dsc` (right and wrong
    side view) and `dsc-joint` against the default model and against `dsc-separate`; the
    conditional VQ-VAE against its control and against the flow-based curves, when benched."""
    wanted = [("dsc", zoo.DEFAULT_MODEL), ("dsc", "dsc-separate"),
              ("dsc" + WRONG, zoo.DEFAULT_MODEL), ("dsc-joint", zoo.DEFAULT_MODEL),
              ("dsc-joint", "dsc"), ("vqvae-side", "vqvae"), ("vqvae-side", "dsc-separate"),
              ("vqvae-side", "dsc")]
    found = {(f["curve"], f["reference"]): f for f in doc["bd"]}
    return [found[pair] for pair in wanted if pair in found]


def run_stereo(directory, *, models: list[str] | None = None,
               betas: tuple[float, ...] | None = None, images: int | None = None,
               threads: int | None = None, report_dir="bench-results", json_path=None,
               quiet: bool = False, bd_method: str = "cubic",
               cache_dir=".bench_cache") -> BenchResult:
    """Run the stereo benchmark and write stereo.json (or `json_path`) and stereo.md."""
    import torch
    models = list(DEFAULT_MODELS if models is None else models)
    check_count(images, "--images")
    pairs = list_pairs(Path(directory), images)
    planned = plan_models(models, betas or None, "cpu", shared=STEREO_BETAS)
    if threads is not None:
        torch.set_num_threads(threads)

    errors: list[tuple[str, BaseException]] = []
    optional_metrics_notice()
    loaded = _read_pairs(pairs, errors)
    if not loaded:
        raise BenchUsageError(f"{directory}: no readable pairs")
    points, measured = _measure_pairs(planned, loaded, errors, quiet, Path(cache_dir))
    curves = _stereo_curves(planned, points, len(loaded))
    document = {
        "format": FORMAT,
        "environment": environment("cpu", threads),
        "config": {"directory": str(directory), "pairs": [p[0] for p in loaded],
                   "models": [c.key for c in planned],
                   "betas": {c.key: list(c.settings) for c in planned},
                   "bd_method": bd_method, "wrong_side": "right view of the next pair, resized",
                   "cache_dir": str(cache_dir), "jobs": len(points), "jobs_run": measured,
                   "jobs_cached": len(points) - measured},
        "points": points, "curves": curves, "bd": _bd_between(curves, bd_method),
        "errors": [f"{what}: {describe(exc)}" for what, exc in errors],
    }
    report_dir = Path(report_dir)
    report_dir.mkdir(parents=True, exist_ok=True)
    json_out = Path(json_path) if json_path else report_dir / "stereo.json"
    write_text(json_out, json.dumps(document, indent=1, allow_nan=False) + "\n")
    md_out = report_dir / "stereo.md"
    write_text(md_out, markdown(document))
    return BenchResult(document, [json_out, md_out], errors)


def markdown(doc: dict) -> str:
    """stereo.md."""
    cfg = doc["config"]
    lines = ["# Side information on stereo pairs", "",
             f"`flowcodec bench {cfg['directory']} --stereo`: {len(cfg['pairs'])} pairs "
             f"({', '.join(cfg['pairs'])}); left view coded, right view as side information. "
             "Real `.fcx` files; bpp from file sizes. \"PSNR, wrong side\": the same file decoded "
             f"with the {cfg['wrong_side']}.", ""]
    for key, curve in doc["curves"].items():
        lines += [f"## {key} ({curve['role']})", ""]
        rows = [[fmt(r["setting"], 4), fmt(r["bpp"], 4), fmt(r["psnr"], 2),
                 fmt(r["ms_ssim_db"], 2), fmt(r["psnr_wrong_side"], 2),
                 fmt(r["median_encode_s"], 2), fmt(r["median_decode_s"], 2)]
                for r in curve["points"]]
        lines += [table(["β", "bpp", "PSNR dB", "MS-SSIM dB", "PSNR, wrong side", "enc s",
                         "dec s"], rows), ""]
    lines += ["## What side information buys", "",
              table(["curve", "against", "BD-rate PSNR", "BD-PSNR dB"],
                    [[f["curve"], f["reference"], fmt(f["psnr"]["bd_rate_pct"], 1, True),
                      fmt(f["psnr"]["bd_quality_db"], 2, True)] for f in headline(doc)]), ""]
    lines += ["## BD-rate between the curves", "",
              table(["curve", "against", "BD-rate PSNR", "BD-PSNR dB", "BD-rate MS-SSIM"],
                    [[f["curve"], f["reference"], fmt(f["psnr"]["bd_rate_pct"], 1, True),
                      fmt(f["psnr"]["bd_quality_db"], 2, True),
                      fmt(f["ms_ssim_db"]["bd_rate_pct"], 1, True)]
                     for f in doc["bd"]]), ""]
    if doc["errors"]:
        lines += ["## Errors", ""] + [f"- {e}" for e in doc["errors"]] + [""]
    return "\n".join(lines)
