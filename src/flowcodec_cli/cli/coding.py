"""encode and decode: the commands that code files, through the shared runner."""

from __future__ import annotations

import sys
from dataclasses import dataclass
from pathlib import Path

import click

from flowcodec_cli.cli import runner
from flowcodec_cli.codec.effort import MAX_EFFORT, STEPS
from flowcodec_cli.codec.rate_request import DEFAULT_QUALITY
from flowcodec_cli.errors import classify
from flowcodec_cli.files.atomic import write_atomic
from flowcodec_cli.files.jobs import IMAGE_SUFFIXES, read_input

EFFORT_HELP = (
    "Encoder effort, like cjxl -e: 0 codes the network's latents, each rounded up or down "
    "against its bits (rate-distortion optimized rounding, about 0.1 s of a 1 s 768x512 encode); "
    f"{', '.join(map(str, range(1, MAX_EFFORT + 1)))} refine them for this image's D + β·R by "
    f"{', '.join(map(str, STEPS[1:]))} gradient steps: 3.4%, 4.4%, 4.6% lower D + β·R than nearest rounding on a "
    "768x512 held-out photo at β 0.004 (3-8% on smaller crops), at 17x, 32x, 62x the encode "
    "time of effort 0 (47, 88, 168 s against 2.7 s for 768x512 on one core of a busy machine). "
    "On Kodak, effort 3 needs 6.2% fewer bits than effort 0 for the same PSNR, at about 52 s "
    "a 768x512 image on 2 threads. "
    "Same decoder, same format, same bytes every run. Not for dsc: its encoder never sees the "
    "decoder's side view.")



def _quality_help() -> str:
    """-q's help, with what to expect from the default model (measured, codec/quality.py)."""
    from flowcodec_cli import zoo
    from flowcodec_cli.codec import quality
    typical = ", ".join(f"Q{q} {bpp:.2f} bpp {db:.1f} dB"
                        for q, bpp, db in quality.typical(zoo.DEFAULT_MODEL)
                        if q in (30, 50, 75, 90, 100))
    return (f"Quality 0-100, higher is better, as in cjpeg, cwebp, avifenc [default: "
            f"{DEFAULT_QUALITY}]. Q aims at the PSNR of a 4:4:4 JPEG at quality Q, in far fewer "
            f"bytes, and the same Q gives about the same PSNR with every model. Typical on "
            f"held-out photos with the default model: {typical}.")


@click.command()
@click.argument("inputs", nargs=-1, required=True)
@click.option("-q", "--quality", type=click.FloatRange(0, 100), default=None,
              help=_quality_help())
@click.option("--beta", type=float, default=None,
              help="For experts, instead of -q: the rate weight β of L = D + β·R (larger β, "
                   "smaller files), within the model's range.")
@click.option("--target-size", type=click.IntRange(min=1), default=None, metavar="BYTES",
              help="Search β for a file of this many bytes (within 1%), per image: every probe "
                   "is a real encode.")
@click.option("--target-bpp", type=float, default=None,
              help="Search β for this many bits per pixel (within 1%), per image.")
@click.option("--target-psnr", type=float, default=None, metavar="DB",
              help="Search β for this PSNR (within 0.05 dB), per image: every probe is a real "
                   "encode and decode.")
@click.option("--model", default=None, help="Model name (see `flowcodec models`).")
@click.option("--side-info", "side_info", default=None,
              help="Side-information image, only for joint models (dsc-joint) whose encoder "
                   "sees it; a distributed model (dsc) needs it at decode time only.")
@click.option("--effort", type=click.IntRange(0, MAX_EFFORT), default=0, show_default=True,
              help=EFFORT_HELP)
@click.option("--strip", is_flag=True,
              help="Drop ICC profile, EXIF and XMP metadata (kept by default).")
@click.option("--frame", type=click.IntRange(min=0), default=None, metavar="N",
              help="Code frame N (0-based) of an animated or multi-page image; such images "
                   "are refused without it.")
@click.option("-v", "--verbose", is_flag=True,
              help="Per file also the ratio to the input file and, after an internal decode, "
                   "PSNR and MS-SSIM (in --json too).")
@runner.with_output_options
def encode(inputs, quality, beta, target_size, target_bpp, target_psnr, model, side_info, effort,
           strip, frame, verbose, output, force, quiet, as_json, device, processes, threads):
    """Compress images (files, directories of images, or '-' for stdin) into .fcx files."""
    from flowcodec_cli import zoo
    model = model or zoo.DEFAULT_MODEL
    rate = _rate_request_or_exit(model, quality, beta, target_size, target_bpp, target_psnr)
    jobs = runner.plan_or_exit(inputs, output, ".fcx", IMAGE_SUFFIXES,
                               processes=processes)
    jobs, failed = runner.refuse_existing(jobs, output, force)
    side = runner.read_side_info_or_exit(side_info)
    work = EncodeFile(rate, model, effort, strip, frame, verbose, side, device, force)
    runner.run_batch(jobs, work, quiet, as_json, failed, processes, threads)


