"""info, analyze and models: the commands that look at files and models without coding."""

from __future__ import annotations

import json
import sys

import click

from flowcodec_cli.cli import runner
from flowcodec_cli.errors import EXIT_USAGE
from flowcodec_cli.files.jobs import read_input

@click.command()
@click.argument("inputs", nargs=-1, required=True)
@click.option("--json", "as_json", is_flag=True, help="Print the header as JSON.")
def info(inputs, as_json):
    """Show the header of .fcx files (no model is loaded)."""
    from flowcodec_cli.codec import fcx

    def produce(src):
        data = read_input(src)
        yield data, fcx.unpack(data)

    def emit(job, unpacked):
        _print_header(job[0], *unpacked, as_json)

    sys.exit(runner.each_input([(src,) for src in inputs], produce, emit))


def _print_header(src: str, data: bytes, container, as_json: bool) -> None:
    """info's output for one file: the header fields plus what only the whole file tells (its
    size, the stream sizes, the bpp), as one JSON line or as an indented list."""
    from flowcodec_cli.codec import fcx
    record = {"file": src, **fcx.describe(data, container)}
    if as_json:
        click.echo(json.dumps(record))
    else:
        click.echo(f"{src}:")
        for key, value in record.items():
            if key != "file":
                click.echo(f"  {key:20s} {value}")


@click.command()
@click.argument("inputs", nargs=-1, required=True)
@click.option("--beta", "betas", default="0.0005,0.005,0.05", show_default=True,
              help="Comma-separated β values.")
@click.option("--model", default=None, help="Model name (see `flowcodec models`).")
@click.option("--json", "as_json", is_flag=True, help="One JSON line per image and β.")
def analyze(inputs, betas, model, as_json):
    """Rate-distortion bound of the latents vs the real rate, and the gap split into
    quantization, variance-estimation and context (mean prediction) parts."""
    from flowcodec_cli.evaluation import analysis
    from flowcodec_cli.files import images
    from flowcodec_cli import zoo
    model = model or zoo.DEFAULT_MODEL
    try:
        beta_values = [float(b) for b in betas.split(",")]
    except ValueError:
        click.echo(f"flowcodec: --beta: not a list of numbers: {betas}", err=True)
        sys.exit(EXIT_USAGE)

    def produce(src):
        for beta in beta_values:  # a failure skips this image's remaining β values
            yield beta, analysis.analyze(images.read_image(src), beta, model)

    def emit(job, analyzed):
        _print_analysis(job[0], *analyzed, as_json)

    sys.exit(runner.each_input([(src,) for src in inputs], produce, emit))


def _print_analysis(src: str, beta: float, result: dict, as_json: bool) -> None:
    """analyze's output for one image and β: the JSON record, or one line with the gap between
    the bound and the real rate split into its parts (they add up to the total gap)."""
    if as_json:
        click.echo(json.dumps({"image": src, **result}))
        return
    gaps = result["gaps_bpp"]
    click.echo(
        f"{src} β={beta:g}: bound {result['bound_bpp']:.4f} bpp, real {result['real_payload_bpp']:.4f}"
        f" bpp (gap {result['total_gap_bpp']:+.4f}) = quantization {gaps['quantization']:+.4f}"
        f" + variance estimation {gaps['variance_estimation']:+.4f}"
        f" + context {gaps['context_mean_prediction']:+.4f}"
        f" + coding/z {gaps['coding_overhead_and_z']:+.4f}")


@click.command()
def models():
    """List the registered models and whether their weights are installed and verified."""
    from flowcodec_cli import zoo
    for name, entry in sorted(zoo.REGISTRY.items()):
        path = zoo.weights_dir() / entry.file
        try:
            zoo.verify(name)
            state = "ok"
        except zoo.WeightsMissing:
            state = "missing"
        except zoo.WeightsError:
            state = "SHA256 MISMATCH"
        default = " (default)" if name == zoo.DEFAULT_MODEL else ""
        click.echo(f"{name}{default}: {entry.architecture}, {path} [{state}]")
