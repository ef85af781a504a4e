"""`flowcodec bench`: rate-distortion, speed and memory of our models next to classical codecs.

What one run does, for every image of DIR (sorted by name; `--images N` keeps the first N):

* **Our models**, at every β of the sweep: encode for real to a `.fcx` file in a temporary
  folder, and report three rates: `bpp_file` (8·file size/(H·W), the container included: the
  rate a user pays), `bpp_payload` (the range-coded streams alone) and `bpp_estimated` (the
  model's information content of the coded symbols, what training minimizes), plus the ratio
  payload/estimate (how close the entropy coder gets to the model). The file is then read back
  and decoded. Images are coded as plain RGB (an alpha plane, which the codec would add
  losslessly, is dropped) so that all codecs code the same samples.
* **Classical codecs** (classical.py), at their settings: bpp from the length of the encoded
  byte string, a complete file (container overhead counted, as in the published curves).
* For both: PSNR-RGB and MS-SSIM-RGB of the decoded image against the original (metrics.py),
  encode and decode wall time (`time.perf_counter`) and megapixels per second, and the process
  peak RSS after each job (`getrusage(RUSAGE_SELF).ru_maxrss`; tracemalloc does not see torch's
  allocations). The peak RSS is monotone over the run, so a codec's figure is an upper bound
  that includes everything loaded before it (Python, torch, earlier codecs); classical codecs
  run first so that theirs are not inflated by a neural model. The first job that really runs
  for each codec is a warm-up (it includes model loading and first-call costs): it is timed,
  flagged `warmup`, and left out of the medians unless it is the only point.

Curves: per codec and setting (per model and β), the mean over images of bpp, of PSNR (the mean
of per-image PSNRs, the convention of the published anchors), of MS-SSIM (converted to dB as
-10·log10(1 - mean MS-SSIM) for plots and BD), and the median encode/decode seconds per image.

Bjøntegaard deltas (metrics.bd_rate / bd_psnr) of every model curve against every other model,
every classical curve measured in the run, and every reference curve shipped in anchors.py
(published ones and our measured classical ones, both over the 24 Kodak images), for PSNR and
for MS-SSIM in dB. The method is the cubic VCEG-M33 fit by default (`--bd-method pchip` for
piecewise cubic Hermite); a pair where either curve has fewer than the 4 points a cubic fit needs
falls back to pchip, and the method actually used is recorded with every figure.

Default β sweep (`DEFAULT_BETAS`): 8 values covering [0.0005, 0.05], about evenly spaced in
log β (doubling steps up to 0.008, then 0.014, 0.02 and 0.05), with 0.0005, 0.02 and 0.05
included exactly. Each model gets the part inside its range, extended down to its own smallest
β when that is below 0.0005 (`default_betas`: the hyperprior adds 0.0003, the flow codec
0.0001). `--betas`
replaces the sweep for every model.

Invertible models (the flow codec) also get `invertibility`: max |synthesis(analysis(x)) − x|
without quantization on every image.

Cache: one small JSON per (codec, setting, image) in `--cache DIR`, named by the codec's id (a
model's id includes the sha256 of its weights file and the device; a classical codec's id
includes its configuration and library versions), the setting, and the sha256 of the image
file. An interrupted bench resumes where it stopped, a rerun only recomputes curves and reports,
and a changed weights file gets a new id, so its old entries are simply never read again.
"""

from __future__ import annotations

import datetime as _dt
import hashlib
import json
import math
import os
import platform
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path

import numpy as np

from flowcodec_cli.evaluation import anchors
from flowcodec_cli.evaluation import classical
from flowcodec_cli.evaluation import metrics
from flowcodec_cli import zoo

DEFAULT_BETAS: tuple[float, ...] = (0.0005, 0.001, 0.002, 0.004, 0.008, 0.014, 0.02, 0.05)
DEFAULT_CACHE = ".bench_cache"
DEFAULT_REPORT_DIR = "bench-results"
CACHE_VERSION = 1
FORMAT = "flowcodec-bench/1"
# Published curves drawn (dashed) in rd.png; every published curve is used for BD figures.
PLOTTED_PUBLISHED = ("vtm", "bpg444", "av1", "jpeg", "webp", "bmshj2018-hyperprior",
                     "bmshj2018-hyperprior-compressai")
# One colour per codec family: a measured curve (solid) and its published one (dashed) match.
FAMILY_COLORS = {"vtm": "#000000", "bpg444": "#7f7f7f", "av1": "#9467bd", "avif": "#9467bd",
                 "jpeg": "#8c564b", "jpeg420": "#8c564b", "jpeg444": "#c08552",
                 "webp": "#2ca02c", "jpeg2000": "#bcbd22", "jxl": "#17becf",
                 "bmshj2018-hyperprior": "#ff7f0e", "bmshj2018-hyperprior-compressai": "#ffbb78"}


class BenchUsageError(ValueError):
    """A bad option value (exit code 2 on the command line)."""


@dataclass
class BenchImage:
    name: str
    path: Path
    sha256: str
    rgb: np.ndarray

    @property
    def pixels(self) -> int:
        return int(self.rgb.shape[0] * self.rgb.shape[1])


@dataclass
class Codec:
    """One row of the run: a model or a classical codec, with its settings and cache id."""

    key: str            # curve key, as in reports: the model name or the classical codec name
    kind: str           # "model" or "classical"
    description: str
    settings: tuple[float, ...]
    setting_kind: str   # "beta", "quality", ...
    cache_id: str
    weights_sha256: str | None = None


@dataclass
class BenchResult:
    document: dict
    written: list[Path]
    errors: list[tuple[str, BaseException]] = field(default_factory=list)


# --- option parsing -------------------------------------------------------------------------


