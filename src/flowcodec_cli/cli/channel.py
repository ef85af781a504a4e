"""channel: one simulated transmission of an image over a noisy channel (joint source–channel
coding, docs/channel.md), with the PSNR of what the receiver shows."""

from __future__ import annotations

import json
import math
import sys

import click

from flowcodec_cli.cli import runner
from flowcodec_cli.errors import EXIT_OK, classify


@click.command()
@click.argument("image")
@click.option("--snr", "snrs", type=float, multiple=True, metavar="DB",
              help="Channel SNR in dB: signal power 1 per channel use, noise variance "
                   "10^(-SNR/10). Repeatable: one line per SNR.")
@click.option("--sweep", is_flag=True, help="The SNRs 0, 2, ..., 20 dB, as a table.")
@click.option("--ratio", default=None, metavar="K/N",
              help="Bandwidth ratio: channel uses per pixel value, m/192 for a whole m (1/6 "
                   "sends 32 of the flow's 192 latent channels, 1/12 sends 16); it also picks "
                   "the zoo's weights trained for it, if any [default: the model's, 1/6].")
@click.option("--seed", type=click.IntRange(min=0), default=0, show_default=True,
              help="Seed of the channel noise: the same inputs and seed give the same output "
                   "bytes.")
@click.option("-o", "--output", default=None,
              help="Write the received image here (PNG unless the suffix says otherwise); "
                   "one SNR only.")
@click.option("--force", is_flag=True, help="Overwrite an existing output file.")
@click.option("--json", "as_json", is_flag=True, help="Print one JSON line per SNR.")
@click.option("--weights", default=None, metavar="FILE",
              help="Channel model weights (.safetensors from `flowcodec train --model "
                   "flow-channel`, or flow weights with an untrained receiver) [default: the "
                   "zoo's weights trained for --ratio (flow-channel: 1/6, flow-channel-1-12: "
                   "1/12), else flow-channel].")
@click.option("--threads", type=click.IntRange(min=1), default=None, metavar="N",
              help="Torch threads [default: torch's own choice]; the output is the same.")
def channel(image, snrs, sweep, ratio, seed, output, force, as_json, weights, threads):
    """Send IMAGE over an AWGN channel as the flow codec's latents (analog symbols, no bits)
    and print the PSNR of what the receiver reconstructs."""
    snrs = _snrs_or_exit(snrs, sweep, output)
    if output is not None:
        _check_output_or_exit(image, output, force)
    from flowcodec_cli.files import images
    from flowcodec_cli.files.jobs import read_input
    try:
        picture = images.read_image(read_input(image))
    except Exception as exc:  # noqa: BLE001 - one line and the documented code
        _fail(image, exc)
    from flowcodec_cli.codec import jscc
    if threads is not None:
        import torch
        torch.set_num_threads(threads)
    try:
        loaded = jscc.load(weights, ratio)
    except Exception as exc:  # noqa: BLE001
        _fail(weights or "channel model", exc)
    try:
        budget = jscc.budget(loaded.model, *picture.rgb.shape[:2], ratio)
    except ValueError as exc:  # an unsupported ratio: a usage error
        runner.usage_error(f"--ratio: {exc}")
    ratio = ratio or loaded.model.config.ratio
    try:
        received = jscc.transmit(loaded.model, picture.rgb, snrs, ratio, seed)
        if output is not None:
            _write(output, received[0].rgb, force)
    except Exception as exc:  # noqa: BLE001
        _fail(image, exc)
    records = [_record(image, output, r, ratio, seed, budget, loaded) for r in received]
    if as_json:
        for record in records:
            click.echo(json.dumps(record))
    elif len(records) == 1:
        click.echo(_line(records[0]))
    else:
        click.echo(_table(image, records))
    sys.exit(EXIT_OK)


def _snrs_or_exit(snrs: tuple[float, ...], sweep: bool, output: str | None) -> list[float]:
    """The SNRs asked for, or a usage error: none, both --snr and --sweep, a non-finite one,
    or an output file for several."""
    from flowcodec_cli.codec.jscc import SWEEP_SNRS
    if sweep and snrs:
        runner.usage_error("channel: --snr and --sweep exclude each other")
    if not sweep and not snrs:
        runner.usage_error("channel: give --snr DB (repeatable) or --sweep")
    values = list(SWEEP_SNRS if sweep else snrs)
    if not all(math.isfinite(v) for v in values):
        runner.usage_error("channel: --snr must be finite")
    if output is not None and len(values) > 1:
        runner.usage_error("channel: -o writes one received image: give one --snr")
    return values


def _check_output_or_exit(image: str, output: str, force: bool) -> None:
    """The output's suffix must name an image format; an existing file is refused without
    --force, before any work (runner.refuse_existing, the codec commands' rule)."""
    from pathlib import Path
    from flowcodec_cli.files import images
    if output == "-":
        runner.usage_error("channel: -o -: write the received image to a file")
    try:
        images.output_format(Path(output).suffix)
    except ValueError as exc:
        runner.usage_error(f"{output}: {exc}")
    _, failed = runner.refuse_existing([(image, output)], output, force)
    if failed:
        sys.exit(failed)


def _write(output: str, rgb, force: bool) -> None:
    from pathlib import Path
    from flowcodec_cli.codec import fcx
    from flowcodec_cli.codec.picture import Picture
    from flowcodec_cli.files import images
    from flowcodec_cli.files.atomic import write_atomic
    data = images.encode_image_bytes(Picture(rgb, None, fcx.LAYOUT_RGB), Path(output).suffix)
    write_atomic(output, data, force)


def _fail(what: str, exc: BaseException):
    failure = classify(exc)
    click.echo(f"flowcodec: {what}: {failure.message}", err=True)
    sys.exit(failure.code)


def _record(image, output, received, ratio, seed, budget, loaded) -> dict:
    return {"input": image, "output": output, "snr_db": received.snr_db, "ratio": str(ratio),
            "sent_channels": budget.sent_channels, "latent_channels": budget.latent_channels,
            "channel_uses": budget.channel_uses, "pixel_values": budget.pixel_values,
            "seed": seed, "weights": loaded.name, "weights_sha256": loaded.sha256,
            "psnr": None if math.isinf(received.psnr) else round(received.psnr, 4),
            "seconds": round(received.seconds + received.send_seconds, 4)}


def _psnr(record: dict) -> str:
    return "inf" if record["psnr"] is None else f"{record['psnr']:.2f}"


def _line(record: dict) -> str:
    out = f" -> {record['output']}" if record["output"] else ""
    return (f"{record['input']}{out}: SNR {record['snr_db']:g} dB, ratio {record['ratio']} "
            f"({record['sent_channels']} of {record['latent_channels']} latent channels, "
            f"{record['channel_uses']} channel uses for {record['pixel_values']} pixel values), "
            f"PSNR {_psnr(record)} dB, {record['seconds']:.2f} s")


def _table(image: str, records: list[dict]) -> str:
    first = records[0]
    lines = [f"{image}: ratio {first['ratio']} ({first['sent_channels']} of "
             f"{first['latent_channels']} latent channels), seed {first['seed']}, "
             f"weights {first['weights']}", "SNR dB  PSNR dB"]
    lines += [f"{r['snr_db']:6g}  {_psnr(r):>7}" for r in records]
    return "\n".join(lines)