@dataclass(frozen=True)
class EncodeFile:
    """One file's encode as the command line's options set it, returning its --json record.
    A module-level callable rather than a closure, so that --jobs can send it to worker
    processes (it is pickled with its options, the side image included)."""

    rate: object            # codec.rate_request.RateRequest
    model: str
    effort: int
    strip: bool
    frame: int | None
    verbose: bool
    side: object            # codec.picture.Picture or None
    device: str
    force: bool

    def __call__(self, src: str, dst: str) -> dict:
        from flowcodec_cli.files import images
        raw = read_input(src)
        # a bad input fails here, before torch is imported
        picture = images.read_image(raw, self.frame, keep_metadata=not self.strip)
        from flowcodec_cli import codec
        from flowcodec_cli.codec import rate_request
        rate = self.rate
        record = {"input": src, "output": dst, "model": self.model, "effort": self.effort}
        data, stats, search = rate_request.encode(picture, rate, self.model, device=self.device,
                                                  side_info=self.side, effort=self.effort)
        if search is None:
            record.update(beta=rate.beta)
        else:
            record.update(beta=search.best.beta, target={"kind": rate.target.kind,
                                                         "value": rate.target.value},
                          **search.record())
        if rate.quality is not None:
            record["quality"] = rate.quality
        write_atomic(dst, data, self.force)
        pixels = picture.rgb.shape[0] * picture.rgb.shape[1]
        record.update(bytes=len(data), bpp=8 * len(data) / pixels,
                      estimated_bpp=stats.estimated_bits / pixels,
                      network_beta=stats.network_beta, input_bytes=len(raw),
                      ratio=len(raw) / len(data))
        if self.verbose:
            record.update(_decoded_quality(picture, codec.decode(data, side_info=self.side,
                                                                  device=self.device)))
        return record


def _rate_request_or_exit(model, quality, beta, target_size, target_bpp, target_psnr):
    """The rate as -q, --beta or a --target-* option sets it (codec/rate_request.py, the rule the
    Python API shares), resolved before any file is read: a contradictory request, an unknown
    model or one without a quality scale is refused at once."""
    from flowcodec_cli.codec import rate_request
    targets = {"size": target_size, "bpp": target_bpp, "psnr": target_psnr}
    try:
        return rate_request.resolve(model, quality, beta, targets, rate_request.CLI)
    except ValueError as exc:
        runner.usage_error(str(exc))
    except Exception as exc:  # noqa: BLE001 - an unknown model, no scale for it or its weights
        failure = classify(exc)
        click.echo(f"flowcodec: {failure.message}", err=True)
        sys.exit(failure.code)


def _decoded_quality(picture, decoded) -> dict:
    """PSNR and MS-SSIM of a decoded picture against the original (MS-SSIM is None below the
    161-pixel side that its five scales need)."""
    from flowcodec_cli.evaluation import metrics
    return {"psnr": round(metrics.psnr(picture.rgb, decoded.rgb), 4),
            "ms_ssim": metrics.ms_ssim(picture.rgb, decoded.rgb)}


@click.command()
@click.argument("inputs", nargs=-1, required=True)
@click.option("--side-info", "side_info", default=None,
              help="Side-information image for files that need it (the decoder's own view).")
@runner.with_output_options
def decode(inputs, side_info, output, force, quiet, as_json, device, processes, threads):
    """Decompress .fcx files into images (PNG unless the output name says otherwise)."""
    from flowcodec_cli.files import images
    jobs = runner.plan_or_exit(inputs, output, ".png", {".fcx"}, images.output_format,
                               processes=processes)
    jobs, failed = runner.refuse_existing(jobs, output, force)
    side = runner.read_side_info_or_exit(side_info)
    runner.run_batch(jobs, DecodeFile(side, device, force), quiet, as_json, failed, processes,
                     threads)


@dataclass(frozen=True)
class DecodeFile:
    """One file's decode, returning its --json record; picklable for --jobs, like EncodeFile."""

    side: object            # codec.picture.Picture or None
    device: str
    force: bool

    def __call__(self, src: str, dst: str) -> dict:
        from flowcodec_cli.codec import fcx
        from flowcodec_cli.files import images
        data = read_input(src)
        fcx.unpack(data)  # a corrupt file fails here, before torch is imported
        from flowcodec_cli import codec
        picture = codec.decode(data, side_info=self.side, device=self.device)
        suffix = Path(dst).suffix if dst != "-" else ".png"
        encoded = images.encode_image_bytes(picture, suffix)
        write_atomic(dst, encoded, self.force)
        return {"input": src, "output": dst, "bytes": len(encoded),
                "width": picture.rgb.shape[1], "height": picture.rgb.shape[0]}