def parse_floats(text: str | None, what: str) -> tuple[float, ...] | None:
    """'0.001,0.01' -> (0.001, 0.01); None stays None; BenchUsageError on anything else."""
    if text is None:
        return None
    try:
        values = tuple(float(part) for part in text.split(",") if part.strip())
    except ValueError:
        raise BenchUsageError(f"{what}: expected comma-separated numbers, got {text!r}") from None
    if not values:
        raise BenchUsageError(f"{what}: no values given")
    if not all(math.isfinite(v) for v in values):
        raise BenchUsageError(f"{what}: values must be finite")
    return values


def parse_names(text: str | None) -> list[str] | None:
    if text is None:
        return None
    names = [part.strip() for part in text.split(",") if part.strip()]
    if not names:
        raise BenchUsageError("empty list of names")
    return list(dict.fromkeys(names))  # de-duplicated, order kept


def parse_setting_overrides(items) -> dict[str, tuple[float, ...]]:
    """('webp=5,60', ...) -> {'webp': (5.0, 60.0)}."""
    overrides: dict[str, tuple[float, ...]] = {}
    for item in items or ():
        name, sep, values = item.partition("=")
        if not sep or not name.strip():
            raise BenchUsageError(f"--settings {item!r}: expected CODEC=S1,S2,...")
        overrides[name.strip()] = parse_floats(values, f"--settings {name.strip()}")
    return overrides


# --- small helpers --------------------------------------------------------------------------


def _notice(message: str) -> None:
    """One line on stderr that does not garble a running progress bar."""
    from tqdm import tqdm
    tqdm.write(f"flowcodec: {message}", file=sys.stderr)


def _peak_rss_mib() -> float:
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return peak / (1 << 20) if sys.platform == "darwin" else peak / 1024  # bytes vs KiB


def ms_ssim_db(value: float | None) -> float | None:
    if value is None or value >= 1.0:
        return None
    return -10.0 * math.log10(1.0 - value)


def _finite_or_none(value: float | None) -> float | None:
    return None if value is None or not math.isfinite(value) else float(value)


def _median(values: list[float]) -> float | None:
    return float(statistics.median(values)) if values else None


def _mean(values: list[float | None]) -> float | None:
    """Mean of the values, None if any is missing (a partial mean would be a different set)."""
    if not values or any(v is None for v in values):
        return None
    return float(np.mean(values))


