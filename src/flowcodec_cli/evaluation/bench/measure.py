"""Measuring one bench point: one codec at one setting on one image.

* **Our models**: encode for real to a `.fcx` file in a temporary folder, and report three
  rates: `bpp_file` (8·file size/(H·W), the container included: the rate a user pays),
  `bpp_payload` (the range-coded streams alone) and `bpp_estimated` (the model's information
  content of the coded symbols, what training minimizes), plus the ratio payload/estimate (how
  close the entropy coder gets to the model). The file is then read back and decoded.
* **Classical codecs** (classical.py): bpp from the length of the encoded byte string, a
  complete file (container overhead counted, as in the published curves).
* For both: PSNR-RGB, MS-SSIM-RGB and, with the optional `metrics` extra, SSIMULACRA2 of the
  decoded image against the original (metrics.py), encode and decode wall time
  (`time.perf_counter`) and megapixels per second. `peak_rss_mib` is the process peak RSS
  (`getrusage(RUSAGE_SELF).ru_maxrss`; tracemalloc does not see torch's allocations), taken by
  the run after each job.
"""

from __future__ import annotations

import math
import resource
import sys
import time
from pathlib import Path

import numpy as np

from flowcodec_cli.evaluation import classical
from flowcodec_cli.evaluation import metrics
from flowcodec_cli.evaluation.bench.cache import setting_name
from flowcodec_cli.evaluation.bench.failures import notice
from flowcodec_cli.evaluation.bench.images import BenchImage
from flowcodec_cli.evaluation.bench.plan import Codec


def peak_rss_mib() -> float:
    """The process peak RSS so far, MiB (ru_maxrss is bytes on macOS, KiB elsewhere)."""
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return peak / (1 << 20) if sys.platform == "darwin" else peak / 1024


def ms_ssim_db(value: float | None) -> float | None:
    """MS-SSIM in dB, −10·log10(1 − MS-SSIM): spreads the values near 1 for plots and BD."""
    if value is None or value >= 1.0:
        return None
    return -10.0 * math.log10(1.0 - value)


def optional_metrics_notice() -> None:
    """One line on stderr per run when SSIMULACRA2 cannot be computed, so that its n/a in the
    reports reads as "not installed" rather than as a failure."""
    reason = metrics.ssimulacra2_unavailable()
    if reason is not None:
        notice(f"bench: {reason}, SSIMULACRA2 skipped (pip install 'flowcodec-cli[metrics]')")


def quality(original: np.ndarray, decoded: np.ndarray) -> dict:
    """PSNR, MS-SSIM and SSIMULACRA2 of a decoded image; a lossless decode has PSNR None (JSON
    has no inf) and `psnr_lossless` set; SSIMULACRA2 is None without the `metrics` extra."""
    if decoded.shape != original.shape or decoded.dtype != np.uint8:
        raise ValueError(f"decoded image has shape {decoded.shape} {decoded.dtype}, "
                         f"expected {original.shape} uint8")
    psnr = metrics.psnr(original, decoded)
    ssim = metrics.ms_ssim(original, decoded)
    return {"psnr": None if not math.isfinite(psnr) else float(psnr),
            "psnr_lossless": psnr == float("inf"),
            "ms_ssim": ssim, "ms_ssim_db": ms_ssim_db(ssim),
            "ssimulacra2": metrics.ssimulacra2(original, decoded)}


def timing(encode_s: float, decode_s: float, pixels: int) -> dict:
    """Seconds and megapixels per second (None for a time too short to measure)."""
    mp = pixels / 1e6
    return {"encode_s": encode_s, "decode_s": decode_s,
            "encode_mp_s": mp / encode_s if encode_s > 0 else None,
            "decode_mp_s": mp / decode_s if decode_s > 0 else None}


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
                                side_info=side_picture if model.side_info_at_encoder else None,
                                effort=codec.effort)
    encode_s = time.perf_counter() - start
    path = workdir / f"{Path(image.name).stem}-{codec.key}-{setting_name(beta)}.fcx"
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
        "effort": stats.effort,  # what the encoder ran at (dsc-joint: at least 1)
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
    point.update(quality(image.rgb, decoded.rgb))
    point.update(timing(encode_s, decode_s, pixels))
    return point, data


def measure_classical(codec: Codec, setting: float, image: BenchImage) -> dict:
    """Encode to a byte string (a complete file of that format), decode it, and measure."""
    impl = classical.get(codec.key)
    start = time.perf_counter()
    data = impl.encode(image.rgb, setting)
    encode_s = time.perf_counter() - start
    start = time.perf_counter()
    decoded = impl.decode(data)
    decode_s = time.perf_counter() - start
    point = {"bytes": len(data), "bpp_file": 8.0 * len(data) / image.pixels}
    point.update(quality(image.rgb, decoded))
    point.update(timing(encode_s, decode_s, image.pixels))
    return point


def measure_point(codec: Codec, setting: float, image: BenchImage, device: str,
                  workdir: Path) -> dict:
    """One bench point of either kind of codec (the model's `.fcx` bytes are not kept)."""
    if codec.kind == "model":
        return measure_model(codec, setting, image, device, workdir)[0]
    return measure_classical(codec, setting, image)
