"""What every command that codes files shares: the options of its outputs, the plan of
(source, destination) jobs with its refusals before any work, and the one loop that runs the
jobs, so that every command fails the same way (one line per failed input, the first failure's
exit code, the others still done). Where the jobs run, here or in worker processes (--jobs), is
cli/workers.py's."""

from __future__ import annotations

import json
import os
import sys

import click

from flowcodec_cli.cli import workers
from flowcodec_cli.errors import (EXIT_EXISTS, EXIT_INPUT, EXIT_OK, EXIT_SIDE_INFO, EXIT_USAGE,
                                  classify)
from flowcodec_cli.files.atomic import STDIO
from flowcodec_cli.files.jobs import check_destinations, plan_outputs

_DONE = object()   # the end of a job's results (see each_input)


def progress(jobs: list, show_bar: bool):
    """The jobs, behind a progress bar on stderr if asked; tqdm is imported only then, so the
    commands without a bar (info, analyze) do not pay for it."""
    if not show_bar:
        return jobs
    from tqdm import tqdm
    return tqdm(jobs, unit="file", file=sys.stderr)


def each_input(jobs: list[tuple], produce, emit, show_bar: bool = False) -> int:
    """Run the generator `produce(*job)` for every job, `emit(job, result)` for each result.

    The one loop of every command that takes several inputs, so they all fail the same way: a
    failure is one line, `flowcodec: {job[0]}: {message}`, ends that job's results and does not
    stop the other jobs. Returns the first failure's exit code (0 if none). `produce` yields
    rather than returns so that a job may report results as they come (analyze: one per β).
    `emit` runs outside the `try`: failing to print (a closed pipe) is not a failure of the input,
    and is left to click.
    """
    first_failure = EXIT_OK
    for job in progress(jobs, show_bar):
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


def run_batch(jobs, work, quiet: bool, as_json: bool, failed: int = EXIT_OK,
              processes: int = 1, threads: int | None = None) -> None:
    """encode and decode: `work(src, dst)` codes one file and returns its record, which is timed
    and printed (a JSON line, or a summary line unless quiet); exit with the first failure's
    code (`failed`: a failure found while planning). A progress bar shows only for several
    files, where there is progress to see. With `processes` > 1 (--jobs) the files are coded
    in worker processes (cli/workers.py), but the records are printed in input order as with
    one: the same lines, the same exit code, whichever file finishes first."""
    def emit(job, record):
        dst = job[1]
        if as_json:  # never mixed into data written to stdout
            click.echo(json.dumps(record), err=dst == "-")
        elif not quiet and dst != "-":
            click.echo(summary(record), err=True)

    with workers.records(jobs, work, processes, threads) as record_of:
        def produce(src, dst):
            yield record_of(src, dst)

        code = each_input(jobs, produce, emit, show_bar=len(jobs) > 1 and not quiet)
    sys.exit(failed or code)


def summary(record: dict) -> str:
    """The human-readable line of one finished file: what went where, its size and its time,
    and with -v the ratio to the input file and the quality of the decoded image."""
    parts = [f"{record['input']} -> {record['output']}", f"{record['bytes']} bytes"]
    if "bpp" in record:
        parts.append(f"{record['bpp']:.4f} bpp")
    if "ratio" in record:
        parts.append(f"{record['ratio']:.1f}:1 against the {record['input_bytes']}-byte input")
    if "psnr" in record:
        ms_ssim = record["ms_ssim"]
        parts.append(f"PSNR {record['psnr']:.2f} dB, MS-SSIM "
                     f"{'n/a (image too small)' if ms_ssim is None else f'{ms_ssim:.4f}'}")
    if "target" in record:
        reached = "reached" if record["reached"] else "closest"
        parts.append(f"{reached} in {len(record['probes'])} probes (β {record['beta']:.4g})")
    parts.append(f"{record['seconds']:.2f} s")
    return ", ".join(parts)