def _sha256_bytes(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def _setting_name(value: float) -> str:
    return repr(float(value))


def _model_config(path: Path) -> dict:
    """A weights file's stored config, without reading the tensors."""
    meta = zoo.read_metadata(path)
    if "config" not in meta:
        raise zoo.WeightsError(f"{path.name}: no config metadata")
    return json.loads(meta["config"])


def _library_versions() -> dict[str, str | None]:
    from importlib import metadata
    versions = {}
    for dist in ("torch", "numpy", "pillow", "imagecodecs", "pytorch-msssim", "constriction",
                 "matplotlib", "flowcodec-cli"):
        try:
            versions[dist] = metadata.version(dist)
        except metadata.PackageNotFoundError:
            versions[dist] = None
    return versions


def cpu_model() -> str:
    try:
        with open("/proc/cpuinfo", encoding="utf-8", errors="replace") as f:
            for line in f:
                if line.lower().startswith(("model name", "hardware", "processor\t: ")):
                    value = line.split(":", 1)[1].strip()
                    if value and not value.isdigit():
                        return value
    except OSError:
        pass
    return platform.processor() or platform.machine()


def _git_state() -> dict:
    root = Path(__file__).resolve().parents[2]

    def git(*args: str) -> str | None:
        try:
            out = subprocess.run(["git", "-C", str(root), *args], capture_output=True, text=True,
                                 timeout=10, check=True)
        except (OSError, subprocess.SubprocessError):
            return None
        return out.stdout.strip()

    commit = git("rev-parse", "HEAD")
    dirty = None
    if commit:
        status = git("status", "--porcelain", "--untracked-files=no")
        dirty = bool(status) if status is not None else None
    return {"commit": commit, "dirty": dirty}


def environment(device: str, threads: int | None) -> dict:
    import torch
    env = {
        "date": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
        "python": platform.python_version(),
        "platform": platform.platform(),
        "cpu": cpu_model(),
        "cpu_count": os.cpu_count(),
        "torch": torch.__version__,
        "torch_threads": torch.get_num_threads(),
        "threads_option": threads,
        "device": device,
        "cuda_device": torch.cuda.get_device_name(0) if device == "cuda" else None,
        "libraries": _library_versions(),
        "git": _git_state(),
    }
    return env


# --- planning -------------------------------------------------------------------------------


def list_images(directory: Path, limit: int | None) -> list[Path]:
    from flowcodec_cli.files.images import IMAGE_SUFFIXES
    directory = Path(directory)
    if not directory.is_dir():
        raise BenchUsageError(f"{directory}: not a directory")
    paths = sorted(p for p in directory.iterdir()
                   if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES)
    if not paths:
        raise BenchUsageError(f"{directory}: no images (looked for "
                              f"{', '.join(sorted(IMAGE_SUFFIXES))})")
    return paths[:limit] if limit is not None else paths


def read_images(paths: list[Path], errors: list) -> list[BenchImage]:
    """Read each image as 8-bit RGB; an unreadable one is reported, recorded and skipped."""
    from flowcodec_cli.files.images import read_image
    loaded = []
    for path in paths:
        try:
            data = path.read_bytes()
            picture = read_image(data)
        except Exception as exc:  # noqa: BLE001 - reported and skipped, the run goes on
            _notice(f"{path}: {_describe(exc)} (skipped)")
            errors.append((str(path), exc))
            continue
        loaded.append(BenchImage(path.name, path, _sha256_bytes(data), picture.rgb))
    return loaded


def _describe(exc: BaseException) -> str:
    if isinstance(exc, OSError) and exc.strerror:
        return exc.strerror
    return str(exc) or type(exc).__name__


def attempt(what: str, job, errors: list) -> object | None:
    """Run one bench job. A failure is reported on stderr and recorded in `errors`, and the run goes
    on: one unreadable image or failing codec must not throw away an hour of measurements. Returns
    None for a failed job."""
    try:
        return job()
    except KeyboardInterrupt:
        raise
    except Exception as exc:  # noqa: BLE001 - one job failing is reported
        _notice(f"{what}: {_describe(exc)}")
        errors.append((what, exc))
        return None


def default_betas(config: dict) -> tuple[float, ...]:
    """A model's default sweep: DEFAULT_BETAS inside its range, plus its smallest β when that is
    below 0.0005 (the flow codec's high-fidelity end)."""
    lo, hi = config.get("beta_min", DEFAULT_BETAS[0]), config.get("beta_max", DEFAULT_BETAS[-1])
    return tuple(sorted(b for b in {lo, *DEFAULT_BETAS} if lo <= b <= hi))


def plan_models(names: list[str], betas: tuple[float, ...] | None, device: str) -> list[Codec]:
    """One Codec per model name; `betas` None means each model's `default_betas`."""
    codecs = []
    for name in names:
        if name not in zoo.REGISTRY:
            raise BenchUsageError(f"--models: unknown model {name!r} "
                                  f"(known: {', '.join(sorted(zoo.REGISTRY))})")
        entry = zoo.REGISTRY[name]
        path, sha = zoo.verify(name)
        config = _model_config(path)
        lo, hi = config.get("beta_min"), config.get("beta_max")
        sweep = default_betas(config) if betas is None else betas
        for beta in sweep:
            if lo is not None and hi is not None and not lo <= beta <= hi:
                raise BenchUsageError(f"--betas: {beta:g} is outside model {name!r}'s range "
                                      f"[{lo:g}, {hi:g}]")
        codecs.append(Codec(key=name, kind="model",
                            description=f"{name} ({entry.architecture}), weights {entry.file} "
                                        f"sha256 {sha[:12]}…",
                            settings=tuple(sweep), setting_kind="beta",
                            cache_id=f"v{CACHE_VERSION}-model-{name}-{sha[:16]}-{device}",
                            weights_sha256=sha))
    return codecs


def plan_classical(names: list[str], overrides: dict[str, tuple[float, ...]]) -> list[Codec]:
    known = {c.name: c for c in classical.CODECS}
    for name in list(names) + list(overrides):
        if name not in known:
            raise BenchUsageError(f"unknown classical codec {name!r} (known: {', '.join(known)})")
    for name in overrides:
        if name not in names:
            raise BenchUsageError(f"--settings {name}=...: codec {name!r} is not benchmarked")
    versions = _library_versions()
    codecs = []
    for name in names:
        codec = known[name]
        reason = codec.unavailable_reason()
        if reason is not None:
            _notice(f"bench: skipping {name}: {reason}")
            continue
        # The id changes with the configuration and with the libraries that produce the bytes.
        ident = json.dumps([codec.description, versions.get("pillow"), versions.get("imagecodecs")])
        codecs.append(Codec(key=name, kind="classical", description=codec.description,
                            settings=tuple(overrides.get(name, codec.settings)),
                            setting_kind=codec.setting_kind,
                            cache_id=f"v{CACHE_VERSION}-classical-{name}-"
                                     f"{_sha256_bytes(ident.encode())[:12]}"))
    return codecs


# --- measuring one point --------------------------------------------------------------------


def _quality(original: np.ndarray, decoded: np.ndarray) -> dict:
    if decoded.shape != original.shape or decoded.dtype != np.uint8:
        raise ValueError(f"decoded image has shape {decoded.shape} {decoded.dtype}, "
                         f"expected {original.shape} uint8")
    psnr = metrics.psnr(original, decoded)
    ssim = metrics.ms_ssim(original, decoded)
    return {"psnr": _finite_or_none(psnr), "psnr_lossless": psnr == float("inf"),
            "ms_ssim": ssim, "ms_ssim_db": ms_ssim_db(ssim)}


def measure_model(codec: Codec, beta: float, image: BenchImage, device: str,
                  workdir: Path, side: np.ndarray | None = None) -> tuple[dict, bytes]:
    """Encode to a real .fcx file, decode from it, and measure everything. Returns the point and
    the file's bytes. `side`: the side-information image, given to the encoder and the decoder
    of models that use it there (bench --stereo)."""
    from flowcodec_cli import codec as neural
    from flowcodec_cli.codec import fcx
    from flowcodec_cli.files.images import Picture
    model = neural.LoadedCodec.get(codec.key).model
    side_picture = None if side is None else Picture(side, None, fcx.LAYOUT_RGB)
    picture = Picture(image.rgb, None, fcx.LAYOUT_RGB)
    start = time.perf_counter()
    data, stats = neural.encode(picture, beta, codec.key, device=device,
                                side_info=side_picture if model.side_info_at_encoder else None)
    encode_s = time.perf_counter() - start
    path = workdir / f"{Path(image.name).stem}-{codec.key}-{_setting_name(beta)}.fcx"
    path.write_bytes(data)
    file_bytes = path.stat().st_size
    start = time.perf_counter()
    decoded = neural.decode(path.read_bytes(), device=device,
                            side_info=side_picture if model.side_info_at_decoder else None)
    decode_s = time.perf_counter() - start
    path.unlink()
    pixels = image.pixels
    point = {
        "network_beta": stats.network_beta,
        "bytes": file_bytes,
        "bpp_file": 8.0 * file_bytes / pixels,
        "payload_bits": int(stats.payload_bits),
        "estimated_bits": float(stats.estimated_bits),
        "bpp_payload": stats.payload_bits / pixels,
        "bpp_estimated": stats.estimated_bits / pixels,
        "payload_over_estimate": (stats.payload_bits / stats.estimated_bits
                                  if stats.estimated_bits > 0 else None),
        "container_bytes": file_bytes - stats.payload_bits / 8.0,
    }
    point.update(_quality(image.rgb, decoded.rgb))
    point.update(_timing(encode_s, decode_s, pixels))
    return point, data


def measure_classical(codec: Codec, setting: float, image: BenchImage) -> dict:
    impl = classical.get(codec.key)
    start = time.perf_counter()
    data = impl.encode(image.rgb, setting)
    encode_s = time.perf_counter() - start
    start = time.perf_counter()
    decoded = impl.decode(data)
    decode_s = time.perf_counter() - start
    point = {"bytes": len(data), "bpp_file": 8.0 * len(data) / image.pixels}
    point.update(_quality(image.rgb, decoded))
    point.update(_timing(encode_s, decode_s, image.pixels))
    return point


def measure_point(codec: Codec, setting: float, image: BenchImage, device: str,
                  workdir: Path) -> dict:
    """One bench point of either kind of codec (the model's `.fcx` bytes are not kept)."""
    if codec.kind == "model":
        return measure_model(codec, setting, image, device, workdir)[0]
    return measure_classical(codec, setting, image)


def _timing(encode_s: float, decode_s: float, pixels: int) -> dict:
    mp = pixels / 1e6
    return {"encode_s": encode_s, "decode_s": decode_s,
            "encode_mp_s": mp / encode_s if encode_s > 0 else None,
            "decode_mp_s": mp / decode_s if decode_s > 0 else None}


# --- cache ----------------------------------------------------------------------------------


def _cache_path(cache_dir: Path, codec: Codec, setting: float, image: BenchImage) -> Path:
    return cache_dir / codec.cache_id / _setting_name(setting) / f"{image.sha256}.json"


def _cache_key(codec: Codec, setting: float, image: BenchImage) -> dict:
    return {"cache_id": codec.cache_id, "setting": float(setting), "image_sha256": image.sha256}


def cache_load(path: Path, key: dict) -> dict | None:
    try:
        entry = json.loads(path.read_text("utf-8"))
    except (OSError, ValueError):
        return None
    if not isinstance(entry, dict) or entry.get("key") != key or "point" not in entry:
        return None
    return entry["point"]


def cache_store(path: Path, key: dict, point: dict) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    tmp.write_text(json.dumps({"key": key, "point": point}, allow_nan=False), "utf-8")
    os.replace(tmp, path)


# --- curves and BD --------------------------------------------------------------------------


def build_curves(codecs: list[Codec], points: list[dict], n_images: int) -> dict[str, dict]:
    """`build_curve` for every codec that has points, keyed by codec."""
    curves = {}
    for codec in codecs:
        mine = [p for p in points if p["codec"] == codec.key]
        if mine:
            curves[codec.key] = build_curve(codec, mine, n_images)
    return curves


def build_curve(codec: Codec, points: list[dict], n_images: int) -> dict:
    by_setting: dict[float, list[dict]] = {}
    for p in points:
        by_setting.setdefault(p["setting"], []).append(p)
    rows = []
    for setting, group in by_setting.items():
        timed = [p for p in group if not p["warmup"]] or group
        row = {
            "setting": setting,
            "images": len(group),
            "complete": len(group) == n_images,
            "bpp": float(np.mean([p["bpp_file"] for p in group])),
            "psnr": _mean([p["psnr"] for p in group]),
            "ms_ssim": _mean([p["ms_ssim"] for p in group]),
            "median_encode_s": _median([p["encode_s"] for p in timed]),
            "median_decode_s": _median([p["decode_s"] for p in timed]),
        }
        row["ms_ssim_db"] = ms_ssim_db(row["ms_ssim"])
        if codec.kind == "model":
            # points cached before operating points existed ran the network at the setting itself
            row["network_beta"] = group[0].get("network_beta", setting)
            row["bpp_payload"] = float(np.mean([p["bpp_payload"] for p in group]))
            row["bpp_estimated"] = float(np.mean([p["bpp_estimated"] for p in group]))
            estimated = sum(p["estimated_bits"] for p in group)
            row["payload_over_estimate"] = (sum(p["payload_bits"] for p in group) / estimated
                                            if estimated > 0 else None)
            row["container_bytes"] = float(np.mean([p["container_bytes"] for p in group]))
        rows.append(row)
    rows.sort(key=lambda r: r["bpp"])
    timed = [p for p in points if not p["warmup"]] or points
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
        "speed": {
            "median_encode_s": _median([p["encode_s"] for p in timed]),
            "median_decode_s": _median([p["decode_s"] for p in timed]),
            "median_encode_mp_s": _median([p["encode_mp_s"] for p in timed
                                           if p["encode_mp_s"] is not None]),
            "median_decode_mp_s": _median([p["decode_mp_s"] for p in timed
                                           if p["decode_mp_s"] is not None]),
            "peak_rss_mib": max((p["rss_after_mib"] for p in points), default=None),
            "points_timed": len(timed),
        },
    }


