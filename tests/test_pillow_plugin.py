"""The Pillow plug-in (flowcodec_cli.pillow): Image.open reads an .fcx header lazily (size, mode
and metadata without decoding or torch), load() decodes as flowcodec_cli.decode does, save()
encodes as flowcodec_cli.encode does, and a corrupt file fails at Image.open with the codec's
FormatError."""

from __future__ import annotations

import io
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from flowcodec_cli import api, errors
from pillow_registration import fcx_plugin

ROOT = Path(__file__).resolve().parents[1]
PARROTS = ROOT / "tests" / "data" / "parrots_256x192.png"
GOLDEN = ROOT / "tests" / "golden"
WITH_METADATA = GOLDEN / "parrots_metadata_b0.005.fcx"   # ICC, EXIF and XMP in the header


@pytest.fixture
def plugin():
    with fcx_plugin() as registered:
        yield registered


@pytest.fixture(scope="module")
def parrots() -> Image.Image:
    with Image.open(PARROTS) as im:
        return im.convert("RGB")


def test_open_reads_the_header_only(plugin, monkeypatch):
    def no_decoding(*args, **kwargs):
        raise AssertionError("Image.open decoded the file")

    monkeypatch.setattr(api, "decode", no_decoding)
    with Image.open(WITH_METADATA) as im:
        assert (im.format, im.size, im.mode) == ("FCX", (256, 192), "RGB")
        assert im.get_format_mimetype() == plugin.MIME
        header = api.info(WITH_METADATA)["metadata"]
        assert {key: len(im.info[key]) for key in ("icc_profile", "xmp")} == \
            {"icc_profile": header["icc"], "xmp": header["xmp"]}
        assert len(im.info["exif"]) == len(b"Exif\0\0") + header["exif"]


OPEN_WITHOUT_TORCH = """
import sys
import flowcodec_cli.pillow
from PIL import Image
with Image.open(sys.argv[1]) as im:
    print(im.format, im.size[0], im.mode, "torch" in sys.modules)
"""


def test_open_does_not_import_torch():
    done = subprocess.run([sys.executable, "-c", OPEN_WITHOUT_TORCH, str(WITH_METADATA)],
                          capture_output=True, text=True, timeout=60)
    assert done.stdout.split() == ["FCX", "256", "RGB", "False"], done.stderr


def test_load_gives_the_pixels_of_decode(plugin):
    expected = api.decode(WITH_METADATA)
    with Image.open(WITH_METADATA) as im:   # by path: Pillow must not map the file as pixels
        assert np.array_equal(np.asarray(im), np.asarray(expected))
        assert im.convert("L").tobytes() == expected.convert("L").tobytes()
    with Image.open(io.BytesIO(WITH_METADATA.read_bytes())) as im:
        im.load()
        assert im.tobytes() == expected.tobytes() and im.info == expected.info


@pytest.mark.parametrize("mode", ["L", "LA", "RGBA"])
def test_every_layout_opens_in_its_mode(plugin, parrots, mode):
    image = parrots.crop((0, 0, 64, 48)).convert(mode)
    data = api.encode(image, quality=80)
    with Image.open(io.BytesIO(data)) as im:
        assert im.mode == mode and im.size == (64, 48)
        assert im.tobytes() == api.decode(data).tobytes()


def test_save_encodes_with_the_options_of_encode(plugin, parrots, tmp_path):
    parrots.save(tmp_path / "q70.fcx", quality=70)
    assert (tmp_path / "q70.fcx").read_bytes() == api.encode(parrots, quality=70)
    crop = parrots.crop((0, 0, 64, 64))
    buffer = io.BytesIO()
    crop.save(buffer, format="FCX", beta=0.01, model="hyperprior", effort=1, optimize=True)
    assert buffer.getvalue() == api.encode(crop, beta=0.01, model="hyperprior", effort=1)
    assert api.info(buffer.getvalue())["model"] == "hyperprior"


def test_open_then_save_codes_the_decoded_pixels(plugin, tmp_path):
    with Image.open(WITH_METADATA) as im:
        im.save(tmp_path / "again.fcx", quality=60)
        expected = api.encode(api.decode(WITH_METADATA), quality=60)
    assert (tmp_path / "again.fcx").read_bytes() == expected
    # EXIF and XMP travel on; the golden's ICC is placeholder bytes, not an RGB profile, which
    # the encoder does not carry (files/images.py)
    assert set(api.info(expected)["metadata"]) == {"exif", "xmp"}


def test_a_refused_save_leaves_no_file(plugin, parrots, tmp_path):
    with pytest.raises(ValueError, match="give one"):
        parrots.save(tmp_path / "x.fcx", quality=70, beta=0.01)
    assert not (tmp_path / "x.fcx").exists()


def test_a_corrupt_file_fails_at_open_with_the_codecs_error(plugin, tmp_path):
    data = bytearray(WITH_METADATA.read_bytes())
    data[100] ^= 0xFF
    (tmp_path / "flipped.fcx").write_bytes(bytes(data))
    with pytest.raises(errors.FormatError, match="CRC mismatch"):
        Image.open(tmp_path / "flipped.fcx")
    with pytest.raises(errors.FormatError, match="truncated"):
        Image.open(io.BytesIO(WITH_METADATA.read_bytes()[:12]))
    with Image.open(PARROTS) as other:   # other formats are not the plug-in's
        assert other.format == "PNG"


def test_a_file_that_needs_side_information_opens_but_says_how_to_decode(plugin):
    with Image.open(GOLDEN / "cup_dsc_b0.01.fcx") as im:
        assert im.size == (256, 192)
        with pytest.raises(errors.SideInfoError, match=r"flowcodec_cli\.decode"):
            im.load()


def test_registration_is_pillows_and_is_undone_after_each_test():
    with fcx_plugin() as plugin:
        assert Image.registered_extensions()[".fcx"] == plugin.FORMAT
        assert Image.MIME[plugin.FORMAT] == plugin.MIME and plugin.FORMAT in Image.SAVE
        assert "frame" not in plugin.SAVE_OPTIONS and "quality" in plugin.SAVE_OPTIONS
    assert ".fcx" not in Image.registered_extensions() and plugin.FORMAT not in Image.OPEN
