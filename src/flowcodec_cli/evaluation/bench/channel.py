"""`flowcodec bench DIR --channel`: PSNR against channel SNR, joint against separate coding.

For every image of DIR and every test SNR (default 0, 2, ..., 20 dB), at one bandwidth ratio
k/n (channel uses per pixel value, default 1/6):

* jscc      — the flow's latents sent as analog symbols (`flowcodec channel`, models/channel.py)
              with the default channel weights (jscc.load: the zoo's flow-channel, else the flow
              weights with the untrained MMSE receiver), and with each `--channel-models` file
              (e.g. JSCC trained at one SNR, tested at all of them), all at this ratio.
* separate  — for each design SNR d (default 5, 10, 15 dB): a real `.fcx` file of each of
              `--models` (default: flow) no larger than what an ideal capacity-achieving channel
              code delivers in the same k channel uses at SNR d: k·½·log2(1 + SNR_d) bits, i.e.
              3·(k/n)·½·log2(1 + SNR_d) bpp. Rate control (codec/rate_control.py) searches β for
              that size; the largest probe that fits is kept, else the model's largest β if that
              fits, else nothing fits. At a test SNR ≥ d the file arrives intact (PSNR of its
              decode); below d the ideal code fails and the image is lost: the receiver shows a
              mid-gray image (128, 128, 128), whose PSNR is recorded. This is the "cliff". An
              ideal code is the best case for separate coding: a real code of finite length
              needs some dB of margin above d and fails less abruptly.

k is the JSCC transmission's own count (the flow's latents padded to its stride), so both
schemes get the same channel uses. PSNR is averaged over the images in dB, as in `bench`. The
channel noise of every transmission is seeded (seed 0): a rerun gives the same numbers. Points
are not cached. Writes channel.json (or --json), channel.md and channel.png (with matplotlib).
"""

from __future__ import annotations

import json
import statistics
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from flowcodec_cli import zoo
from flowcodec_cli.codec.picture import Picture, psnr
from flowcodec_cli.evaluation.bench.environment import environment
from flowcodec_cli.evaluation.bench.failures import attempt, describe
from flowcodec_cli.evaluation.bench.formatting import count, fmt, table
from flowcodec_cli.evaluation.bench.images import NoReadableImages, list_images, read_images
from flowcodec_cli.evaluation.bench.options import BenchUsageError, check_count
from flowcodec_cli.evaluation.bench.plot import pyplot, save_figure
from flowcodec_cli.evaluation.bench.report import write_text
from flowcodec_cli.evaluation.bench.run import BenchResult
from flowcodec_cli.models.channel import capacity, parse_ratio

FORMAT = "flowcodec-bench-channel/1"
DEFAULT_RATIO = "1/6"
DEFAULT_SNRS = tuple(float(s) for s in range(0, 21, 2))
DEFAULT_DESIGN_SNRS = (5.0, 10.0, 15.0)
LOST_GRAY = 128
"""What the receiver shows for an image whose digital transmission failed (the cliff)."""
SEED = 0
MAX_PSNR = 100.0
"""PSNR recorded for an exact copy (inf), so that JSON and means stay finite."""


@dataclass(frozen=True)
class SeparateFile:
    """The `.fcx` file kept for one image, model and design SNR (None bytes: nothing fits)."""

    budget_bytes: int
    bytes: int | None
    beta: float | None
    psnr: float | None
    encode_s: float
    decode_s: float | None