def _rd_points(bpp, quality) -> list[tuple[float, float]] | None:
    """(bpp, quality) pairs, or None when any quality is missing."""
    if quality is None or any(q is None for q in quality):
        return None
    pts = [(float(b), float(q)) for b, q in zip(bpp, quality)]
    return pts if len(pts) >= 2 else None


def curve_points(curve: dict, metric: str) -> list[tuple[float, float]] | None:
    """A run curve's (bpp, quality) for metric "psnr" or "ms_ssim_db"."""
    rows = curve["points"]
    return _rd_points([r["bpp"] for r in rows], [r[metric] for r in rows])


def anchor_points(curve: anchors.Curve, metric: str) -> list[tuple[float, float]] | None:
    if metric == "psnr":
        return _rd_points(curve.bpp, curve.psnr)
    if curve.ms_ssim is None:
        return None
    return _rd_points(curve.bpp, [ms_ssim_db(v) for v in curve.ms_ssim])


def bd_pair(ours, ref, method: str) -> dict:
    """BD-rate (%) and BD-quality (dB) of `ours` against `ref`, with the method used."""
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


def bd_figures(curves: dict[str, dict], method: str) -> list[dict]:
    references: list[tuple[str, str, str, object]] = []  # (group, key, name, source)
    for key, curve in curves.items():
        references.append(("model" if curve["kind"] == "model" else "measured in this run",
                           key, curve["name"], curve))
    for key, curve in anchors.published().items():
        references.append(("published", key, curve.name, curve))
    for key, curve in anchors.measured().items():
        references.append(("reference measurement", key, curve.name, curve))
    figures = []
    for key, curve in curves.items():
        if curve["kind"] != "model":
            continue
        for group, ref_key, ref_name, ref in references:
            if ref is curve:
                continue
            entry = {"curve": key, "reference": ref_key, "reference_name": ref_name,
                     "reference_group": group}
            for metric in ("psnr", "ms_ssim_db"):
                ours = curve_points(curve, metric)
                theirs = (curve_points(ref, metric) if isinstance(ref, dict)
                          else anchor_points(ref, metric))
                entry[metric] = bd_pair(ours, theirs, method)
            figures.append(entry)
    return figures


