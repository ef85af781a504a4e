"""Odd inputs and outputs (issue 17): images of several frames, binary data for a terminal, an
output suffix that names no format, and directories named in the errors that concern them.

Every refusal is one line on stderr, a documented exit code, and no output file. Only
`--frame 1` encodes (once); the other refusals come before any model is loaded, which the
terminal tests check in a process where torch cannot be imported.
"""

from __future__ import annotations

import io
import os
import pty
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner
from PIL import Image

from flowcodec_cli import cli
from flowcodec_cli.files import images

GOLDEN = Path(__file__).parent / "golden" / "parrots_b0.02.fcx"   # a small valid file
RED, GREEN = (230, 20, 20), (20, 230, 20)


def run(*args, input=None):
    return CliRunner().invoke(cli.main, [str(a) for a in args], input=input)


def assert_one_clean_error(result, code: int, *names) -> str:
    assert result.exit_code == code, (result.exit_code, result.stderr, result.exception)
    assert result.exception is None or isinstance(result.exception, SystemExit), result.exception
    lines = result.stderr.splitlines()
    assert len(lines) == 1 and lines[0].startswith("flowcodec: "), lines
    assert "Traceback" not in result.output
    for name in names:
        assert str(name) in lines[0], (name, lines[0])
    return lines[0]


def two_frame_gif(path: Path) -> Path:
    """A red frame, then a green one (different, or Pillow would merge them)."""
    frames = [Image.new("RGB", (40, 24), colour) for colour in (RED, GREEN)]
    frames[0].save(path, save_all=True, append_images=frames[1:], duration=100, loop=0)
    with Image.open(path) as check:
        assert check.n_frames == 2
    return path


# --- several frames -----------------------------------------------------------------------------

def test_an_animated_gif_is_refused_with_one_line(tmp_path):
    gif = two_frame_gif(tmp_path / "anim.gif")
    line = assert_one_clean_error(run("encode", gif), cli.EXIT_INPUT, gif)
    assert "2 frames" in line and "--frame N" in line
    assert sorted(os.listdir(tmp_path)) == ["anim.gif"]


def test_frame_1_codes_the_second_frame_under_any_output_name(tmp_path):
    """An encode output may have any name (the magic, not the suffix, makes a .fcx file)."""
    gif = two_frame_gif(tmp_path / "anim.gif")
    out = tmp_path / "second.bin"
    result = run("encode", gif, "--frame", 1, "-o", out, "--beta", 0.01, "--quiet")
    assert result.exit_code == 0, (result.stderr, result.exception)
    assert run("decode", out, "-o", tmp_path / "second.png", "--quiet").exit_code == 0
    with Image.open(tmp_path / "second.png") as im:
        mean = np.asarray(im.convert("RGB"), dtype=np.float64).mean(axis=(0, 1))
    assert mean[1] > mean[0] + 100, mean   # green, not the first frame's red


@pytest.mark.parametrize("frame", [2, 5])
def test_a_frame_out_of_range_is_refused(tmp_path, frame):
    gif = two_frame_gif(tmp_path / "anim.gif")
    line = assert_one_clean_error(run("encode", gif, "--frame", frame, "-o", tmp_path / "x.fcx"),
                                  cli.EXIT_INPUT, gif)
    assert f"--frame {frame} is out of range" in line and "2 frames" in line
    assert not (tmp_path / "x.fcx").exists()


def test_a_negative_frame_is_a_usage_error(tmp_path):
    gif = two_frame_gif(tmp_path / "anim.gif")
    assert run("encode", gif, "--frame", -1).exit_code == cli.EXIT_USAGE


def _saved(frames: list[Image.Image], fmt: str, **params) -> bytes:
    out = io.BytesIO()
    frames[0].save(out, format=fmt, save_all=True, append_images=frames[1:], **params)
    return out.getvalue()


@pytest.mark.parametrize("fmt", ["TIFF", "WEBP", "PNG"])   # multi-page TIFF, animated WebP/PNG
def test_every_kind_of_multi_frame_image_needs_a_frame(fmt):
    frames = [Image.new("RGB", (16, 8), colour) for colour in (RED, GREEN, (0, 0, 200))]
    data = _saved(frames, fmt)
    with pytest.raises(images.ImageError, match="with 3 frames: pass --frame N"):
        images.read_image(data)
    picture = images.read_image(data, frame=2)
    assert picture.rgb.shape == (8, 16, 3) and picture.rgb[..., 2].mean() > 150


def test_frame_0_of_a_still_image_is_the_image():
    data = _saved([Image.new("RGB", (16, 8), RED)], "PNG")
    assert images.read_image(data, frame=0).rgb.shape == (8, 16, 3)
    with pytest.raises(images.ImageError, match="the image has 1 frame "):
        images.read_image(data, frame=1)


def test_an_mpo_camera_jpeg_codes_its_photo():
    """An MPO's later frames are previews or depth maps of the first: not an animation."""
    data = _saved([Image.new("RGB", (16, 8), RED), Image.new("RGB", (8, 4), GREEN)], "MPO")
    with Image.open(io.BytesIO(data)) as check:
        assert check.format == "MPO" and check.n_frames == 2
    assert images.read_image(data).rgb.shape == (8, 16, 3)


