"""`flowcodec bench DIR --stereo`: the side-information codecs on stereo pairs, with real files.

DIR holds `left/NAME` and `right/NAME`. Each left view is coded; the right view is the side
information. Three curves, as in the neural DSC paper (seed 004):

* separate    — no side information anywhere (`dsc-separate`: the hyperprior fine-tuned on the
                same pairs for the same steps, so the comparison is not about training time)
* distributed — side information at the decoder only (`dsc`, the product)
* joint       — side information at the encoder too (`dsc-joint`, the upper bound)

and the BD-rates between them. For models that decode with side information, every file is also
decoded with a *wrong* side image (the right view of the next pair, resized to fit): the decode
must still give a valid picture, and its PSNR shows how much the model leans on the side view.
"""

from __future__ import annotations

import json
import sys
import tempfile
from functools import partial
from pathlib import Path

import numpy as np
from PIL import Image

from flowcodec_cli.evaluation.bench import (BenchImage, BenchResult, BenchUsageError, Codec, _describe, _fmt, _notice,
                    _peak_rss_mib, _quality, _sha256_bytes, _table, _write_text, attempt, bd_pair,
                    build_curves, curve_points, environment, measure_model, plan_models)
from flowcodec_cli.files.images import IMAGE_SUFFIXES, Picture

FORMAT = "flowcodec-bench-stereo/1"
ROLES = {"dsc-separate": "separate", "dsc": "distributed", "dsc-joint": "joint"}
DEFAULT_MODELS = tuple(ROLES)
STEREO_BETAS = (0.0008, 0.002, 0.005, 0.012, 0.03, 0.08)


def list_pairs(directory: Path, limit: int | None) -> list[tuple[str, Path, Path]]:
    left_dir, right_dir = Path(directory) / "left", Path(directory) / "right"
    if not left_dir.is_dir() or not right_dir.is_dir():
        raise BenchUsageError(f"{directory}: --stereo needs left/ and right/ folders")
    pairs = [(p.name, p, right_dir / p.name) for p in sorted(left_dir.iterdir())
             if p.suffix.lower() in IMAGE_SUFFIXES and (right_dir / p.name).is_file()]
    if not pairs:
        raise BenchUsageError(f"{directory}: no pairs (left/NAME with a right/NAME)")
    return pairs[:limit] if limit is not None else pairs


def _rgb(path: Path) -> np.ndarray:
    from flowcodec_cli.files.images import read_image
    return read_image(path.read_bytes()).rgb


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
    point, data = measure_model(codec, beta, BenchImage(name, Path(name), sha, left), "cpu", workdir,
                                side=right)
    if neural.LoadedCodec.get(codec.key).model.side_info_at_decoder:
        wrong = wrong_side(other, *left.shape[:2])
        garbled = neural.decode(data, side_info=Picture(wrong, None, fcx.LAYOUT_RGB))
        point["psnr_wrong_side"] = _quality(left, garbled.rgb)["psnr"]
    return point