# --- the run --------------------------------------------------------------------------------


def run(directory, *, models: list[str] | None = None, betas: tuple[float, ...] | None = None,
        codecs: list[str] | None = None, no_classical: bool = False,
        settings: dict[str, tuple[float, ...]] | None = None, images: int | None = None,
        device: str = "cpu", cache_dir=DEFAULT_CACHE, report_dir=DEFAULT_REPORT_DIR,
        json_path=None, threads: int | None = None, quiet: bool = False,
        bd_method: str = "cubic", analysis_images: int = 2) -> BenchResult:
    """Run the benchmark and write bench.json, results.md and rd.png. See the module docstring.

    Raises BenchUsageError for bad options, zoo.WeightsError / codec.CodecError when a model
    cannot run; failures of single images or jobs are reported on stderr and collected in
    `BenchResult.errors`, and the run goes on.
    """
    from tqdm import tqdm

    if codecs is not None and no_classical:
        raise BenchUsageError("--codecs and --no-classical exclude each other")
    if images is not None and images < 1:
        raise BenchUsageError("--images must be at least 1")
    if threads is not None and threads < 1:
        raise BenchUsageError("--threads must be at least 1")
    if bd_method not in ("cubic", "pchip"):
        raise BenchUsageError(f"--bd-method must be cubic or pchip, not {bd_method!r}")
    if device not in ("cpu", "cuda"):
        raise BenchUsageError(f"--device must be cpu or cuda, not {device!r}")
    if betas is not None:
        if any(b <= 0 for b in betas):
            raise BenchUsageError("--betas must be positive")
        betas = tuple(dict.fromkeys(betas))
    models = ([n for n, e in zoo.REGISTRY.items() if not e.stereo] if models is None
              else list(models))
    for name in models:
        if name in zoo.REGISTRY and zoo.REGISTRY[name].stereo:
            raise BenchUsageError(f"--models: {name!r} is a side-information model: "
                                  "benchmark it on stereo pairs with --stereo")
    classical_names = [] if no_classical else (
        [c.name for c in classical.CODECS] if codecs is None else list(codecs))
    overrides = dict(settings or {})
    if no_classical and overrides:
        raise BenchUsageError("--settings applies to classical codecs, not with --no-classical")
    for name, values in overrides.items():
        if not values:
            raise BenchUsageError(f"--settings {name}: no values given")
    if not models and not classical_names:
        raise BenchUsageError("nothing to benchmark: no models and no classical codecs")

    paths = list_images(Path(directory), images)
    planned_models = plan_models(models, betas, device)
    planned_classical = plan_classical(classical_names, overrides)

    import torch
    if threads is not None:
        torch.set_num_threads(threads)
    if device == "cuda" and planned_models and not torch.cuda.is_available():
        from flowcodec_cli.codec import CodecError
        raise CodecError("--device cuda: no CUDA device is available on this machine")

    errors: list[tuple[str, BaseException]] = []
    bench_images = read_images(paths, errors)
    if not bench_images:
        raise NoReadableImages(errors)

    # Classical codecs first: their peak-RSS figures then do not include a neural model.
    all_codecs = planned_classical + planned_models
    cache_dir = Path(cache_dir)
    jobs = [(c, s, im) for c in all_codecs for s in c.settings for im in bench_images]
    points: list[dict] = []
    warmed: set[str] = set()
    executed = cached = 0
    bar = tqdm(total=len(jobs), disable=quiet, unit="job", file=sys.stderr, dynamic_ncols=True)
    try:
        with tempfile.TemporaryDirectory(prefix="flowcodec-bench-") as tmp:
            workdir = Path(tmp)
            for codec, setting, image in jobs:
                bar.set_description(f"{codec.key} {setting:g}", refresh=False)
                path = _cache_path(cache_dir, codec, setting, image)
                key = _cache_key(codec, setting, image)
                point = cache_load(path, key)
                if point is not None:
                    point = {**point, "cached": True}
                    cached += 1
                else:
                    what = f"{image.path}: {codec.key} at {codec.setting_kind} {setting:g}"
                    measured = attempt(what, partial(measure_point, codec, setting, image, device,
                                                     workdir), errors)
                    if measured is None:
                        bar.update(1)
                        continue
                    point = {"codec": codec.key, "kind": codec.kind, "setting": float(setting),
                             "image": image.name, "image_sha256": image.sha256,
                             "width": int(image.rgb.shape[1]), "height": int(image.rgb.shape[0]),
                             **measured, "warmup": codec.key not in warmed,
                             "rss_after_mib": _peak_rss_mib()}
                    warmed.add(codec.key)
                    executed += 1
                    cache_store(path, key, point)
                    point = {**point, "cached": False}
                # Names may differ between runs for the same image bytes: report this run's.
                point["image"] = image.name
                points.append(point)
                bar.update(1)
    finally:
        bar.close()

    curves = build_curves(all_codecs, points, len(bench_images))
    document = {
        "format": FORMAT,
        "environment": environment(device, threads),
        "config": {
            "directory": str(directory),
            "images": len(bench_images),
            "models": [c.key for c in planned_models],
            "betas": {c.key: list(c.settings) for c in planned_models},
            "classical": {c.key: {"settings": list(c.settings), "setting_kind": c.setting_kind,
                                  "description": c.description} for c in planned_classical},
            "skipped_classical": [n for n in classical_names
                                  if n not in {c.key for c in planned_classical}],
            "device": device,
            "threads": threads,
            "bd_method": bd_method,
            "cache_dir": str(cache_dir),
            "jobs": len(jobs), "jobs_run": executed, "jobs_cached": cached,
            "peak_rss_mib": _peak_rss_mib(),
        },
        "images": [{"name": im.name, "sha256": im.sha256, "width": int(im.rgb.shape[1]),
                    "height": int(im.rgb.shape[0])} for im in bench_images],
        "points": points,
        "curves": curves,
        "bd": bd_figures(curves, bd_method),
        "bound_analysis": bound_analysis(planned_models, bench_images[:analysis_images]),
        "invertibility": invertibility(planned_models, bench_images),
        "errors": [f"{what}: {_describe(exc)}" for what, exc in errors],
    }
    written = write_reports(document, Path(report_dir),
                            Path(json_path) if json_path else None)
    return BenchResult(document, written, errors)