def separate_file(picture: Picture, model: str, budget_bytes: int) -> SeparateFile:
    """The largest real `.fcx` file of `model` that fits in `budget_bytes` (module docstring)."""
    from flowcodec_cli.codec import LoadedCodec, pipeline, rate_control
    from flowcodec_cli.codec.rate_request import Target
    start = time.perf_counter()
    search = rate_control.encode_to_target(picture, Target("size", max(1, 0.99 * budget_bytes)),
                                           model)
    probes = [p for p in search.probes if p.bytes <= budget_bytes]
    if not probes:
        beta_max = LoadedCodec.get(model).model.config.beta_max
        data, stats = pipeline.encode(picture, beta_max, model)
        probes = [rate_control.Probe(beta_max, stats.network_beta, len(data), None, data, stats)]
        probes = [p for p in probes if p.bytes <= budget_bytes]
    encode_s = time.perf_counter() - start
    if not probes:
        return SeparateFile(budget_bytes, None, None, None, encode_s, None)
    best = max(probes, key=lambda p: p.bytes)
    start = time.perf_counter()
    decoded = pipeline.decode(best.data)
    decode_s = time.perf_counter() - start
    return SeparateFile(budget_bytes, best.bytes, best.beta, psnr(picture.rgb, decoded.rgb),
                        encode_s, decode_s)


def _check(ratio, snrs, design_snrs, images, threads, models, channel_models):
    check_count(images, "--images")
    check_count(threads, "--threads")
    for name in models:
        if name not in zoo.REGISTRY or zoo.REGISTRY[name].stereo or zoo.REGISTRY[name].channel:
            raise BenchUsageError(f"--models: {name!r} is not a single-image file codec "
                                  f"(separate coding needs one, e.g. {zoo.DEFAULT_MODEL})")
    for path in channel_models:
        if not Path(path).is_file():
            raise BenchUsageError(f"--channel-models: no file {path}")
    try:
        parse_ratio(ratio)
    except ValueError as exc:
        raise BenchUsageError(f"--ratio: {exc}") from None
    for what, values in (("--snrs", snrs), ("--design-snrs", design_snrs)):
        if not values:
            raise BenchUsageError(f"{what}: no values given")


def _label(weights) -> str:
    cfg = weights.model.config
    if not weights.trained:
        return f"jscc: {weights.name}"
    trained = (f"{cfg.snr_min:g} dB" if cfg.snr_min == cfg.snr_max
               else f"{cfg.snr_min:g}–{cfg.snr_max:g} dB")
    return f"jscc: {weights.name} (trained at {trained}, ratio {cfg.ratio})"


@dataclass(frozen=True)
class _Run:
    """What one run measures: the ratio, the SNRs, the JSCC senders and the separate codecs."""

    ratio: str
    snrs: tuple[float, ...]
    design_snrs: tuple[float, ...]
    models: list[str]
    senders: list          # jscc.ChannelWeights


def run_channel(directory, *, ratio: str | None = None, snrs=None, design_snrs=None,
                models: list[str] | None = None, channel_models: list[str] | None = None,
                images: int | None = None, threads: int | None = None,
                report_dir="bench-results", json_path=None, quiet: bool = False) -> BenchResult:
    """Run the channel benchmark and write channel.json (or `json_path`), channel.md and
    channel.png. Raises BenchUsageError for bad options (an unsupported ratio included)."""
    import torch
    from flowcodec_cli.codec import jscc
    ratio = ratio or DEFAULT_RATIO
    channel_models = list(channel_models or [])
    plan = _Run(ratio, tuple(dict.fromkeys(sorted(snrs or DEFAULT_SNRS))),
                tuple(dict.fromkeys(sorted(design_snrs or DEFAULT_DESIGN_SNRS))),
                list(models or [zoo.DEFAULT_MODEL]), [])
    _check(ratio, plan.snrs, plan.design_snrs, images, threads, plan.models, channel_models)
    paths = list_images(Path(directory), images)
    if threads is not None:
        torch.set_num_threads(threads)
    plan.senders.extend([jscc.load(ratio=ratio)] + [jscc.load(p) for p in channel_models])
    for weights in plan.senders:
        try:
            weights.model.sent_channels(ratio)
        except ValueError as exc:
            raise BenchUsageError(f"--ratio: {exc}") from None

    errors: list[tuple[str, BaseException]] = []
    bench_images = read_images(paths, errors)
    if not bench_images:
        raise NoReadableImages(errors)
    points, files = [], []
    from tqdm import tqdm
    jobs = len(plan.senders) + len(plan.models) * len(plan.design_snrs)
    with tqdm(total=len(bench_images) * jobs, disable=quiet, unit="job", file=sys.stderr,
              dynamic_ncols=True) as bar:
        for image in bench_images:
            _measure_image(plan, image, points, files, errors, bar)
    curves = _curves(points, plan.snrs)
    document = {
        "format": FORMAT,
        "environment": environment("cpu", threads),
        "config": {"directory": str(directory), "images": [im.name for im in bench_images],
                   "ratio": str(ratio), "snrs_db": list(plan.snrs),
                   "design_snrs_db": list(plan.design_snrs), "models": plan.models,
                   "channel_models": channel_models,
                   "senders": [{"label": _label(w), "weights": w.name, "sha256": w.sha256,
                                "trained": w.trained, "config_ratio": w.model.config.ratio,
                                "snr_range_db": [w.model.config.snr_min, w.model.config.snr_max]}
                               for w in plan.senders],
                   "seed": SEED, "lost_image": f"mid-gray ({LOST_GRAY}, {LOST_GRAY}, {LOST_GRAY})",
                   "capacity": "1/2 log2(1 + SNR) bits per real channel use"},
        "curves": curves,
        "comparison": _comparison(curves, files),
        "separate_files": files,
        "points": points,
        "errors": [f"{what}: {describe(exc)}" for what, exc in errors],
    }
    return BenchResult(document, _write_reports(document, Path(report_dir), json_path), errors)


