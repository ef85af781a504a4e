"""The `flowcodec` command line: a thin click layer over the codec (`flowcodec_cli.codec`).

No torch at import time: `flowcodec --help` stays instant (commands import what they need when
they run). Every failure is one line on stderr naming the file and the problem, and a documented
exit code (the table is errors.EXIT_CODES; docs/cli.md and this list are tested against it):

    0 ok · 1 internal error · 2 usage · 3 unreadable input · 4 corrupt/invalid .fcx
    5 model or weights problem · 6 side information missing or wrong · 7 output exists (no --force)
    8 encoder/decoder desync detected

With several files, a failure does not stop the others; the exit code is the first failure's.
"""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path

import click

from flowcodec_cli.errors import (  # noqa: F401 - cli.EXIT_* and cli.Failure are public names
    EXIT_DESYNC, EXIT_EXISTS, EXIT_FORMAT, EXIT_INPUT, EXIT_INTERNAL, EXIT_MODEL, EXIT_OK,
    EXIT_SIDE_INFO, EXIT_USAGE, Failure, classify)
from flowcodec_cli.codec.effort import MAX_EFFORT, STEPS
from flowcodec_cli.files.atomic import write_atomic
from flowcodec_cli.files.jobs import plan_outputs, read_input

_DONE = object()   # the end of a job's results (see _each_input)


def _progress(jobs: list, show_bar: bool):
    """The jobs, behind a progress bar on stderr if asked; tqdm is imported only then, so the
    commands without a bar (info, analyze) do not pay for it."""
    if not show_bar:
        return jobs
    from tqdm import tqdm
    return tqdm(jobs, unit="file", file=sys.stderr)


def _each_input(jobs: list[tuple], produce, emit, show_bar: bool = False) -> int:
    """Run the generator `produce(*job)` for every job, `emit(job, result)` for each result.

    The one loop of every command that takes several inputs, so they all fail the same way: a
    failure is one line, `flowcodec: {job[0]}: {message}`, ends that job's results and does not
    stop the other jobs. Returns the first failure's exit code (0 if none). `produce` yields
    rather than returns so that a job may report results as they come (analyze: one per β).
    `emit` runs outside the `try`: failing to print (a closed pipe) is not a failure of the input,
    and is left to click.
    """
    first_failure = EXIT_OK
    for job in _progress(jobs, show_bar):
        results = produce(*job)
        while True:
            try:
                result = next(results, _DONE)
            except KeyboardInterrupt:
                raise
            except BaseException as exc:  # noqa: BLE001 - every failure becomes one line + a code
                failure = classify(exc)
                first_failure = first_failure or failure.code
                click.echo(f"flowcodec: {job[0]}: {failure.message}", err=True)
                break
            if result is _DONE:
                break
            emit(job, result)
    return first_failure


def _run_batch(jobs, work, quiet: bool, as_json: bool) -> None:
    """encode and decode: `work(src, dst)` codes one file and returns its record, which is timed
    and printed (a JSON line, or a summary line unless quiet); exit with the first failure's
    code. A progress bar shows only for several files, where there is progress to see."""
    def produce(src, dst):
        start = time.perf_counter()
        record = work(src, dst)
        record["seconds"] = round(time.perf_counter() - start, 4)
        yield record

    def emit(job, record):
        dst = job[1]
        if as_json:  # never mixed into data written to stdout
            click.echo(json.dumps(record), err=dst == "-")
        elif not quiet and dst != "-":
            click.echo(_summary(record), err=True)

    sys.exit(_each_input(jobs, produce, emit, show_bar=len(jobs) > 1 and not quiet))


def _summary(record: dict) -> str:
    """The human-readable line of one finished file: what went where, its size and its time."""
    parts = [f"{record['input']} -> {record['output']}", f"{record['bytes']} bytes"]
    if "bpp" in record:
        parts.append(f"{record['bpp']:.4f} bpp")
    parts.append(f"{record['seconds']:.2f} s")
    return ", ".join(parts)


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="flowcodec-cli")
def main() -> None:
    """flowcodec: a learned image codec that writes real bitstreams (.fcx)."""