def bound_analysis(planned_models: list, bench_images: list) -> list[dict]:
    """`analysis.analyze` for every model and β, averaged over the given images."""
    from flowcodec_cli.evaluation import analysis
    from flowcodec_cli.files.images import Picture
    from flowcodec_cli.codec import fcx
    results = []
    for codec in planned_models:
        for beta in codec.settings:
            rows = [analysis.analyze(Picture(im.rgb, None, fcx.LAYOUT_RGB), beta, codec.key)
                    for im in bench_images]
            if not rows:
                continue
            mean = {key: sum(r[key] for r in rows) / len(rows)
                    for key, value in rows[0].items() if isinstance(value, float)}
            mean["gaps_bpp"] = {k: sum(r["gaps_bpp"][k] for r in rows) / len(rows)
                                for k in rows[0]["gaps_bpp"]}
            results.append({"model": codec.key, "images": len(rows), **mean, "beta": beta})
    return results


def invertibility(planned_models: list, bench_images: list) -> list[dict]:
    """For invertible models (the flow codec): max |synthesis(analysis(x)) − x| without
    quantization, pixels in [0, 1], float32, on every image, at the model's smallest and largest
    bench β."""
    from flowcodec_cli import codec as neural
    from flowcodec_cli.evaluation import analysis
    results = []
    for planned in planned_models:
        loaded = neural.LoadedCodec.get(planned.key)
        if not getattr(loaded.model, "invertible", False):
            continue
        for beta in (min(planned.settings), max(planned.settings)):
            errors = {im.name: analysis.unquantized_roundtrip_error(loaded.model, im.rgb, beta)
                      for im in bench_images}
            results.append({"model": planned.key, "beta": beta, "images": len(errors),
                            "max_abs_error": max(errors.values()), "per_image": errors})
    return results


class NoReadableImages(Exception):
    """Every image was unreadable: carries the per-image errors (already reported)."""

    def __init__(self, errors):
        super().__init__("none of the images could be read")
        self.errors = errors


# --- reports --------------------------------------------------------------------------------


def write_reports(document: dict, report_dir: Path, json_path: Path | None) -> list[Path]:
    report_dir.mkdir(parents=True, exist_ok=True)
    json_path = json_path or report_dir / "bench.json"
    json_path.parent.mkdir(parents=True, exist_ok=True)
    written = []
    _write_text(json_path, json.dumps(document, indent=1, allow_nan=False) + "\n")
    written.append(json_path)
    md_path = report_dir / "results.md"
    _write_text(md_path, markdown(document))
    written.append(md_path)
    png = plot(document, report_dir / "rd.png")
    if png is not None:
        written.append(png)
    return written


def _write_text(path: Path, text: str) -> None:
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(text, "utf-8")
    os.replace(tmp, path)


def _fmt(value, digits: int = 3, signed: bool = False) -> str:
    if value is None:
        return "n/a"
    return f"{value:+.{digits}f}" if signed else f"{value:.{digits}f}"


def _count(n: int, noun: str) -> str:
    return f"{n} {noun}" + ("" if n == 1 else "s")


def _table(headers: list[str], rows: list[list[str]]) -> str:
    align = ["---"] + ["--:"] * (len(headers) - 1)
    lines = ["| " + " | ".join(headers) + " |", "| " + " | ".join(align) + " |"]
    lines += ["| " + " | ".join(row) + " |" for row in rows]
    return "\n".join(lines)