def run_stereo(directory, *, models: list[str] | None = None, betas: tuple[float, ...] | None = None,
               images: int | None = None, threads: int | None = None, report_dir="bench-results",
               json_path=None, quiet: bool = False, bd_method: str = "cubic") -> BenchResult:
    from tqdm import tqdm
    import torch

    models = list(DEFAULT_MODELS if models is None else models)
    if images is not None and images < 1:
        raise BenchUsageError("--images must be at least 1")
    pairs = list_pairs(Path(directory), images)
    planned = plan_models(models, betas or STEREO_BETAS, "cpu")
    if threads is not None:
        torch.set_num_threads(threads)

    errors: list[tuple[str, BaseException]] = []
    loaded = []
    for name, left_path, right_path in pairs:
        try:
            left, right = _rgb(left_path), _rgb(right_path)
            if left.shape != right.shape:
                raise ValueError(f"left is {left.shape[1]}x{left.shape[0]}, right {right.shape[1]}x{right.shape[0]}")
        except Exception as exc:  # noqa: BLE001 - reported and skipped
            _notice(f"{left_path}: {_describe(exc)} (skipped)")
            errors.append((str(left_path), exc))
            continue
        loaded.append((name, left, right, _sha256_bytes(left.tobytes() + right.tobytes())))
    if not loaded:
        raise BenchUsageError(f"{directory}: no readable pairs")

    jobs = [(c, b, i) for c in planned for b in c.settings for i in range(len(loaded))]
    points, warmed = [], set()
    bar = tqdm(total=len(jobs), disable=quiet, unit="job", file=sys.stderr, dynamic_ncols=True)
    try:
        with tempfile.TemporaryDirectory(prefix="flowcodec-stereo-") as tmp:
            for codec, beta, i in jobs:
                name, left, right, sha = loaded[i]
                other = loaded[(i + 1) % len(loaded)][2]
                bar.set_description(f"{codec.key} {beta:g}", refresh=False)
                job = partial(measure_pair, codec, beta, name, sha, left, right, other, Path(tmp))
                measured = attempt(f"{name}: {codec.key} at β {beta:g}", job, errors)
                if measured is not None:
                    points.append({"codec": codec.key, "kind": "model", "setting": float(beta),
                                   "image": name, "pair_sha256": sha, **measured,
                                   "warmup": codec.key not in warmed, "rss_after_mib": _peak_rss_mib()})
                    warmed.add(codec.key)
                bar.update(1)
    finally:
        bar.close()

    curves = build_curves(planned, points, len(loaded))
    for key, curve in curves.items():
        curve["role"] = ROLES.get(key, key)
        for row in curve["points"]:
            wrong = [p["psnr_wrong_side"] for p in points if p["codec"] == key
                     and p["setting"] == row["setting"] and "psnr_wrong_side" in p]
            row["psnr_wrong_side"] = float(np.mean(wrong)) if wrong else None
    bd = []
    for key, curve in curves.items():
        for ref_key, ref in curves.items():
            if ref_key != key:
                bd.append({"curve": key, "reference": ref_key,
                           "psnr": bd_pair(curve_points(curve, "psnr"), curve_points(ref, "psnr"), bd_method),
                           "ms_ssim_db": bd_pair(curve_points(curve, "ms_ssim_db"),
                                                 curve_points(ref, "ms_ssim_db"), bd_method)})
    document = {
        "format": FORMAT,
        "environment": environment("cpu", threads),
        "config": {"directory": str(directory), "pairs": [p[0] for p in loaded],
                   "models": [c.key for c in planned], "betas": {c.key: list(c.settings) for c in planned},
                   "bd_method": bd_method, "wrong_side": "right view of the next pair, resized"},
        "points": points, "curves": curves, "bd": bd,
        "errors": [f"{what}: {_describe(exc)}" for what, exc in errors],
    }
    report_dir = Path(report_dir)
    report_dir.mkdir(parents=True, exist_ok=True)
    json_out = Path(json_path) if json_path else report_dir / "stereo.json"
    _write_text(json_out, json.dumps(document, indent=1, allow_nan=False) + "\n")
    md_out = report_dir / "stereo.md"
    _write_text(md_out, markdown(document))
    return BenchResult(document, [json_out, md_out], errors)


def markdown(doc: dict) -> str:
    lines = ["# Side information on stereo pairs", "",
             f"`flowcodec bench {doc['config']['directory']} --stereo`: {len(doc['config']['pairs'])} pairs "
             f"({', '.join(doc['config']['pairs'])}); left view coded, right view as side information. "
             "Real `.fcx` files; bpp from file sizes. \"PSNR, wrong side\": the same file decoded with "
             f"the {doc['config']['wrong_side']}.", ""]
    for key, curve in doc["curves"].items():
        lines += [f"## {key} ({curve['role']})", ""]
        rows = [[_fmt(r["setting"], 4), _fmt(r["bpp"], 4), _fmt(r["psnr"], 2), _fmt(r["ms_ssim_db"], 2),
                 _fmt(r["psnr_wrong_side"], 2), _fmt(r["median_encode_s"], 2), _fmt(r["median_decode_s"], 2)]
                for r in curve["points"]]
        lines += [_table(["β", "bpp", "PSNR dB", "MS-SSIM dB", "PSNR, wrong side", "enc s", "dec s"], rows), ""]
    lines += ["## BD-rate between the curves", "",
              _table(["curve", "against", "BD-rate PSNR", "BD-PSNR dB", "BD-rate MS-SSIM"],
                     [[f["curve"], f["reference"], _fmt(f["psnr"]["bd_rate_pct"], 1, True),
                       _fmt(f["psnr"]["bd_quality_db"], 2, True), _fmt(f["ms_ssim_db"]["bd_rate_pct"], 1, True)]
                      for f in doc["bd"]]), ""]
    if doc["errors"]:
        lines += ["## Errors", ""] + [f"- {e}" for e in doc["errors"]] + [""]
    return "\n".join(lines)

