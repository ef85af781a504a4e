"""Golden files: committed .fcx files must decode to committed pixel digests on any machine (those
of the MKL branch it pins, codec/blas.py, and the AVX2 ones, which every x86-64 CPU of the last
decade can run), and today's encoder must still write them byte for byte (made by
tests/golden/make_golden.py)."""

import hashlib
import json
import sys
from pathlib import Path

import pytest
from click.testing import CliRunner

from flowcodec_cli import codec
from flowcodec_cli.cli import main
from flowcodec_cli.codec import blas

GOLDEN = Path(__file__).parent / "golden"
sys.path.insert(0, str(GOLDEN))
import format_example  # noqa: E402
import make_golden  # noqa: E402

MANIFEST = json.loads((GOLDEN / "manifest.json").read_text())


needs_mkl = pytest.mark.skipif(blas.mkl_mode() is None, reason="this torch build has no MKL")


@needs_mkl
@pytest.mark.parametrize("threads", [1, 2])
@pytest.mark.parametrize("name", sorted(MANIFEST))
def test_golden_file_decodes_to_committed_pixels(name, threads):
    data = (GOLDEN / f"{name}.fcx").read_bytes()
    assert hashlib.sha256(data).hexdigest() == MANIFEST[name]["fcx_sha256"]
    side = make_golden.cases()[name][3]
    assert blas.branch() is not None, "importing flowcodec_cli did not pin MKL (codec/blas.py)"
    expected = MANIFEST[name]["decoded_sha256"][blas.branch()]
    assert make_golden.decoded_digest(data, side, threads) == expected


@needs_mkl
def test_golden_files_decode_to_the_avx2_pixels_on_this_cpu_too():
    """The branch every machine kind can run: on an AVX-512 CPU this is a second set of kernels."""
    assert make_golden.digests_on(blas.AVX2) == {
        name: entry["decoded_sha256"][blas.AVX2] for name, entry in MANIFEST.items()}


@pytest.mark.parametrize("name", sorted(MANIFEST))
def test_encoder_reproduces_golden_file(name):
    picture, beta, model, side = make_golden.cases()[name]
    tile = 64 if "tiled64" in name else codec.DEFAULT_TILE
    data = make_golden.encode(picture, beta, model, side, tile)
    assert hashlib.sha256(data).hexdigest() == MANIFEST[name]["fcx_sha256"]


def test_format_doc_worked_example_is_what_the_encoder_writes():
    """docs/format.md §2 walks through a real file byte by byte; it must be today's file."""
    assert format_example.documented() == format_example.render(format_example.example_file()), \
        "docs/format.md §2 is stale: run python tests/golden/format_example.py"


def test_cli_doc_info_example_is_what_info_prints(tmp_path):
    """docs/cli.md shows `flowcodec info x.fcx --json` for the same example file."""
    (tmp_path / "x.fcx").write_bytes(format_example.example_file())
    result = CliRunner().invoke(main, ["info", str(tmp_path / "x.fcx"), "--json"])
    assert result.exit_code == 0, result.output
    printed = json.loads(result.output)
    documented = format_example.documented_info()
    assert documented == {**printed, "file": "x.fcx"}, \
        "docs/cli.md: the info example is stale; run python tests/golden/format_example.py"


@pytest.mark.parametrize("name", sorted(MANIFEST))
def test_golden_file_version_and_metadata(name):
    """Files without metadata are version 1 (the goldens made before version 2 still decode);
    the metadata golden is version 2 and gives its ICC, EXIF and XMP back byte for byte."""
    data = (GOLDEN / f"{name}.fcx").read_bytes()
    picture, _, _, side = make_golden.cases()[name]
    assert data[8] == (2 if picture.metadata else 1)
    assert codec.decode(data, side_info=side).metadata == picture.metadata