def _measure_image(plan: _Run, image, points: list, files: list, errors: list, bar) -> None:
    """One image: every JSCC sender at every SNR, and every separate file (one per model and
    design SNR) with its PSNR at every SNR. Failed jobs are reported and recorded in `errors`."""
    from flowcodec_cli.codec import jscc
    from flowcodec_cli.codec import fcx
    height, width = image.rgb.shape[:2]
    lost = min(psnr(image.rgb, np.full_like(image.rgb, LOST_GRAY)), MAX_PSNR)
    uses = jscc.budget(plan.senders[0].model, height, width, plan.ratio).channel_uses
    for weights in plan.senders:
        label = _label(weights)
        bar.set_description(label[:40], refresh=False)
        got = attempt(f"{image.name}: {label}", lambda: jscc.transmit(
            weights.model, image.rgb, plan.snrs, plan.ratio, SEED), errors)
        for r in got or []:
            points.append({"curve": label, "kind": "jscc", "image": image.name,
                           "snr_db": r.snr_db, "psnr": min(r.psnr, MAX_PSNR),
                           "receive_s": r.seconds, "send_s": r.send_seconds,
                           "channel_uses": uses, "pixel_values": 3 * height * width})
        bar.update(1)
    picture = Picture(image.rgb, None, fcx.LAYOUT_RGB)
    for model in plan.models:
        for design in plan.design_snrs:
            label = f"separate: {model} .fcx, ideal code at {design:g} dB"
            bar.set_description(label[:40], refresh=False)
            budget_bytes = int(uses * capacity(design)) // 8
            kept = attempt(f"{image.name}: {label}",
                           lambda: separate_file(picture, model, budget_bytes), errors)
            bar.update(1)
            if kept is None:
                continue
            files.append({"curve": label, "model": model, "design_snr_db": design,
                          "image": image.name, "budget_bytes": budget_bytes,
                          "budget_bpp": 8 * budget_bytes / (height * width),
                          "bytes": kept.bytes, "beta": kept.beta,
                          "bpp": None if kept.bytes is None else 8 * kept.bytes / (height * width),
                          "psnr_decoded": None if kept.psnr is None else min(kept.psnr, MAX_PSNR),
                          "psnr_lost": lost,
                          "encode_s": kept.encode_s, "decode_s": kept.decode_s})
            for snr in plan.snrs:
                arrives = kept.psnr is not None and snr >= design
                points.append({"curve": label, "kind": "separate", "image": image.name,
                               "snr_db": snr, "psnr": min(kept.psnr, MAX_PSNR) if arrives else lost,
                               "lost": not arrives})