def markdown(doc: dict) -> str:
    env, cfg, curves = doc["environment"], doc["config"], doc["curves"]
    git = env["git"]
    commit = (git["commit"][:12] + (" (uncommitted changes)" if git["dirty"] else "")
              if git["commit"] else "unknown")
    names = ", ".join(im["name"] for im in doc["images"])
    out = [
        "# flowcodec bench results",
        "",
        f"Generated by `flowcodec bench` on {env['date']}: {_count(cfg['images'], 'image')} from "
        f"`{cfg['directory']}` ({names}).",
        "",
        f"Machine: {env['cpu']} ({env['cpu_count']} logical CPUs), device `{env['device']}`"
        + (f" ({env['cuda_device']})" if env.get("cuda_device") else "")
        + f", torch {env['torch']} with {env['torch_threads']} threads, Python {env['python']}; "
        f"code at commit {commit}. Jobs: {cfg['jobs']} ({cfg['jobs_run']} run, "
        f"{cfg['jobs_cached']} from the cache: timings and memory of cached points are those of "
        "the run that made them).",
        "",
        "Conventions: bpp = 8·bytes/(H·W) of the complete file (the `.fcx` container included "
        "for our models, the encoded byte string for classical codecs). PSNR-RGB on the 8-bit "
        "images; MS-SSIM-RGB (5 scales, data range 255), also shown in dB as "
        "−10·log10(1 − MS-SSIM). A curve point is the mean over images of per-image values "
        "(the convention of the published anchors); times are medians over images, without "
        "the warm-up job of each codec (the first one run, which includes model loading).",
    ]
    if cfg["images"] != 24:
        out += ["", f"Note: the published and reference curves are means over the 24 Kodak "
                    f"images; this run used {cfg['images']}, so BD figures against them are "
                    "indicative only."]
    if cfg["skipped_classical"]:
        out += ["", "Skipped (not available here): " + ", ".join(cfg["skipped_classical"]) + "."]
    if doc["errors"]:
        out += ["", "Errors (skipped):", ""] + [f"- {e}" for e in doc["errors"]]

    out += ["", "## Rate-distortion", ""]
    for key, curve in curves.items():
        out += [f"### {curve['name']}", "", curve["description"], ""]
        if curve["kind"] == "model":
            headers = ["β", "network β", "bpp (file)", "bpp payload", "bpp estimate",
                       "payload/estimate", "PSNR dB", "MS-SSIM", "MS-SSIM dB", "enc s", "dec s"]
            rows = [[f"{r['setting']:g}", f"{r['network_beta']:g}", _fmt(r["bpp"], 4),
                     _fmt(r["bpp_payload"], 4), _fmt(r["bpp_estimated"], 4),
                     _fmt(r["payload_over_estimate"], 4), _fmt(r["psnr"], 2),
                     _fmt(r["ms_ssim"], 4), _fmt(r["ms_ssim_db"], 2),
                     _fmt(r["median_encode_s"], 3), _fmt(r["median_decode_s"], 3)]
                    for r in curve["points"]]
        else:
            headers = [curve["setting_kind"], "bpp", "PSNR dB", "MS-SSIM", "MS-SSIM dB",
                       "enc s", "dec s"]
            rows = [[f"{r['setting']:g}", _fmt(r["bpp"], 4), _fmt(r["psnr"], 2),
                     _fmt(r["ms_ssim"], 4), _fmt(r["ms_ssim_db"], 2),
                     _fmt(r["median_encode_s"], 4), _fmt(r["median_decode_s"], 4)]
                    for r in curve["points"]]
        out += [_table(headers, rows), ""]

    out += ["## Bjøntegaard deltas", "",
            f"Method: {cfg['bd_method']}"
            + (" (VCEG-M33 cubic fit in log-rate; pairs where a curve has fewer than 4 points "
               "fall back to pchip, marked †)" if cfg["bd_method"] == "cubic" else
               " (piecewise cubic Hermite interpolation)")
            + ". BD-rate: average rate difference at equal quality, negative = fewer bits than "
              "the reference. BD-PSNR / BD-MS-SSIM: average quality gain at equal rate in dB, "
              "positive = better. MS-SSIM figures use MS-SSIM in dB. n/a: the metric is not "
              "published for that curve, or the curves do not overlap.", ""]
    for key, curve in curves.items():
        if curve["kind"] != "model":
            continue
        out += [f"### {curve['name']} against each reference", ""]
        rows = []
        for entry in (e for e in doc["bd"] if e["curve"] == key):
            cells = [entry["reference_name"] + f" (`{entry['reference']}`)",
                     entry["reference_group"]]
            for metric in ("psnr", "ms_ssim_db"):
                bd = entry[metric]
                mark = "†" if cfg["bd_method"] == "cubic" and bd["method"] == "pchip" else ""
                cells += [_fmt(bd["bd_rate_pct"], 1, signed=True) + ("%" if bd["bd_rate_pct"]
                                                                     is not None else "") + mark,
                          _fmt(bd["bd_quality_db"], 2, signed=True) + mark]
            rows.append(cells)
        out += [_table(["reference", "group", "BD-rate (PSNR)", "BD-PSNR dB",
                        "BD-rate (MS-SSIM)", "BD-MS-SSIM dB"], rows), ""]

    out += ["## Speed and memory", "",
            "Median seconds per image over all settings (warm-up jobs excluded), megapixels per "
            "second (median of per-image figures), and the process peak RSS "
            "(getrusage ru_maxrss) after the codec's jobs: it never decreases during a run, so "
            "it is an upper bound that includes everything loaded before (Python, torch, "
            "earlier codecs; classical codecs run first).", ""]
    rows = []
    for key, curve in curves.items():
        s = curve["speed"]
        rows.append([curve["name"], _fmt(s["median_encode_s"], 4), _fmt(s["median_decode_s"], 4),
                     _fmt(s["median_encode_mp_s"], 2), _fmt(s["median_decode_mp_s"], 2),
                     _fmt(s["peak_rss_mib"], 0)])
    out += [_table(["codec", "enc s/image", "dec s/image", "enc MP/s", "dec MP/s",
                    "peak RSS MiB"], rows), ""]

    model_curves = [c for c in curves.values() if c["kind"] == "model"]
    if model_curves:
        out += ["## Payload vs estimate", "",
                "Range-coded payload against the model's estimated information content (mean "
                "bpp over images; ratio of the total bits), and the container overhead.", ""]
        for curve in model_curves:
            for r in sorted(curve["points"], key=lambda r: r["setting"]):
                out.append(f"- payload vs estimate: {curve['key']} β={r['setting']:g}: payload "
                           f"{_fmt(r['bpp_payload'], 4)} bpp, estimate "
                           f"{_fmt(r['bpp_estimated'], 4)} bpp, ratio "
                           f"{_fmt(r['payload_over_estimate'], 4)}; file {_fmt(r['bpp'], 4)} bpp "
                           f"(container {_fmt(r['container_bytes'], 1)} bytes/image)")
        out.append("")

    if doc.get("bound_analysis"):
        out += ["## Rate-distortion bound of the latents", "",
                "Gaussian reverse water-filling bound from the latents' second moments at the "
                "latent distortion that rounding causes, the real payload beside it, and the gap "
                "split into its parts (bpp; negative = a saving; see `flowcodec analyze` and "
                "`analysis.py`). Means over the first "
                f"{_count(doc['bound_analysis'][0]['images'], 'image')}.", ""]
        rows = [[a["model"], f"{a['beta']:g}", _fmt(a["bound_bpp"], 4),
                 _fmt(a["real_payload_bpp"], 4), _fmt(a["total_gap_bpp"], 4, True),
                 _fmt(a["gaps_bpp"]["quantization"], 4, True),
                 _fmt(a["gaps_bpp"]["variance_estimation"], 4, True),
                 _fmt(a["gaps_bpp"]["context_mean_prediction"], 4, True),
                 _fmt(a["gaps_bpp"]["coding_overhead_and_z"], 4, True)]
                for a in doc["bound_analysis"]]
        out += [_table(["model", "β", "bound", "real", "gap", "quantization",
                        "variance estimation", "context (mean)", "coding + z"], rows), ""]

    if doc.get("invertibility"):
        out += ["## Invertibility without quantization", "",
                "max |synthesis(analysis(x)) − x| (pixels in [0, 1], float32, latents not "
                "rounded) over every image: the error of the transform itself.", ""]
        rows = [[a["model"], f"{a['beta']:g}", str(a["images"]), f"{a['max_abs_error']:.2e}"]
                for a in doc["invertibility"]]
        out += [_table(["model", "β", "images", "max abs error"], rows), ""]

    out += ["## Sources", "",
            anchors.load()["published"]["source"], ""]
    used = {e["reference"] for e in doc["bd"] if e["reference_group"] == "published"}
    for key, curve in anchors.published().items():
        if key in used or key in PLOTTED_PUBLISHED:
            out.append(f"- `{key}`: {curve.source}")
    out.append("")
    return "\n".join(out)