_common_output = [
    click.option("-o", "--output", "output", default=None,
                 help="Output file, '-' for stdout, or a directory (required form for several inputs)."),
    click.option("--force", is_flag=True, help="Overwrite existing output files."),
    click.option("-q", "--quiet", is_flag=True, help="No progress bar or per-file summary."),
    click.option("--json", "as_json", is_flag=True, help="Print one JSON line per file to stdout."),
    click.option("--device", type=click.Choice(["cpu", "cuda"]), default="cpu", show_default=True,
                 help="Where the transforms run; probability tables are always built on the CPU."),
]


def _with_output_options(f):
    """Add the options encode and decode share, so that they are spelled and documented once."""
    for option in reversed(_common_output):
        f = option(f)
    return f


def _read_side_info_or_exit(path: str | None):
    """The side-information image, or exit with the side-information code if it cannot be read:
    it is read before any file is coded, so a bad one fails once and not once per file."""
    from flowcodec_cli.files import images
    if path is None:
        return None
    try:
        return images.read_image(path)
    except BaseException as exc:  # noqa: BLE001
        click.echo(f"flowcodec: {path}: side information: {classify(exc).message}", err=True)
        sys.exit(EXIT_SIDE_INFO)


EFFORT_HELP = (
    "Encoder effort, like cjxl -e: 0 codes the network's latents as they are; "
    f"{', '.join(map(str, range(1, MAX_EFFORT + 1)))} refine them for this image's D + β·R by "
    f"{', '.join(map(str, STEPS[1:]))} gradient steps: 3.4%, 4.4%, 4.6% lower D + β·R on a "
    "768x512 held-out photo at β 0.004 (3-8% on smaller crops), at 17x, 32x, 62x the encode "
    "time of effort 0 (47, 88, 168 s against 2.7 s for 768x512 on one core of a busy machine). "
    "Same decoder, same format, same bytes every run. Not for dsc: its encoder never sees the "
    "decoder's side view.")


@main.command()
@click.argument("inputs", nargs=-1, required=True)
@click.option("--beta", type=float, default=0.005, show_default=True,
              help="Rate weight β of L = D + β·R: larger β, smaller files.")
@click.option("--model", default=None, help="Model name (see `flowcodec models`).")
@click.option("--side-info", "side_info", default=None,
              help="Side-information image, only for joint models (dsc-joint) whose encoder "
                   "sees it; a distributed model (dsc) needs it at decode time only.")
@click.option("--effort", type=click.IntRange(0, MAX_EFFORT), default=0, show_default=True,
              help=EFFORT_HELP)
@_with_output_options
def encode(inputs, beta, model, side_info, effort, output, force, quiet, as_json, device):
    """Compress images (files, directories of images, or '-' for stdin) into .fcx files."""
    from flowcodec_cli import codec
    from flowcodec_cli.files import images
    from flowcodec_cli import zoo
    model = model or zoo.DEFAULT_MODEL
    jobs = _plan_or_exit(inputs, output, ".fcx", images.IMAGE_SUFFIXES)
    side = _read_side_info_or_exit(side_info)

    def work(src, dst):
        picture = images.read_image(read_input(src))
        data, stats = codec.encode(picture, beta, model, device=device, side_info=side,
                                   effort=effort)
        write_atomic(dst, data, force)
        pixels = picture.rgb.shape[0] * picture.rgb.shape[1]
        return {"input": src, "output": dst, "bytes": len(data), "bpp": 8 * len(data) / pixels,
                "estimated_bpp": stats.estimated_bits / pixels, "beta": beta,
                "network_beta": stats.network_beta, "model": model, "effort": effort}

    _run_batch(jobs, work, quiet, as_json)


@main.command()
@click.argument("inputs", nargs=-1, required=True)
@click.option("--side-info", "side_info", default=None,
              help="Side-information image for files that need it (the decoder's own view).")
