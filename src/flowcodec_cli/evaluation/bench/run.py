"""`flowcodec bench`: rate-distortion, speed and memory of our models next to classical codecs.

What one run does, for every image of DIR (sorted by name; `--images N` keeps the first N):
plan the codecs (plan.py), measure every (codec, setting, image) point that is not in the cache
(measure.py, cache.py), build the curves and the BD figures (curves.py), run the model analyses
(analyses.py), and write bench.json, results.md and rd.png (report.py, plot.py).

Classical codecs run first: the peak RSS recorded after each job never decreases during a run,
so a codec's figure is an upper bound that includes everything loaded before it (Python, torch,
earlier codecs), and running them first keeps a neural model out of theirs. The first job that
really runs for each codec is a warm-up (model loading, first-call costs): it is timed and
flagged `warmup`, and curves leave it out of the medians unless it is the only point.
"""

from __future__ import annotations

import sys
import tempfile
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path

from flowcodec_cli import zoo
from flowcodec_cli.evaluation import classical
from flowcodec_cli.evaluation.bench.analyses import bound_analysis, invertibility
from flowcodec_cli.evaluation.bench.cache import cache_key, cache_load, cache_path, cache_store
from flowcodec_cli.evaluation.bench.curves import bd_figures, build_curves
from flowcodec_cli.evaluation.bench.environment import environment
from flowcodec_cli.evaluation.bench.failures import attempt, describe
from flowcodec_cli.evaluation.bench.images import (BenchImage, NoReadableImages, list_images,
                                                   read_images)
from flowcodec_cli.evaluation.bench import measure
from flowcodec_cli.evaluation.bench.options import BenchUsageError, check_betas, check_count
from flowcodec_cli.evaluation.bench.plan import Codec, plan_classical, plan_models
from flowcodec_cli.evaluation.bench.report import write_reports

DEFAULT_CACHE = ".bench_cache"
DEFAULT_REPORT_DIR = "bench-results"
FORMAT = "flowcodec-bench/1"


@dataclass
class BenchResult:
    """What a run (or a stereo run) made: the JSON document, the files written, and the failed
    jobs (the command line turns the first one into its exit code)."""

    document: dict
    written: list[Path]
    errors: list[tuple[str, BaseException]] = field(default_factory=list)


def _check_options(models, betas, codecs, no_classical, settings, images, threads):
    """The combinations click cannot check. Returns (models, betas, classical names, overrides)."""
    if codecs is not None and no_classical:
        raise BenchUsageError("--codecs and --no-classical exclude each other")
    check_count(images, "--images")
    check_count(threads, "--threads")
    betas = check_betas(betas)
    models = ([n for n, e in zoo.REGISTRY.items() if not e.stereo and not e.channel]
              if models is None else list(models))
    for name in models:
        if name in zoo.REGISTRY and zoo.REGISTRY[name].stereo:
            raise BenchUsageError(f"--models: {name!r} is a side-information model: "
                                  "benchmark it on stereo pairs with --stereo")
        if name in zoo.REGISTRY and zoo.REGISTRY[name].channel:
            raise BenchUsageError(f"--models: {name!r} is a channel (JSCC) model: "
                                  "benchmark it with --channel")
    classical_names = [] if no_classical else (
        [c.name for c in classical.CODECS] if codecs is None else list(codecs))
    overrides = dict(settings or {})
    if no_classical and overrides:
        raise BenchUsageError("--settings applies to classical codecs, not with --no-classical")
    if not models and not classical_names:
        raise BenchUsageError("nothing to benchmark: no models and no classical codecs")
    return models, betas, classical_names, overrides


def _set_up_torch(threads: int | None, device: str, needs_models: bool) -> None:
    import torch
    if threads is not None:
        torch.set_num_threads(threads)
    if device == "cuda" and needs_models and not torch.cuda.is_available():
        from flowcodec_cli.codec import CodecError
        raise CodecError("--device cuda: no CUDA device is available on this machine")


class _Measurements:
    """The points of a run, from the cache or measured, and how many came from where."""

    def __init__(self, cache_dir: Path, device: str, workdir: Path, errors: list):
        self.cache_dir, self.device, self.workdir, self.errors = cache_dir, device, workdir, errors
        self.points: list[dict] = []
        self.warmed: set[str] = set()
        self.executed = self.cached = 0

    def add(self, codec: Codec, setting: float, image: BenchImage) -> None:
        """The point of one job: cached if it is, else measured and cached (a failed job adds
        nothing)."""
        path = cache_path(self.cache_dir, codec, setting, image)
        key = cache_key(codec, setting, image)
        point = cache_load(path, key)
        if point is not None:
            point = {**point, "cached": True}
            self.cached += 1
        else:
            what = f"{image.path}: {codec.key} at {codec.setting_kind} {setting:g}"
            job = partial(measure.measure_point, codec, setting, image, self.device, self.workdir)
            measured = attempt(what, job, self.errors)
            if measured is None:
                return
            point = {"codec": codec.key, "kind": codec.kind, "setting": float(setting),
                     "image": image.name, "image_sha256": image.sha256,
                     "width": int(image.rgb.shape[1]), "height": int(image.rgb.shape[0]),
                     **measured, "warmup": codec.key not in self.warmed,
                     "rss_after_mib": measure.peak_rss_mib()}
            self.warmed.add(codec.key)
            self.executed += 1
            cache_store(path, key, point)
            point = {**point, "cached": False}
        # Names may differ between runs for the same image bytes: report this run's.
        point["image"] = image.name
        self.points.append(point)


