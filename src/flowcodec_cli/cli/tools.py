"""train and bench: the commands that make and measure models."""

from __future__ import annotations

import sys

import click

from flowcodec_cli.codec.effort import MAX_EFFORT
from flowcodec_cli.errors import EXIT_OK, EXIT_USAGE, classify

@click.command(add_help_option=False,
              context_settings={"ignore_unknown_options": True, "allow_extra_args": True})
@click.pass_context
def train(ctx):
    """Train a model (see `flowcodec train --help` for the options of flowcodec_cli.training.loop)."""
    from flowcodec_cli.codec import blas
    blas.unpin()  # before the models' import makes MKL's first call: training wants speed
    from flowcodec_cli.training import loop as training
    training.main(list(ctx.args))


@click.command()
@click.argument("directory", type=click.Path(exists=True, file_okay=False, dir_okay=True))
@click.option("--models", default=None,
              help="Comma-separated model names (default: every registered model).")
@click.option("--betas", default=None,
              help="Comma-separated β values for every model (default: each model's sweep, "
                   "0.0005,0.001,0.002,0.004,0.008,0.014,0.02,0.05 plus its range below 0.0005).")
@click.option("--codecs", default=None,
              help="Comma-separated classical codecs: jpeg420,jpeg444,webp,jpeg2000,avif,jxl "
                   "(default: all available).")
@click.option("--no-classical", is_flag=True, help="Benchmark our models only.")
@click.option("--settings", "setting_overrides", multiple=True, metavar="CODEC=S1,S2,...",
              help="Settings for one classical codec instead of its default sweep (repeatable).")
@click.option("--images", type=int, default=None, help="Use only the first N images of DIR.")
@click.option("--device", type=click.Choice(["cpu", "cuda"]), default="cpu", show_default=True,
              help="Where our models' transforms run.")
@click.option("--cache", "cache_dir", default=".bench_cache", show_default=True,
              help="Folder of per-point results; a rerun reuses them.")
@click.option("--report-dir", default="bench-results", show_default=True,
              help="Where results.md, rd.png and bench.json are written.")
@click.option("--json", "json_path", default=None,
              help="Path of the JSON report (default: REPORT_DIR/bench.json).")
@click.option("--threads", type=int, default=None,
              help="torch.set_num_threads(N) (default: torch's own choice).")
@click.option("--bd-method", type=click.Choice(["cubic", "pchip"]), default="cubic",
              show_default=True, help="Curve fit of the Bjøntegaard deltas.")
@click.option("--analysis-images", type=click.IntRange(min=0), default=2, show_default=True,
              help="Images (the first N) for the rate-distortion bound analysis section.")
@click.option("--effort", type=click.IntRange(0, MAX_EFFORT), default=0, show_default=True,
              help="Our models' encoder effort (see `encode --help`); not with --stereo.")
@click.option("--stereo", is_flag=True,
              help="Side-information mode: DIRECTORY has left/ and right/; the left views are "
                   "coded, the right views are side information; models default to "
                   "flow (the default model, no side information),dsc-separate,dsc,dsc-joint "
                   "(report: stereo.md, stereo.json).")
@click.option("--channel", is_flag=True,
              help="Channel mode: PSNR against AWGN channel SNR for joint source-channel coding "
                   "(`flowcodec channel`) and for separate coding, .fcx files of --models "
                   "(default flow) at the capacity of each --design-snrs (report: channel.md, "
                   "channel.json, channel.png).")
@click.option("--ratio", default=None, metavar="K/N",
              help="With --channel: channel uses per pixel value [default: 1/6].")
@click.option("--snrs", default=None,
              help="With --channel: comma-separated test SNRs in dB [default: 0,2,...,20].")
@click.option("--design-snrs", default=None,
              help="With --channel: comma-separated design SNRs of separate coding [default: "
                   "5,10,15].")
@click.option("--channel-models", default=None, metavar="FILE,...",
              help="With --channel: more JSCC weights files to measure next to the default "
                   "(e.g. trained at one SNR).")
@click.option("--quiet", is_flag=True, help="No progress bar, no summary.")
def bench(directory, models, betas, codecs, no_classical, setting_overrides, images, device,
          cache_dir, report_dir, json_path, threads, bd_method, analysis_images, effort, stereo,
          channel, ratio, snrs, design_snrs, channel_models, quiet):
    """Rate-distortion, speed and memory of our models and classical codecs on DIRECTORY's images.

    Writes REPORT_DIR/results.md, REPORT_DIR/rd.png and a JSON report with every point, curve
    and BD-rate. Unreadable images are reported and skipped (exit code 3 at the end).
    """
    from flowcodec_cli.evaluation import bench as benchmark
    from flowcodec_cli.evaluation.bench import stereo as bench_stereo
    try:
        if stereo and effort:  # dsc, the product of a stereo run, cannot refine (encode --help)
            raise benchmark.BenchUsageError("--effort is not measured with --stereo")
        channel_only = {"--ratio": ratio, "--snrs": snrs, "--design-snrs": design_snrs,
                        "--channel-models": channel_models}
        if not channel and any(v is not None for v in channel_only.values()):
            raise benchmark.BenchUsageError(
                f"{next(k for k, v in channel_only.items() if v is not None)} needs --channel")
        if channel and (stereo or effort or betas):
            raise benchmark.BenchUsageError("--channel excludes --stereo, --effort and --betas")
        if channel:
            from flowcodec_cli.evaluation.bench import channel as bench_channel
            result = bench_channel.run_channel(
                directory, ratio=ratio, snrs=benchmark.parse_floats(snrs, "--snrs"),
                design_snrs=benchmark.parse_floats(design_snrs, "--design-snrs"),
                models=benchmark.parse_names(models),
                channel_models=benchmark.parse_names(channel_models), images=images,
                threads=threads, report_dir=report_dir, json_path=json_path, quiet=quiet)
        elif stereo:
            result = bench_stereo.run_stereo(
                directory, models=benchmark.parse_names(models),
                betas=benchmark.parse_floats(betas, "--betas"), images=images, threads=threads,
                report_dir=report_dir, json_path=json_path, quiet=quiet, bd_method=bd_method,
                cache_dir=cache_dir)
        else:
            result = benchmark.run(
                directory, models=benchmark.parse_names(models),
                betas=benchmark.parse_floats(betas, "--betas"),
                codecs=benchmark.parse_names(codecs), no_classical=no_classical,
                settings=benchmark.parse_setting_overrides(setting_overrides), images=images,
                device=device, cache_dir=cache_dir, report_dir=report_dir, json_path=json_path,
                threads=threads, quiet=quiet, bd_method=bd_method, analysis_images=analysis_images,
                effort=effort)
    except benchmark.BenchUsageError as exc:
        click.echo(f"flowcodec: bench: {exc}", err=True)
        sys.exit(EXIT_USAGE)
    except benchmark.NoReadableImages as exc:  # each image was already reported
        click.echo(f"flowcodec: bench: {directory}: {exc}", err=True)
        sys.exit(classify(exc.errors[0][1]).code)
    except KeyboardInterrupt:
        raise
    except BaseException as exc:  # noqa: BLE001 - a model that cannot run, etc.
        failure = classify(exc)
        click.echo(f"flowcodec: bench: {failure.message}", err=True)
        sys.exit(failure.code)
    if not quiet:
        for path in result.written:
            click.echo(f"wrote {path}", err=True)
    sys.exit(classify(result.errors[0][1]).code if result.errors else EXIT_OK)
