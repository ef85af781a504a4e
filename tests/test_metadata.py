"""ICC profile, EXIF and XMP survive encode → .fcx → decode (issue 17, "Metadata"), through the
command line and real files: a JPEG with a real ICC profile (lcms's sRGB), camera EXIF (make,
model, date, an Exif-IFD date and an orientation) and an XMP packet.

Two encodes in all (module fixtures: with metadata and with --strip); every decode is of those
files. The reading rules that need no model are checked on `images.read_image` directly.
"""

from __future__ import annotations

import io
import json
import struct
import zlib
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner
from PIL import ExifTags, Image, ImageCms, ImageOps

from flowcodec_cli import cli
from flowcodec_cli.codec import fcx
from flowcodec_cli.files import images

TAG = ExifTags.Base
GOLDEN = Path(__file__).parent / "golden"
ICC = ImageCms.ImageCmsProfile(ImageCms.createProfile("sRGB")).tobytes()
CAMERA = {TAG.Make: "FlowCam", TAG.Model: "FC-1 Mark II", TAG.DateTime: "2026:01:02 03:04:05"}
TAKEN = "2026:01:02 03:04:00"   # Exif IFD DateTimeOriginal: a tag below IFD0
XMP = (b'<?xpacket begin="" id="W5M0MpCehiHzreSzNTczkc9d"?>'
       b'<x:xmpmeta xmlns:x="adobe:ns:meta/"><rdf:RDF '
       b'xmlns:rdf="http://www.w3.org/1999/02/22-rdf-syntax-ns#"><rdf:Description '
       b'xmlns:dc="http://purl.org/dc/elements/1.1/" xmlns:tiff="http://ns.adobe.com/tiff/1.0/" '
       b'tiff:Orientation="6" dc:rights="CC BY 4.0"/></rdf:RDF></x:xmpmeta>'
       b'<?xpacket end="w"?>')
STORED = (64, 48)   # width, height of the pixels in the JPEG; orientation 6 shows them 48 x 64


def run(*args):
    return CliRunner().invoke(cli.main, [str(a) for a in args])


def assert_one_clean_error(result, code: int) -> str:
    assert result.exit_code == code, (result.exit_code, result.stderr, result.exception)
    assert result.exception is None or isinstance(result.exception, SystemExit), result.exception
    lines = result.stderr.splitlines()
    assert len(lines) == 1 and lines[0].startswith("flowcodec: "), lines
    assert "Traceback" not in result.output
    return lines[0]


def camera_exif(orientation: int | None = 6) -> Image.Exif:
    exif = Image.Exif()
    exif.update(CAMERA)
    if orientation is not None:
        exif[TAG.Orientation] = orientation
    exif.get_ifd(ExifTags.IFD.Exif)[TAG.DateTimeOriginal] = TAKEN
    return exif


def gradient(width: int, height: int) -> np.ndarray:
    yy, xx = np.mgrid[0:height, 0:width]
    return np.stack([xx * 4, yy * 5, (xx + yy) * 2], axis=2).astype(np.uint8)


