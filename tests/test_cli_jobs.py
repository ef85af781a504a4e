"""`--jobs N` and `--threads N` (cli/workers.py): N worker processes give the bytes, the lines and
the exit code of one job, and every refusal still comes before any worker starts.

A run with workers starts fresh interpreters that import torch and load the model (seconds
each), so only two runs here use them: one encode in-process and one decode in a real process.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
from click.testing import CliRunner
from PIL import Image

from flowcodec_cli import cli
from flowcodec_cli.cli import workers

ROOT = Path(__file__).resolve().parents[1]
PARROTS = ROOT / "tests" / "data" / "parrots_256x192.png"


def run(*args, input=None):
    return CliRunner().invoke(cli.main, [str(a) for a in args], input=input)


def message_lines(stderr: str) -> list[str]:
    """The one-line messages of stderr; a progress bar shares it, and a message may follow a
    bar drawn on the same line."""
    return re.findall(r"flowcodec: [^\r\n]*", stderr)


def records(stdout: str) -> list[dict]:
    """--json records without what differs from run to run: the time and the output folder."""
    found = [json.loads(line) for line in stdout.splitlines()]
    return [{**r, "seconds": None, "output": Path(r["output"]).name} for r in found]


@pytest.fixture(scope="module")
def photos(tmp_path_factory) -> Path:
    """The parrots, a small crop of them (coded sooner: a run in completion order would print
    it first), a file that is not an image, and a fourth photo whose output will exist."""
    folder = tmp_path_factory.mktemp("photos")
    with Image.open(PARROTS) as im:
        im.save(folder / "a.png")
        im.crop((0, 0, 64, 64)).save(folder / "c.png")
        im.transpose(Image.Transpose.FLIP_LEFT_RIGHT).save(folder / "d.png")
    (folder / "b.png").write_text("not an image")
    return folder


def encode_folder(photos: Path, out: Path, *options):
    """encode the folder into `out`, where d.fcx exists already: refused while planning."""
    out.mkdir()
    (out / "d.fcx").write_bytes(b"keep me")
    return run("encode", photos, "-o", out, "-q", "50", "--json", *options)


def test_jobs_give_the_bytes_lines_and_exit_code_of_one_job(photos, tmp_path):
    one = encode_folder(photos, tmp_path / "one")
    two = encode_folder(photos, tmp_path / "two", "--jobs", "2")
    assert one.exit_code == two.exit_code == 7   # the refusal came first (planning)
    assert message_lines(two.stderr) == [line.replace("/one/", "/two/")
                                         for line in message_lines(one.stderr)]
    assert len(message_lines(two.stderr)) == 2   # d.fcx exists; b.png is no image
    assert [r["input"] for r in records(two.stdout)] == [str(photos / n) for n in ("a.png",
                                                                                   "c.png")]
    assert records(two.stdout) == records(one.stdout)
    assert "100%" in two.stderr   # the progress bar still runs to its end
    for name in ("a.fcx", "c.fcx"):
        assert (tmp_path / "two" / name).read_bytes() == (tmp_path / "one" / name).read_bytes()
    assert (tmp_path / "two" / "d.fcx").read_bytes() == b"keep me"
    assert sorted(os.listdir(tmp_path / "two")) == ["a.fcx", "c.fcx", "d.fcx"]   # no .part


def test_decode_with_jobs_in_a_real_process(photos, tmp_path):
    """`python -m flowcodec_cli` as the parent: the workers must start without running it."""
    coded = tmp_path / "coded"
    assert run("encode", photos / "a.png", photos / "c.png", "-o", coded, "--beta", "0.01",
               "--quiet").exit_code == 0
    assert run("decode", coded, "-o", tmp_path / "one", "--quiet").exit_code == 0
    done = subprocess.run([sys.executable, "-m", "flowcodec_cli", "decode", str(coded), "-o",
                           str(tmp_path / "two"), "-j", "2", "--threads", "1", "--json"],
                          capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr
    assert [json.loads(line)["input"] for line in done.stdout.splitlines()] == [
        str(coded / "a.fcx"), str(coded / "c.fcx")]
    for name in ("a.png", "c.png"):
        assert (tmp_path / "two" / name).read_bytes() == (tmp_path / "one" / name).read_bytes()


@pytest.mark.parametrize("args", [
    ["encode", "-", "--jobs", "2"],
    ["encode", PARROTS, "-o", "-", "--jobs", "2"],
    ["encode", PARROTS, "--jobs", "0"],
    ["decode", "x.fcx", "-j", "-1"],
    ["encode", PARROTS, "--threads", "0"],
])
def test_bad_jobs_are_usage_errors(args, monkeypatch):
    monkeypatch.setattr(workers, "ProcessPoolExecutor", None)   # no pool may start
    result = run(*args, input=b"")
    assert result.exit_code == 2, (result.stderr, result.exception)


def test_stdin_with_jobs_says_why_in_one_line():
    result = run("encode", "-", "--jobs", "3", input=b"")
    assert result.stderr.splitlines() == [
        "flowcodec: --jobs 3: '-' (stdin or stdout) takes one job; leave out --jobs or name "
        "files"]


def test_outputs_that_exist_are_refused_before_any_worker_starts(photos, tmp_path, monkeypatch):
    monkeypatch.setattr(workers, "ProcessPoolExecutor", None)
    for name in ("a", "b", "c", "d"):
        (tmp_path / f"{name}.fcx").write_bytes(b"keep")
    result = run("encode", photos, "-o", tmp_path, "--jobs", "2", "--quiet")
    assert result.exit_code == 7
    assert len(message_lines(result.stderr)) == 4


@pytest.mark.parametrize("processes, threads, expected", [
    (1, None, None),   # one process: torch's own choice, as without --jobs
    (2, None, 3), (4, None, 1), (16, None, 1),   # the 6 cores shared out, at least 1 each
    (2, 5, 5), (1, 2, 2),                        # --threads wins
])
def test_thread_budget(processes, threads, expected, monkeypatch):
    monkeypatch.setattr(workers, "cores", lambda: 6)
    assert workers.thread_budget(processes, threads) == expected


def test_each_worker_gets_its_thread_budget(monkeypatch):
    monkeypatch.setattr(workers, "cores", lambda: 6)
    jobs = [(str(i), "-") for i in range(4)]
    with workers.records(jobs, torch_threads, processes=2, threads=None) as record_of:
        found = [record_of(*job) for job in jobs]
    assert [r["input"] for r in found] == ["0", "1", "2", "3"]
    assert {r["threads"] for r in found} == {3}
    assert len({r["pid"] for r in found} - {os.getpid()}) in (1, 2)


def torch_threads(src: str, dst: str) -> dict:
    """A job for the pool above (module level, so that a worker can import it)."""
    import torch
    return {"input": src, "threads": torch.get_num_threads(), "pid": os.getpid()}