def _write_reports(document: dict, report_dir: Path, json_path) -> list[Path]:
    """channel.json (or `json_path`), channel.md and, with matplotlib, channel.png."""
    report_dir.mkdir(parents=True, exist_ok=True)
    json_out = Path(json_path) if json_path else report_dir / "channel.json"
    write_text(json_out, json.dumps(document, indent=1, allow_nan=False) + "\n")
    md_out = report_dir / "channel.md"
    write_text(md_out, markdown(document))
    png = plot(document, report_dir / "channel.png")
    return [json_out, md_out] + ([png] if png is not None else [])


def _curves(points: list[dict], snrs) -> dict[str, dict]:
    """Per curve, the mean PSNR over the images at each SNR (and, for JSCC, median times)."""
    curves: dict[str, dict] = {}
    for label in dict.fromkeys(p["curve"] for p in points):
        mine = [p for p in points if p["curve"] == label]
        rows = []
        for snr in snrs:
            at = [p for p in mine if p["snr_db"] == snr]
            if not at:
                continue
            row = {"snr_db": snr, "psnr": statistics.fmean(p["psnr"] for p in at),
                   "images": len(at)}
            if mine[0]["kind"] == "separate":
                row["lost"] = sum(p["lost"] for p in at)
            rows.append(row)
        curve = {"kind": mine[0]["kind"], "points": rows}
        if curve["kind"] == "jscc":
            curve["median_send_s"] = statistics.median(p["send_s"] for p in mine)
            curve["median_receive_s"] = statistics.median(p["receive_s"] for p in mine)
        curves[label] = curve
    return curves


def _comparison(curves: dict[str, dict], files: list[dict]) -> list[dict]:
    """For each JSCC curve and each separate design d: both at test SNR d (the gap, either
    sign) and at d − 3 dB (below the cliff), JSCC interpolated in SNR where d − 3 is no test
    point."""
    out = []
    for label, curve in curves.items():
        if curve["kind"] != "jscc":
            continue
        xs = [r["snr_db"] for r in curve["points"]]
        ys = [r["psnr"] for r in curve["points"]]
        for sep_label, sep in curves.items():
            if sep["kind"] != "separate":
                continue
            mine = [f for f in files if f["curve"] == sep_label]
            design = mine[0]["design_snr_db"]
            fits = [f for f in mine if f["bytes"] is not None]
            lost = statistics.fmean(f["psnr_lost"] for f in mine)
            # an image whose smallest file does not fit is lost at every SNR, as in the curve
            separate_at = statistics.fmean(f["psnr_lost"] if f["bytes"] is None
                                           else f["psnr_decoded"] for f in mine)
            below = design - 3
            inside = xs and xs[0] <= below and design <= xs[-1]
            jscc_at = float(np.interp(design, xs, ys)) if inside else None
            jscc_below = float(np.interp(below, xs, ys)) if inside else None
            out.append({"jscc": label, "separate": sep_label, "design_snr_db": design,
                        "mean_budget_bpp": statistics.fmean(f["budget_bpp"] for f in mine),
                        "images_that_fit": len(fits), "images": len(mine),
                        "mean_file_bpp": (statistics.fmean(f["bpp"] for f in fits)
                                          if fits else None),
                        "separate_psnr_at_design": separate_at, "jscc_psnr_at_design": jscc_at,
                        "gap_at_design_db": None if jscc_at is None else jscc_at - separate_at,
                        "separate_psnr_3db_below": lost, "jscc_psnr_3db_below": jscc_below,
                        "gain_3db_below_db": None if jscc_below is None else jscc_below - lost})
    return out