@_with_output_options
def decode(inputs, side_info, output, force, quiet, as_json, device):
    """Decompress .fcx files into images (PNG unless the output name says otherwise)."""
    from flowcodec_cli import codec
    from flowcodec_cli.files import images
    jobs = _plan_or_exit(inputs, output, ".png", {".fcx"})
    side = _read_side_info_or_exit(side_info)

    def work(src, dst):
        picture = codec.decode(read_input(src), side_info=side, device=device)
        suffix = Path(dst).suffix if dst != "-" else ".png"
        data = images.encode_image_bytes(picture, suffix)
        write_atomic(dst, data, force)
        return {"input": src, "output": dst, "bytes": len(data),
                "width": picture.rgb.shape[1], "height": picture.rgb.shape[0]}

    _run_batch(jobs, work, quiet, as_json)


@main.command()
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

    sys.exit(_each_input([(src,) for src in inputs], produce, emit))


def _print_header(src: str, data: bytes, container, as_json: bool) -> None:
    """info's output for one file: the header fields plus what only the whole file tells (its
    size, the stream sizes, the bpp), as one JSON line or as an indented list."""
    record = {"file": src, "bytes": len(data), **container.header.to_dict(),
              "streams": [len(s) for s in container.streams]}
    h = container.header
    record["bpp"] = 8 * len(data) / (h.height * h.width)
    if as_json:
        click.echo(json.dumps(record))
    else:
        click.echo(f"{src}:")
        for key, value in record.items():
            if key != "file":
                click.echo(f"  {key:20s} {value}")


@main.command()
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

    sys.exit(_each_input([(src,) for src in inputs], produce, emit))


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


@main.command()
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


@main.command(add_help_option=False,
              context_settings={"ignore_unknown_options": True, "allow_extra_args": True})
@click.pass_context
def train(ctx):
    """Train a model (see `flowcodec train --help` for the options of flowcodec_cli.training.loop)."""
    from flowcodec_cli.training import loop as training
    training.main(list(ctx.args))


@main.command()
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
                   "dsc-separate,dsc,dsc-joint (report: stereo.md, stereo.json).")
@click.option("-q", "--quiet", is_flag=True, help="No progress bar, no summary.")
def bench(directory, models, betas, codecs, no_classical, setting_overrides, images, device,
          cache_dir, report_dir, json_path, threads, bd_method, analysis_images, effort, stereo,
          quiet):
    """Rate-distortion, speed and memory of our models and classical codecs on DIRECTORY's images.

    Writes REPORT_DIR/results.md, REPORT_DIR/rd.png and a JSON report with every point, curve
    and BD-rate. Unreadable images are reported and skipped (exit code 3 at the end).
    """
    from flowcodec_cli.evaluation import bench as benchmark
    from flowcodec_cli.evaluation.bench import stereo as bench_stereo
    try:
        if stereo and effort:  # dsc, the product of a stereo run, cannot refine (encode --help)
            raise benchmark.BenchUsageError("--effort is not measured with --stereo")
        if stereo:
            result = bench_stereo.run_stereo(
                directory, models=benchmark.parse_names(models),
                betas=benchmark.parse_floats(betas, "--betas"), images=images, threads=threads,
                report_dir=report_dir, json_path=json_path, quiet=quiet, bd_method=bd_method)
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


def _plan_or_exit(inputs, output, suffix, accepted):
    """The (source, destination) jobs, or exit with the usage code: contradictory paths are
    reported before anything is read or written."""
    try:
        return plan_outputs(list(inputs), output, suffix, accepted)
    except ValueError as exc:
        click.echo(f"flowcodec: {exc}", err=True)
        sys.exit(EXIT_USAGE)
    except OSError as exc:  # e.g. -o DIR that cannot be created
        click.echo(f"flowcodec: -o {output}: {classify(exc).message}", err=True)
        sys.exit(classify(exc).code)


if __name__ == "__main__":
    main()