COMMON_OUTPUT_OPTIONS = [
    click.option("-o", "--output", "output", default=None,
                 help="Output file, '-' for stdout, or a directory (required form for several inputs)."),
    click.option("--force", is_flag=True, help="Overwrite existing output files."),
    click.option("--quiet", is_flag=True, help="No progress bar or per-file summary."),
    click.option("--json", "as_json", is_flag=True, help="Print one JSON line per file to stdout."),
    click.option("--device", type=click.Choice(["cpu", "cuda"]), default="cpu", show_default=True,
                 help="Where the transforms run; probability tables are always built on the CPU."),
    click.option("-j", "--jobs", "processes", type=click.IntRange(min=1), default=1,
                 show_default=True, metavar="N",
                 help="Code N files at once, in N worker processes. The outputs, the lines "
                      "printed (in input order) and the exit code are those of one job. Not "
                      "with '-' (stdin or stdout)."),
    click.option("--threads", type=click.IntRange(min=1), default=None, metavar="N",
                 help="Torch threads per process [default: torch's own choice with one job; "
                      "with several, the process's cores divided by the jobs, at least 1, so "
                      "that jobs × threads ≤ cores]."),
]


def with_output_options(f):
    """Add the options encode and decode share, so that they are spelled and documented once."""
    for option in reversed(COMMON_OUTPUT_OPTIONS):
        f = option(f)
    return f


def read_side_info_or_exit(path: str | None):
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


def usage_error(message: str) -> None:
    """One line and the usage exit code: the house style for a contradictory command line."""
    click.echo(f"flowcodec: {message}", err=True)
    sys.exit(EXIT_USAGE)


def refuse_existing(jobs, output, force):
    """Drop the jobs whose output exists (unless --force) or cannot be written (no such
    directory, not writable), each with its one-line failure, before any model is loaded. When the name is the default one (no -o), it is often the
    user's original (encode x.png, then decode x.fcx, makes x.png): say so and suggest -o
    rather than --force. Returns (jobs left, the exit code of the first refusal or 0)."""
    left, failed = [], EXIT_OK
    for src, dst in jobs:
        folder = os.path.dirname(os.path.abspath(dst))
        if dst != "-" and not os.path.isdir(folder):
            click.echo(f"flowcodec: {src}: cannot write {dst}: no directory {folder}", err=True)
            failed = failed or EXIT_INPUT
        elif dst != "-" and not os.access(folder, os.W_OK):
            click.echo(f"flowcodec: {src}: cannot write {dst}: directory {folder} is not "
                       "writable", err=True)
            failed = failed or EXIT_INPUT
        elif force or dst == "-" or not os.path.lexists(dst):
            left.append((src, dst))
        else:
            hint = ("the default output name; write elsewhere with -o" if output is None
                    else "use --force to overwrite")
            click.echo(f"flowcodec: {src}: {dst} already exists ({hint})", err=True)
            failed = failed or EXIT_EXISTS
    return left, failed


def plan_or_exit(inputs, output, suffix, accepted, check_suffix=None, processes=1):
    """The (source, destination) jobs, or exit with the usage code: contradictory paths, binary
    data for a terminal, output suffixes that `check_suffix` refuses and stdin or stdout with
    several processes are reported before anything is read or written."""
    try:
        jobs = plan_outputs(list(inputs), output, suffix, accepted)
        check_destinations(jobs, check_suffix)
        if processes > 1 and any(STDIO in job for job in jobs):
            raise ValueError(f"--jobs {processes}: '-' (stdin or stdout) takes one job; "
                             "leave out --jobs or name files")
        return jobs
    except ValueError as exc:
        click.echo(f"flowcodec: {exc}", err=True)
        sys.exit(EXIT_USAGE)
    except OSError as exc:  # e.g. -o DIR that cannot be created
        click.echo(f"flowcodec: -o {output}: {classify(exc).message}", err=True)
        sys.exit(classify(exc).code)