@pytest.fixture(scope="module")
def photo(tmp_path_factory) -> Path:
    """The camera JPEG, stored sideways with orientation 6 (left half bright)."""
    rgb = gradient(*STORED)
    rgb[:, :STORED[0] // 2] = 250
    path = tmp_path_factory.mktemp("photo") / "photo.jpg"
    Image.fromarray(rgb).save(path, quality=95, icc_profile=ICC, exif=camera_exif(), xmp=XMP)
    with Image.open(path) as check:  # what the test is about is really in the file
        assert check.info["icc_profile"] == ICC and check.info["xmp"] == XMP
        exif = check.getexif()
        assert exif[TAG.Orientation] == 6 and exif[TAG.Model] == "FC-1 Mark II"
    return path


@pytest.fixture(scope="module")
def coded(photo) -> Path:
    out = photo.with_name("photo.fcx")
    result = run("encode", photo, "-o", out, "--beta", 0.01, "--quiet")
    assert result.exit_code == 0, (result.stderr, result.exception)
    return out


@pytest.fixture(scope="module")
def stripped(photo) -> Path:
    out = photo.with_name("stripped.fcx")
    result = run("encode", photo, "-o", out, "--beta", 0.01, "--quiet", "--strip")
    assert result.exit_code == 0, (result.stderr, result.exception)
    return out


def decoded(fcx_path: Path, suffix: str, tmp_path: Path) -> Image.Image:
    out = tmp_path / f"out{suffix}"
    result = run("decode", fcx_path, "-o", out, "--quiet")
    assert result.exit_code == 0, (result.stderr, result.exception)
    im = Image.open(out)
    im.load()
    return im


def xmp_of(im: Image.Image) -> bytes:
    """The XMP packet Pillow read (bytes; a str in some of its versions), b"" if none."""
    xmp = im.info.get("xmp", b"")
    return xmp.encode() if isinstance(xmp, str) else xmp


def info(path: Path) -> dict:
    result = run("info", "--json", path)
    assert result.exit_code == 0, result.stderr
    return json.loads(result.stdout)


# --- through the command line ------------------------------------------------------------------

def test_info_lists_the_metadata_and_version_2(coded):
    record = info(coded)
    assert record["format_version"] == 2
    assert list(record["metadata"]) == ["icc", "exif", "xmp"]
    assert record["metadata"]["icc"] == len(ICC)
    text = run("info", coded).stdout
    assert "format_version       2" in text and f"'icc': {len(ICC)}" in text


@pytest.mark.parametrize("suffix", [".png", ".jpg", ".webp", ".tif"])
def test_metadata_comes_back_in_every_format_that_holds_it(coded, tmp_path, suffix):
    im = decoded(coded, suffix, tmp_path)
    assert im.info.get("icc_profile") == ICC
    exif = im.getexif()
    for tag, value in CAMERA.items():
        assert exif.get(tag) == value, (tag, dict(exif))
    assert exif.get_ifd(ExifTags.IFD.Exif).get(TAG.DateTimeOriginal) == TAKEN
    assert b'dc:rights="CC BY 4.0"' in xmp_of(im)


@pytest.mark.parametrize("suffix", [".png", ".jpg", ".tif"])
def test_orientation_is_applied_once(coded, tmp_path, suffix):
    """The pixels are stored upright, so neither EXIF nor XMP may ask a viewer to turn them
    again: no Orientation tag (Pillow reads XMP's tiff:Orientation into it too)."""
    im = decoded(coded, suffix, tmp_path)
    assert im.size == STORED[::-1]
    assert TAG.Orientation not in im.getexif()
    assert b"tiff:Orientation" not in xmp_of(im)
    gray = np.asarray(im.convert("L"), dtype=np.float64)
    assert gray[:24].mean() > gray[40:].mean() + 50   # orientation 6: the bright half on top
    assert ImageOps.exif_transpose(im).size == im.size   # what a viewer shows


def test_formats_without_metadata_get_the_pixels(coded, tmp_path):
    im = decoded(coded, ".bmp", tmp_path)
    assert im.size == STORED[::-1] and "icc_profile" not in im.info


@pytest.mark.parametrize("suffix", [".png", ".jpg"])
def test_strip_drops_everything(stripped, tmp_path, suffix):
    record = info(stripped)
    assert record["format_version"] == 1 and record["metadata"] == {}
    im = decoded(stripped, suffix, tmp_path)
    assert "icc_profile" not in im.info and "xmp" not in im.info
    exif = im.getexif()
    assert TAG.Make not in exif and TAG.Orientation not in exif
    assert im.size == STORED[::-1]   # still upright: --strip drops metadata, not the rotation


def test_metadata_does_not_change_the_coded_image(coded, stripped):
    """The metadata block sits beside the streams: the same picture gives the same streams."""
    with_metadata, without = fcx.unpack(coded.read_bytes()), fcx.unpack(stripped.read_bytes())
    assert with_metadata.streams == without.streams
    assert len(coded.read_bytes()) - len(stripped.read_bytes()) == (
        1 + sum(5 + size for size in info(coded)["metadata"].values()))


def test_a_version_1_golden_still_decodes_from_the_command_line(tmp_path):
    golden = GOLDEN / "parrots_b0.02.fcx"
    assert golden.read_bytes()[8] == 1
    assert info(golden)["format_version"] == 1
    im = decoded(golden, ".png", tmp_path)
    assert im.size == (256, 192) and "icc_profile" not in im.info


def _resealed(data: bytes, at: int, new: bytes) -> bytes:
    body = bytearray(data[:-4])
    body[at:at + len(new)] = new
    return bytes(body) + struct.pack("<I", zlib.crc32(bytes(body)))


def _metadata_offset(data: bytes) -> int:
    """Where the metadata block starts: after the 52 + L fixed bytes (docs/format.md)."""
    return 52 + data[10]


@pytest.mark.parametrize("damage, reason", [
    ("count", "metadata block with 7 entries"),
    ("kind", "unknown metadata kind 9"),
    ("length", "icc metadata of 4294967295 bytes"),
    ("truncated", "truncated"),
    ("crc", "CRC mismatch"),
])
def test_a_damaged_metadata_block_is_a_corrupt_file(coded, tmp_path, damage, reason):
    data = coded.read_bytes()
    at = _metadata_offset(data)
    bad = {
        "count": lambda: _resealed(data, at, b"\x07"),
        "kind": lambda: _resealed(data, at + 1, b"\x09"),
        "length": lambda: _resealed(data, at + 2, b"\xff\xff\xff\xff"),
        "truncated": lambda: (lambda body: body + struct.pack("<I", zlib.crc32(body)))(
            data[:at + 100]),
        "crc": lambda: data[:at + 3] + bytes([data[at + 3] ^ 1]) + data[at + 4:],
    }[damage]()
    path = tmp_path / "bad.fcx"
    path.write_bytes(bad)
    for command in (["info", path], ["decode", path, "-o", tmp_path / "bad.png"]):
        line = assert_one_clean_error(run(*command), cli.EXIT_FORMAT)
        assert reason in line and str(path) in line
    assert sorted(p.name for p in tmp_path.iterdir()) == ["bad.fcx"]   # no output, no temporary


def test_metadata_larger_than_a_file_holds_is_refused_unless_stripped(photo, tmp_path, monkeypatch):
    monkeypatch.setattr(fcx, "MAX_METADATA_BYTES", 100)   # the lcms sRGB profile is 588 bytes
    out = tmp_path / "x.fcx"
    line = assert_one_clean_error(run("encode", photo, "-o", out, "--quiet"), cli.EXIT_INPUT)
    assert "ICC metadata (588 bytes)" in line and "--strip" in line and str(photo) in line
    assert not out.exists()
    result = run("encode", photo, "-o", out, "--quiet", "--strip", "--beta", 0.05)
    assert result.exit_code == 0, result.stderr


# --- reading rules (no model) ------------------------------------------------------------------

def _saved(im: Image.Image, fmt: str, **params) -> bytes:
    out = io.BytesIO()
    im.save(out, format=fmt, **params)
    return out.getvalue()


def test_a_file_without_metadata_reads_as_none():
    picture = images.read_image(_saved(Image.fromarray(gradient(8, 8)), "PNG"))
    assert picture.metadata is None


def test_strip_reads_no_metadata(photo):
    assert images.read_image(photo, keep_metadata=False).metadata is None
    assert images.read_image(photo).metadata.icc == ICC


def test_exif_is_stored_as_a_tiff_structure_without_orientation(photo):
    exif = images.read_image(photo).metadata.exif
    assert exif[:4] in (b"II*\x00", b"MM\x00*")
    parsed = Image.Exif()
    parsed.load(exif)
    assert TAG.Orientation not in parsed and parsed[TAG.Model] == CAMERA[TAG.Model]


def test_a_profile_of_another_colour_space_is_dropped():
    """A CMYK JPEG's profile describes CMYK values; Pillow's conversion gives RGB, so the
    profile would mislead every colour-managed viewer."""
    cmyk_profile = ICC[:16] + b"CMYK" + ICC[20:]
    data = _saved(Image.new("CMYK", (16, 8), (10, 200, 30, 0)), "JPEG", icc_profile=cmyk_profile)
    assert images.read_image(data).metadata is None
    gray = _saved(Image.new("L", (16, 8), 90), "PNG", icc_profile=ICC)   # RGB profile, gray image
    assert images.read_image(gray).metadata is None
    rgb = _saved(Image.new("RGB", (16, 8)), "PNG", icc_profile=ICC)
    assert images.read_image(rgb).metadata.icc == ICC


def test_a_tiff_keeps_its_exif_but_not_its_storage_tags():
    tags = camera_exif(orientation=None)
    tags[TAG.XMLPacket] = XMP
    data = _saved(Image.fromarray(gradient(16, 8)), "TIFF", exif=tags, icc_profile=ICC)
    metadata = images.read_image(data).metadata
    parsed = Image.Exif()
    parsed.load(metadata.exif)
    assert parsed[TAG.Make] == CAMERA[TAG.Make]
    for tag in (TAG.StripOffsets, TAG.ImageWidth, TAG.InterColorProfile, TAG.XMLPacket):
        assert tag not in parsed
    assert metadata.icc == ICC and metadata.xmp.startswith(b"<?xpacket")


def test_large_exif_and_xmp_are_left_out_of_a_jpeg_only():
    """A JPEG segment holds 64 KB; PNG and TIFF hold any size."""
    big = images.Metadata(icc=ICC, xmp=b"<x>" + b" " * 70000 + b"</x>")
    picture = images.Picture(gradient(8, 8), None, fcx.LAYOUT_RGB, big)
    with Image.open(io.BytesIO(images.encode_image_bytes(picture, ".jpg"))) as jpeg:
        assert jpeg.info["icc_profile"] == ICC and "xmp" not in jpeg.info
    with Image.open(io.BytesIO(images.encode_image_bytes(picture, ".png"))) as png:
        assert xmp_of(png) == big.xmp


def test_forged_exif_is_a_corrupt_file_where_the_output_format_parses_it(coded, tmp_path):
    """The container stores any bytes; a TIFF output must parse the EXIF, so a forged entry
    that is no TIFF structure is exit 4 there (and written as it is into a PNG)."""
    container = fcx.unpack(coded.read_bytes())
    container.header.metadata["exif"] = b"not a TIFF structure"
    forged = tmp_path / "forged.fcx"
    forged.write_bytes(fcx.pack(container))
    line = assert_one_clean_error(run("decode", forged, "-o", tmp_path / "out.tif"),
                                  cli.EXIT_FORMAT)
    assert "EXIF metadata is not a TIFF structure" in line
    assert not (tmp_path / "out.tif").exists()
    assert run("decode", forged, "-o", tmp_path / "out.png", "--quiet").exit_code == 0
