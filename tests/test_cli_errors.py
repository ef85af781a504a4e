"""The command line's failure modes: one line on stderr, a documented exit code (docs/cli.md),
and never a partial or clobbered output file.

Encoding loads the real model, so the number of encodes and decodes here is kept small: one
module-scoped encode, plus the few tests that must run the codec.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from click.testing import CliRunner

from flowcodec_cli import cli
from flowcodec_cli.codec import fcx
from flowcodec_cli import zoo

ROOT = Path(__file__).resolve().parents[1]
PARROTS = ROOT / "tests" / "data" / "parrots_256x192.png"
BETA = 0.01


def network_beta(beta: float) -> float:
    """The β the default model runs at (and writes in the header) for a requested β."""
    from flowcodec_cli import codec
    return codec.LoadedCodec.get(zoo.DEFAULT_MODEL).network_beta(beta)


def run(*args, input=None):
    return CliRunner().invoke(cli.main, [str(a) for a in args], input=input)


def error_lines(result) -> list[str]:
    """Lines of stderr that are messages (a progress bar may share stderr in batches)."""
    return [line for line in result.stderr.splitlines() if line.startswith("flowcodec:")]


def assert_one_clean_error(result, code: int, name: str) -> str:
    assert result.exit_code == code, (result.exit_code, result.stderr, result.exception)
    assert result.exception is None or isinstance(result.exception, SystemExit), result.exception
    assert "Traceback" not in result.output
    lines = result.stderr.splitlines()
    assert len(lines) == 1, lines
    assert lines[0].startswith("flowcodec: ")
    assert name in lines[0]
    return lines[0]


@pytest.fixture(scope="module")
def encoded(tmp_path_factory) -> Path:
    """parrots_256x192.png encoded once at β = 0.01."""
    path = tmp_path_factory.mktemp("encoded") / "parrots.fcx"
    result = run("encode", PARROTS, "-o", path, "--beta", BETA, "--quiet")
    assert result.exit_code == 0, (result.stderr, result.exception)
    return path


def dir_listing(folder: Path) -> list[str]:
    return sorted(os.listdir(folder))


# --- help --------------------------------------------------------------------------------------

SUBCOMMANDS = sorted(set(cli.main.commands) | {"encode", "decode", "info", "models", "train"})


def test_main_help():
    result = run("--help")
    assert result.exit_code == 0
    for name in ("encode", "decode", "info", "models", "train"):
        assert name in result.output


@pytest.mark.parametrize("command", SUBCOMMANDS)
def test_subcommand_help(command):
    result = run(command, "--help")
    assert result.exit_code == 0, (result.output, result.exception)
    assert "usage" in result.output.lower()


def test_unknown_option_is_a_usage_error():
    assert run("encode", "--no-such-option", "x.png").exit_code == 2


# --- info --------------------------------------------------------------------------------------

def test_info_prints_the_header(encoded):
    result = run("info", encoded)
    assert result.exit_code == 0, result.stderr
    out = result.stdout
    assert out.startswith(f"{encoded}:")
    fields = {}
    for line in out.splitlines()[1:]:
        key, _, value = line.strip().partition(" ")
        fields[key] = value.strip()
    assert fields["model"] == zoo.DEFAULT_MODEL
    assert fields["height"] == "192" and fields["width"] == "256"
    assert fields["layout"] == "RGB"
    assert float(fields["beta"]) == network_beta(BETA)
    assert fields["format_version"] == "1"
    assert fields["bytes"] == str(encoded.stat().st_size)
    for key in ("weights_digest", "params_crc32", "side_info_required", "streams", "bpp"):
        assert key in fields


def test_info_json(encoded):
    result = run("info", "--json", encoded)
    assert result.exit_code == 0, result.stderr
    lines = result.stdout.splitlines()
    assert len(lines) == 1
    record = json.loads(lines[0])
    size = encoded.stat().st_size
    assert record["file"] == str(encoded)
    assert record["bytes"] == size
    assert record["model"] == zoo.DEFAULT_MODEL
    assert (record["height"], record["width"]) == (192, 256)
    assert record["layout"] == "RGB"
    assert record["beta"] == network_beta(BETA)
    assert record["format_version"] == 1
    assert record["side_info_required"] is False
    assert len(record["weights_digest"]) == 32 and len(record["params_crc32"]) == 8
    assert len(record["streams"]) == 2
    assert sum(record["streams"]) + 4 * 2 < size
    assert record["bpp"] == pytest.approx(8 * size / (192 * 256))


def test_info_of_stdin(encoded):
    result = run("info", "--json", "-", input=encoded.read_bytes())
    assert result.exit_code == 0
    assert json.loads(result.stdout)["file"] == "-"


def test_info_of_missing_and_corrupt_files(encoded, tmp_path):
    missing = tmp_path / "missing.fcx"
    assert_one_clean_error(run("info", missing), 3, str(missing))
    bad = tmp_path / "bad.fcx"
    bad.write_bytes(encoded.read_bytes()[:-1])
    assert_one_clean_error(run("info", bad), 4, str(bad))
    # the good file is still reported, the exit code is the first failure's
    result = run("info", "--json", bad, encoded, missing)
    assert result.exit_code == 4
    assert len(result.stdout.splitlines()) == 1
    assert len(error_lines(result)) == 2


# --- unreadable input: 3 -----------------------------------------------------------------------

def test_decode_missing_file(tmp_path):
    missing = tmp_path / "nope.fcx"
    line = assert_one_clean_error(run("decode", missing, "-o", tmp_path / "out.png"), 3,
                                  str(missing))
    assert "no such file" in line
    assert dir_listing(tmp_path) == []


def test_encode_of_a_non_image(tmp_path):
    fake = tmp_path / "fake.png"
    fake.write_text("this is not a picture\n")
    assert_one_clean_error(run("encode", fake, "-o", tmp_path / "out.fcx"), 3, str(fake))
    assert dir_listing(tmp_path) == ["fake.png"]


# --- corrupt .fcx: 4, and no output ------------------------------------------------------------

def _corruptions(data: bytes) -> dict[str, bytes]:
    flipped = bytearray(data)
    flipped[len(data) // 2] ^= 0x10
    return {"truncated": data[:len(data) // 3], "tail_cut": data[:-1],
            "flipped": bytes(flipped), "empty": b"", "png": PARROTS.read_bytes()}


@pytest.mark.parametrize("kind", ["truncated", "tail_cut", "flipped", "empty", "png"])
def test_decode_of_a_corrupt_file(encoded, tmp_path, kind):
    bad = tmp_path / f"{kind}.fcx"
    bad.write_bytes(_corruptions(encoded.read_bytes())[kind])
    assert bad.read_bytes() != encoded.read_bytes()
    out = tmp_path / "out"
    out.mkdir()
    assert_one_clean_error(run("decode", bad, "-o", out), 4, str(bad))
    assert dir_listing(out) == []


# --- model problems: 5 -------------------------------------------------------------------------

@pytest.mark.parametrize("beta", ["1.0", "0", "-0.01", "1e-9", "nan"])
def test_beta_outside_the_model_range(tmp_path, beta):
    out = tmp_path / "out.fcx"
    line = assert_one_clean_error(run("encode", PARROTS, "-o", out, "--beta", beta), 5,
                                  str(PARROTS))
    assert "beta" in line
    assert not out.exists()


def test_unknown_model(tmp_path):
    out = tmp_path / "out.fcx"
    assert_one_clean_error(run("encode", PARROTS, "-o", out, "--model", "nonesuch"), 5, "nonesuch")
    assert not out.exists()


# --- existing output: 7 ------------------------------------------------------------------------

def test_existing_output_is_kept_without_force_and_replaced_with_it(tmp_path):
    out = tmp_path / "out.fcx"
    out.write_bytes(b"do not touch")
    line = assert_one_clean_error(run("encode", PARROTS, "-o", out, "--beta", BETA), 7, str(out))
    assert "--force" in line
    assert out.read_bytes() == b"do not touch"
    assert dir_listing(tmp_path) == ["out.fcx"]

    result = run("encode", PARROTS, "-o", out, "--beta", BETA, "--force", "--quiet")
    assert result.exit_code == 0, result.stderr
    header = fcx.unpack(out.read_bytes()).header
    assert (header.height, header.width, header.beta) == (192, 256, network_beta(BETA))
    assert dir_listing(tmp_path) == ["out.fcx"]


# --- batches -----------------------------------------------------------------------------------

def test_batch_continues_past_a_failure_and_reports_json(encoded, tmp_path):
    inputs = tmp_path / "in"
    inputs.mkdir()
    good1, bad, good2 = inputs / "a.fcx", inputs / "b.fcx", inputs / "c.fcx"
    good1.write_bytes(encoded.read_bytes())
    bad.write_bytes(encoded.read_bytes()[:100])
    good2.write_bytes(encoded.read_bytes())
    out = tmp_path / "out"
    result = run("decode", good1, bad, good2, "-o", out, "--json", "--quiet")
    assert result.exit_code == 4
    assert dir_listing(out) == ["a.png", "c.png"]
    errors = error_lines(result)
    assert len(errors) == 1 and str(bad) in errors[0]
    records = [json.loads(line) for line in result.stdout.splitlines()]
    assert [r["input"] for r in records] == [str(good1), str(good2)]
    for record in records:
        assert record["output"] == str(out / (Path(record["input"]).stem + ".png"))
        assert (record["width"], record["height"]) == (256, 192)
        assert record["bytes"] == Path(record["output"]).stat().st_size
        assert Path(record["output"]).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_stdout_takes_one_input_only(encoded, tmp_path):
    result = run("decode", encoded, encoded, "-o", "-")
    assert result.exit_code == 2
    assert len(result.stderr.splitlines()) == 1


# --- a real process ----------------------------------------------------------------------------

def test_exit_code_of_a_real_process(encoded, tmp_path):
    bad = tmp_path / "flipped.fcx"
    data = bytearray(encoded.read_bytes())
    data[40] ^= 0x01
    bad.write_bytes(bytes(data))
    proc = subprocess.run([sys.executable, "-m", "flowcodec_cli", "info", str(bad)],
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 4
    assert proc.stdout == ""
    assert proc.stderr.splitlines() == [f"flowcodec: {bad}: corrupt or truncated .fcx file "
                                        "(CRC mismatch)"]


# --- regressions of bugs found in review -----------------------------------------------------

def test_real_process_model_error_is_one_line(tmp_path):
    out = tmp_path / "out.fcx"
    proc = subprocess.run([sys.executable, "-m", "flowcodec_cli", "encode", str(PARROTS), "-o",
                           str(out), "--beta", "1.0"], capture_output=True, text=True, timeout=300)
    assert proc.returncode == 5
    assert not out.exists()
    assert len(proc.stderr.splitlines()) == 1, proc.stderr


def test_several_inputs_with_output_naming_a_file(tmp_path):
    taken = tmp_path / "taken"
    taken.write_bytes(b"keep")
    result = run("encode", PARROTS, PARROTS.parent / "kodim23.png", "-o", taken)
    assert result.exit_code in (2, 3)
    assert isinstance(result.exception, SystemExit)
    assert taken.read_bytes() == b"keep"


def test_json_never_mixes_into_stdout_data(tmp_path):
    proc = subprocess.run([sys.executable, "-m", "flowcodec_cli", "encode", str(PARROTS), "-o", "-",
                           "--json", "--beta", "0.02"], capture_output=True, timeout=300)
    assert proc.returncode == 0
    path = tmp_path / "piped.fcx"
    path.write_bytes(proc.stdout)
    assert run("info", path).exit_code == 0
    assert b'"bytes"' in proc.stderr


# --- the one per-input loop (cli.runner.each_input) --------------------------------------------------

def test_each_input_reports_each_failure_once_and_returns_the_first_code(capsys):
    def produce(src):
        if src == "gone":
            raise FileNotFoundError(2, "No such file or directory", src)
        yield f"{src}:1"
        if src == "half":
            raise fcx.FormatError("broken after one result")
        yield f"{src}:2"

    emitted = []
    code = cli.runner.each_input([("ok",), ("gone",), ("half",), ("ok2",)], produce,
                           lambda job, result: emitted.append(result))
    assert code == 3
    assert emitted == ["ok:1", "ok:2", "half:1", "ok2:1", "ok2:2"]
    assert capsys.readouterr().err.splitlines() == [
        "flowcodec: gone: no such file", "flowcodec: half: broken after one result"]


def test_each_input_leaves_failures_to_print_to_click():
    """A closed pipe while printing is not a failure of the input: click ends the process."""
    def emit(job, result):
        raise BrokenPipeError(32, "Broken pipe")

    with pytest.raises(BrokenPipeError):
        cli.runner.each_input([("a",)], lambda src: iter([1]), emit)


def test_info_of_a_directory(tmp_path):
    line = assert_one_clean_error(run("info", tmp_path), 3, str(tmp_path))
    assert line == f"flowcodec: {tmp_path}: is a directory"


def test_analyze_reports_every_unreadable_image(tmp_path):
    fake, missing = tmp_path / "fake.png", tmp_path / "missing.png"
    fake.write_text("not a picture")
    result = run("analyze", fake, missing, "--beta", "0.01,0.02", "--json")
    assert result.exit_code == 3
    assert result.stdout == ""
    assert result.stderr.splitlines() == [f"flowcodec: {fake}: not a recognized image file",
                                          f"flowcodec: {missing}: No such file or directory"]


def test_unreadable_side_information_fails_once_before_any_file(encoded, tmp_path):
    missing = tmp_path / "side.png"
    out = tmp_path / "out.png"
    result = run("decode", encoded, "-o", out, "--side-info", missing)
    assert result.exit_code == 6
    assert result.stderr.splitlines() == [
        f"flowcodec: {missing}: side information: No such file or directory"]
    assert not out.exists()