def _measure_all(jobs: list, cache_dir: Path, device: str, errors: list,
                 quiet: bool) -> _Measurements:
    """Every job, with a progress bar on stderr."""
    from tqdm import tqdm
    bar = tqdm(total=len(jobs), disable=quiet, unit="job", file=sys.stderr, dynamic_ncols=True)
    try:
        with tempfile.TemporaryDirectory(prefix="flowcodec-bench-") as tmp:
            done = _Measurements(cache_dir, device, Path(tmp), errors)
            for codec, setting, image in jobs:
                bar.set_description(f"{codec.key} {setting:g}", refresh=False)
                done.add(codec, setting, image)
                bar.update(1)
    finally:
        bar.close()
    return done


def _config(directory, bench_images, planned_models, planned_classical, classical_names,
            device, threads, bd_method, cache_dir, n_jobs, done: _Measurements,
            effort: int) -> dict:
    """The `config` section of bench.json: what was asked and what ran."""
    return {
        "directory": str(directory),
        "images": len(bench_images),
        "models": [c.key for c in planned_models],
        "betas": {c.key: list(c.settings) for c in planned_models},
        "effort": effort,
        "classical": {c.key: {"settings": list(c.settings), "setting_kind": c.setting_kind,
                              "description": c.description} for c in planned_classical},
        "skipped_classical": [n for n in classical_names
                              if n not in {c.key for c in planned_classical}],
        "device": device,
        "threads": threads,
        "bd_method": bd_method,
        "cache_dir": str(cache_dir),
        "jobs": n_jobs, "jobs_run": done.executed, "jobs_cached": done.cached,
        "peak_rss_mib": measure.peak_rss_mib(),
    }


def run(directory, *, models: list[str] | None = None, betas: tuple[float, ...] | None = None,
        codecs: list[str] | None = None, no_classical: bool = False,
        settings: dict[str, tuple[float, ...]] | None = None, images: int | None = None,
        device: str = "cpu", cache_dir=DEFAULT_CACHE, report_dir=DEFAULT_REPORT_DIR,
        json_path=None, threads: int | None = None, quiet: bool = False,
        bd_method: str = "cubic", analysis_images: int = 2, effort: int = 0) -> BenchResult:
    """Run the benchmark and write bench.json, results.md and rd.png. See the module docstring.

    Raises BenchUsageError for bad options, zoo.WeightsError / codec.CodecError when a model
    cannot run; failures of single images or jobs are reported on stderr and collected in
    `BenchResult.errors`, and the run goes on. `effort`: our models' encoder effort.
    """
    models, betas, classical_names, overrides = _check_options(
        models, betas, codecs, no_classical, settings, images, threads)
    paths = list_images(Path(directory), images)
    planned_models = plan_models(models, betas, device, effort)
    planned_classical = plan_classical(classical_names, overrides)
    _set_up_torch(threads, device, bool(planned_models))
    measure.optional_metrics_notice()

    errors: list[tuple[str, BaseException]] = []
    bench_images = read_images(paths, errors)
    if not bench_images:
        raise NoReadableImages(errors)

    all_codecs = planned_classical + planned_models  # classical first: see the module docstring
    cache_dir = Path(cache_dir)
    jobs = [(c, s, im) for c in all_codecs for s in c.settings for im in bench_images]
    done = _measure_all(jobs, cache_dir, device, errors, quiet)

    curves = build_curves(all_codecs, done.points, len(bench_images))
    document = {
        "format": FORMAT,
        "environment": environment(device, threads),
        "config": _config(directory, bench_images, planned_models, planned_classical,
                          classical_names, device, threads, bd_method, cache_dir, len(jobs), done,
                          effort),
        "images": [{"name": im.name, "sha256": im.sha256, "width": int(im.rgb.shape[1]),
                    "height": int(im.rgb.shape[0])} for im in bench_images],
        "points": done.points,
        "curves": curves,
        "bd": bd_figures(curves, bd_method),
        "bound_analysis": bound_analysis(planned_models, bench_images[:analysis_images]),
        "invertibility": invertibility(planned_models, bench_images),
        "errors": [f"{what}: {describe(exc)}" for what, exc in errors],
    }
    written = write_reports(document, Path(report_dir), Path(json_path) if json_path else None)
    return BenchResult(document, written, errors)