def plot(doc: dict, path: Path) -> Path | None:
    """rd.png: PSNR vs bpp and MS-SSIM (dB) vs bpp. None, with a notice, without matplotlib."""
    try:
        import matplotlib
        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        _notice("bench: matplotlib is not installed, rd.png skipped "
                "(pip install 'flowcodec-cli[bench]')")
        return None

    curves = doc["curves"]
    published = anchors.published()
    series = []  # (label, bpp, psnr, msssim_db, style)
    ours_colors = iter(["#1f3fbf", "#d62728", "#6a3d9a", "#e377c2", "#17becf"] * 4)
    for curve in curves.values():
        if curve["kind"] != "model":
            continue
        rows = curve["points"]
        series.append((curve["name"], [r["bpp"] for r in rows], [r["psnr"] for r in rows],
                       [r["ms_ssim_db"] for r in rows],
                       dict(color=next(ours_colors), lw=2.8, marker="o", ms=5, zorder=5)))
    for curve in curves.values():
        if curve["kind"] != "classical":
            continue
        rows = curve["points"]
        series.append((curve["name"] + " (measured)", [r["bpp"] for r in rows],
                       [r["psnr"] for r in rows], [r["ms_ssim_db"] for r in rows],
                       dict(color=FAMILY_COLORS.get(curve["key"], "#555555"), lw=1.3,
                            marker=".", ms=6, zorder=3)))
    for key in PLOTTED_PUBLISHED:
        if key not in published:
            continue
        c = published[key]
        ssim_db = [ms_ssim_db(v) for v in c.ms_ssim] if c.ms_ssim else [None] * len(c.bpp)
        series.append((c.name + " (published)", list(c.bpp), list(c.psnr), ssim_db,
                       dict(color=FAMILY_COLORS.get(key, "#999999"), lw=1.1, ls="--",
                            zorder=2, alpha=0.9)))

    ours = [b for s in series if s[4].get("ls") != "--" for b in s[1]]
    xmax = max(1.0, 1.1 * max(ours)) if ours else 2.0

    fig, axes = plt.subplots(1, 2, figsize=(14, 6))
    for ax, index, ylabel in ((axes[0], 2, "PSNR-RGB [dB]"),
                              (axes[1], 3, "MS-SSIM-RGB [dB]  (−10·log10(1 − MS-SSIM))")):
        visible = []
        for label, bpp, psnr, ssim, style in series:
            values = (bpp, psnr, ssim)[index - 1]
            pts = [(b, v) for b, v in zip(bpp, values) if v is not None]
            if not pts:
                continue
            style = {k: v for k, v in style.items() if v is not None}
            ax.plot([p[0] for p in pts], [p[1] for p in pts], label=label, **style)
            visible += [v for b, v in pts if b <= xmax]
        ax.set_xlim(0, xmax)
        if visible:
            lo, hi = min(visible), max(visible)
            pad = 0.04 * (hi - lo or 1.0)
            ax.set_ylim(lo - pad, hi + pad)
        ax.set_xlabel("bits per pixel (complete file)")
        ax.set_ylabel(ylabel)
        ax.grid(True, alpha=0.3)
        ax.legend(fontsize=7, loc="best")
    cfg = doc["config"]
    fig.suptitle(f"flowcodec bench: {_count(cfg['images'], 'image')} from "
                 f"{Path(cfg['directory']).name}, "
                 f"mean of per-image values (published curves: 24 Kodak images)", fontsize=10)
    fig.tight_layout()
    tmp = path.with_name(f".{path.stem}.tmp.png")
    fig.savefig(tmp, dpi=130)
    plt.close(fig)
    os.replace(tmp, path)
    return path


__all__ = ["run", "BenchUsageError", "BenchResult", "NoReadableImages", "DEFAULT_BETAS",
           "markdown", "plot", "parse_floats", "parse_names", "parse_setting_overrides"]