def markdown(doc: dict) -> str:
    """channel.md."""
    cfg = doc["config"]
    curves = doc["curves"]
    labels = list(curves)
    lines = ["# Transmission over an AWGN channel: joint against separate coding", "",
             f"`flowcodec bench {cfg['directory']} --channel --ratio {cfg['ratio']}`: "
             f"{count(len(cfg['images']), 'image')}, bandwidth ratio k/n = {cfg['ratio']} "
             f"(channel uses per pixel value), mean PSNR (dB) over the images. Separate coding: "
             f"a real `.fcx` file within the bits an ideal code delivers at the design SNR "
             f"({cfg['capacity']}); below the design SNR the image is lost and the receiver "
             f"shows {cfg['lost_image']}; an image whose smallest file exceeds the budget is "
             f"lost at every SNR (\"fit\" counts the others). \"gap at d\": JSCC − separate at "
             f"the design SNR d; \"gain at d − 3\": JSCC − separate 3 dB below it. Channel "
             f"noise seed {cfg['seed']}.", "",
             "## PSNR against channel SNR", ""]
    snrs = cfg["snrs_db"]
    by = {label: {r["snr_db"]: r["psnr"] for r in c["points"]} for label, c in curves.items()}
    lines += [table(["SNR dB"] + labels,
                    [[f"{s:g}"] + [fmt(by[label].get(s), 2) for label in labels]
                     for s in snrs]), ""]
    lines += ["## At the design SNR and 3 dB below it", "",
              table(["JSCC", "separate", "budget bpp", "fit", "file bpp", "separate at d",
                     "JSCC at d", "gap at d", "separate at d − 3", "JSCC at d − 3",
                     "gain at d − 3"],
                    [[c["jscc"], c["separate"], fmt(c["mean_budget_bpp"], 3),
                      f"{c['images_that_fit']}/{c['images']}",
                      fmt(c["mean_file_bpp"], 3), fmt(c["separate_psnr_at_design"], 2),
                      fmt(c["jscc_psnr_at_design"], 2), fmt(c["gap_at_design_db"], 2, True),
                      fmt(c["separate_psnr_3db_below"], 2), fmt(c["jscc_psnr_3db_below"], 2),
                      fmt(c["gain_3db_below_db"], 2, True)] for c in doc["comparison"]]), ""]
    times = [[label, fmt(c["median_send_s"], 3), fmt(c["median_receive_s"], 3)]
             for label, c in curves.items() if c["kind"] == "jscc"]
    lines += ["## Time per image (median)", "",
              table(["JSCC", "transmitter s", "receiver s (per SNR)"], times), ""]
    if doc["errors"]:
        lines += ["## Errors", ""] + [f"- {e}" for e in doc["errors"]] + [""]
    return "\n".join(lines)


def plot(doc: dict, path: Path) -> Path | None:
    """channel.png: mean PSNR against SNR, JSCC curves solid, separate coding as steps."""
    plt = pyplot("channel.png")
    if plt is None:
        return None
    fig, ax = plt.subplots(figsize=(8, 5.5))
    for label, curve in doc["curves"].items():
        xs = [r["snr_db"] for r in curve["points"]]
        ys = [r["psnr"] for r in curve["points"]]
        if curve["kind"] == "jscc":
            ax.plot(xs, ys, marker="o", lw=2.4, label=label)
        else:  # lost below the design SNR d, intact from d up: the cliff, drawn at d
            design = next(c["design_snr_db"] for c in doc["comparison"] if c["separate"] == label)
            ax.plot([xs[0], design, design, xs[-1]], [ys[0], ys[0], ys[-1], ys[-1]], lw=1.3,
                    ls="--", label=label)
    ax.set_xlabel("channel SNR [dB]")
    ax.set_ylabel("PSNR-RGB [dB]")
    ax.grid(True, alpha=0.3)
    ax.legend(fontsize=7, loc="lower right")
    cfg = doc["config"]
    ax.set_title(f"AWGN channel, k/n = {cfg['ratio']}, {count(len(cfg['images']), 'image')} "
                 f"from {Path(cfg['directory']).name}", fontsize=10)
    fig.tight_layout()
    return save_figure(plt, fig, path)