def test_gif_is_an_accepted_suffix(tmp_path):
    assert ".gif" in images.IMAGE_SUFFIXES
    two_frame_gif(tmp_path / "a.gif")
    assert images.image_files(tmp_path) == [tmp_path / "a.gif"]


# --- binary data for a terminal ----------------------------------------------------------------

NO_TORCH = ("import sys; sys.modules['torch'] = None; sys.argv[0] = 'flowcodec'; "
            "from flowcodec_cli.cli import main; main()")


def run_on_a_terminal(args: list[str], stdin: bytes = b"") -> tuple[int, str, bytes]:
    """Run the CLI with stdout on a pseudo-terminal and torch unimportable: a refusal that
    came after any model was loaded would be an internal error here, not a usage error.
    Returns (exit code, stderr, what reached the terminal)."""
    controller, terminal = pty.openpty()
    try:
        result = subprocess.run([sys.executable, "-c", NO_TORCH, *args], input=stdin,
                                stdout=terminal, stderr=subprocess.PIPE, timeout=120,
                                env={**os.environ, "PYTHONWARNINGS": "ignore"})
        os.set_blocking(controller, False)
        try:
            shown = os.read(controller, 65536)
        except BlockingIOError:
            shown = b""
    finally:
        os.close(terminal)
        os.close(controller)
    return result.returncode, result.stderr.decode(), shown


@pytest.mark.parametrize("args, stdin", [
    (["encode", "IMAGE", "-o", "-"], b""),
    (["encode", "-"], b"IMAGE"),            # stdin without -o writes stdout
    (["decode", str(GOLDEN), "-o", "-"], b""),
    (["decode", "-"], b"GOLDEN"),
])
def test_binary_output_to_a_terminal_is_refused_before_any_work(tmp_path, args, stdin):
    image = tmp_path / "x.png"
    Image.new("RGB", (16, 8), RED).save(image)
    args = [str(image) if a == "IMAGE" else a for a in args]
    stdin = {b"IMAGE": image.read_bytes(), b"GOLDEN": GOLDEN.read_bytes()}.get(stdin, stdin)
    code, stderr, shown = run_on_a_terminal(args, stdin)
    assert code == cli.EXIT_USAGE, stderr
    assert stderr.splitlines() == [
        "flowcodec: binary data not written to a terminal: redirect stdout or pass -o FILE"]
    assert shown == b""


def test_binary_output_to_a_pipe_is_fine():
    result = subprocess.run([sys.executable, "-m", "flowcodec_cli", "decode", str(GOLDEN),
                             "-o", "-"], capture_output=True, timeout=300)
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith(b"\x89PNG")


# --- output suffixes ---------------------------------------------------------------------------

@pytest.mark.parametrize("name", ["out.xyz", "out.fcx", "out.txt", "out.h5"])
def test_decode_to_a_suffix_that_names_no_format_is_refused_before_decoding(tmp_path, monkeypatch,
                                                                           name):
    from flowcodec_cli.codec import loaded

    def no_model(*args, **kwargs):
        raise AssertionError("a model was loaded")

    monkeypatch.setattr(loaded.LoadedCodec, "get", no_model)
    out = tmp_path / name
    line = assert_one_clean_error(run("decode", GOLDEN, "-o", out), cli.EXIT_USAGE, out)
    assert "names no image format" in line
    assert os.listdir(tmp_path) == []


@pytest.mark.parametrize("name, magic", [("out", b"\x89PNG"), ("out.JPG", b"\xff\xd8"),
                                         ("out.ppm", b"P6")])
def test_decode_suffix_picks_the_format_and_none_means_png(tmp_path, name, magic):
    result = run("decode", GOLDEN, "-o", tmp_path / name, "--quiet")
    assert result.exit_code == 0, result.stderr
    assert (tmp_path / name).read_bytes().startswith(magic)


def test_output_format_of_suffixes():
    assert images.output_format("") == "PNG"
    assert images.output_format(".TIFF") == "TIFF"
    for suffix in (".xyz", ".fcx", ".wmf", ".grib"):
        with pytest.raises(ValueError, match="names no image format"):
            images.output_format(suffix)


# --- directories named in errors ---------------------------------------------------------------

def test_an_empty_directory_is_named(tmp_path):
    folder = tmp_path / "holiday photos"
    folder.mkdir()
    (folder / "notes.txt").write_text("no images here")
    line = assert_one_clean_error(run("encode", folder), cli.EXIT_USAGE, folder)
    assert ".png" in line and ".gif" in line


def test_several_empty_directories_are_all_named(tmp_path):
    folders = [tmp_path / "a", tmp_path / "b"]
    for folder in folders:
        folder.mkdir()
    line = assert_one_clean_error(run("decode", *folders), cli.EXIT_USAGE, *folders)
    assert "hold no .fcx files" in line


def test_an_empty_directory_beside_files_is_not_an_error(tmp_path):
    (tmp_path / "empty").mkdir()
    out = tmp_path / "out"
    result = run("decode", tmp_path / "empty", GOLDEN, "-o", out, "--quiet")
    assert result.exit_code == 0, result.stderr
    assert os.listdir(out) == [GOLDEN.stem + ".png"]

