"""The Python API (flowcodec_cli.encode / decode / info, docs/python.md): the command line's
operations on images in memory, with its bytes, its rate rules and its typed errors, safe to call
from several threads at once."""

from __future__ import annotations

import io
import json
import subprocess
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import pytest
import torch
from click.testing import CliRunner
from PIL import Image, ImageCms

import flowcodec_cli
from flowcodec_cli import api, cli, errors, zoo
from flowcodec_cli.codec import fcx, quality, rate_request
from flowcodec_cli.codec.loaded import LoadedCodec

ROOT = Path(__file__).resolve().parents[1]
PARROTS = ROOT / "tests" / "data" / "parrots_256x192.png"
STEREO = ROOT / "tests" / "data" / "stereo"
ICC = ImageCms.ImageCmsProfile(ImageCms.createProfile("sRGB")).tobytes()


def cli_encode(tmp_path: Path, src: Path, *args) -> bytes:
    out = tmp_path / f"cli{len(list(tmp_path.iterdir()))}.fcx"
    result = CliRunner().invoke(cli.main, ["encode", str(src), "-o", str(out), "--quiet",
                                           *map(str, args)])
    assert result.exit_code == 0, (result.stderr, result.exception)
    return out.read_bytes()


def cli_failure(*args) -> tuple[int, str]:
    """The exit code and the one-line message (without "flowcodec: ") of a failing command."""
    result = CliRunner().invoke(cli.main, [*map(str, args)])
    return result.exit_code, result.stderr.strip().split(": ", 1)[1]


def psnr(a: Image.Image, b: Image.Image) -> float:
    diff = np.asarray(a, dtype=np.float64) - np.asarray(b, dtype=np.float64)
    return 10 * np.log10(255 ** 2 / np.mean(diff ** 2))


@pytest.fixture(scope="module")
def parrots() -> Image.Image:
    with Image.open(PARROTS) as im:
        return im.convert("RGB")


@pytest.fixture(scope="module")
def coded() -> bytes:
    return api.encode(PARROTS, quality=60)


# --- the package's public names -------------------------------------------------------------

def test_the_package_exports_the_api_and_the_errors():
    assert flowcodec_cli.encode is api.encode and flowcodec_cli.decode is api.decode
    assert flowcodec_cli.info is api.info
    for name in ("CodecError", "DesyncError", "FormatError", "ImageError", "SideInfoError",
                 "WeightsError", "WeightsMissing"):
        assert getattr(flowcodec_cli, name) is getattr(errors, name)
    assert set(flowcodec_cli.__all__) <= set(dir(flowcodec_cli))
    with pytest.raises(AttributeError):
        flowcodec_cli.no_such_name  # noqa: B018


# --- round trips and the command line's bytes -----------------------------------------------

def test_path_pil_image_and_bytes_give_the_clis_bytes(tmp_path, parrots, coded):
    """Same image, same quality: the same file as `flowcodec encode`, from every kind of input."""
    assert coded == cli_encode(tmp_path, PARROTS, "-q", "60")
    assert api.encode(str(PARROTS), quality=60) == coded
    assert api.encode(PARROTS.read_bytes(), quality=60) == coded
    with Image.open(PARROTS) as opened:  # lazily opened, as Image.open gives it
        assert api.encode(opened, quality=60) == coded
    assert api.encode(np.asarray(parrots), quality=60) == coded


def test_defaults_and_beta_are_the_clis(tmp_path, parrots):
    default = api.encode(parrots)
    assert default == cli_encode(tmp_path, PARROTS)
    assert default == api.encode(parrots, quality=rate_request.DEFAULT_QUALITY)
    assert cli.DEFAULT_QUALITY == rate_request.DEFAULT_QUALITY == 75
    assert api.encode(parrots, beta=0.01) == cli_encode(tmp_path, PARROTS, "--beta", "0.01")


def test_decode_round_trip(parrots, coded):
    decoded = api.decode(coded)
    assert decoded.mode == "RGB" and decoded.size == (256, 192)
    assert 25 < psnr(decoded, parrots) < 45
    assert decoded.info == {}  # the PNG had no metadata to keep


@pytest.mark.parametrize("shape,mode", [((48, 64, 3), "RGB"), ((48, 64, 4), "RGBA"),
                                        ((48, 64), "L")])
def test_arrays_of_every_accepted_shape(shape, mode):
    rng = np.random.default_rng(0)
    smooth = np.linspace(0, 255, 64, dtype=np.float64)[None, :] * np.ones((48, 1))
    array = np.clip(smooth.reshape(48, 64, *([1] * (len(shape) - 2)))
                    + rng.normal(0, 4, shape), 0, 255).astype(np.uint8)
    decoded = api.decode(api.encode(array, quality=90))
    assert decoded.mode == mode and decoded.size == (64, 48)
    if mode == "RGBA":  # the alpha plane is lossless
        assert np.array_equal(np.asarray(decoded)[..., 3], array[..., 3])


def test_decode_and_info_take_a_path(tmp_path, coded):
    path = tmp_path / "x.fcx"
    path.write_bytes(coded)
    assert api.decode(path).tobytes() == api.decode(coded).tobytes()
    assert api.info(path) == {"file": str(path), **api.info(coded)}


def test_info_is_the_clis_json(tmp_path, coded):
    path = tmp_path / "x.fcx"
    path.write_bytes(coded)
    result = CliRunner().invoke(cli.main, ["info", "--json", str(path)])
    assert result.exit_code == 0
    assert api.info(str(path)) == json.loads(result.stdout)
    assert api.info(coded)["bytes"] == len(coded) and "file" not in api.info(coded)


INFO_WITHOUT_TORCH = """
import sys
import flowcodec_cli
record = flowcodec_cli.info(sys.argv[1])
try:
    flowcodec_cli.encode(b"not an image")
except flowcodec_cli.ImageError:
    pass
print(record["width"], "torch" in sys.modules)
"""


def test_info_and_bad_input_do_not_import_torch(tmp_path, coded):
    path = tmp_path / "x.fcx"
    path.write_bytes(coded)
    done = subprocess.run([sys.executable, "-c", INFO_WITHOUT_TORCH, str(path)],
                          capture_output=True, text=True, timeout=60)
    assert done.stdout.split() == ["256", "False"], done.stderr


# --- metadata ------------------------------------------------------------------------------

def photo_with_metadata(parrots) -> Image.Image:
    exif = Image.Exif()
    exif[0x010F] = "flowcodec test camera"   # Make
    buffer = io.BytesIO()
    parrots.crop((0, 0, 128, 96)).save(buffer, "JPEG", quality=95, icc_profile=ICC,
                                       exif=exif.tobytes(), xmp=b"<x:xmpmeta/>")
    return Image.open(io.BytesIO(buffer.getvalue()))


def test_metadata_is_kept_in_im_info_unless_stripped(parrots):
    photo = photo_with_metadata(parrots)
    decoded = api.decode(api.encode(photo, quality=60))
    assert decoded.info["icc_profile"] == ICC and decoded.info["xmp"] == b"<x:xmpmeta/>"
    assert decoded.getexif()[0x010F] == "flowcodec test camera"
    assert api.info(api.encode(decoded, quality=60))["metadata"] == \
        api.info(api.encode(photo, quality=60))["metadata"]  # it travels on when coded again
    stripped = api.encode(photo, quality=60, strip=True)
    assert api.info(stripped)["metadata"] == {} and api.decode(stripped).info == {}


# --- the rate: one way to set it, as on the command line -------------------------------------

@pytest.mark.parametrize("options,names", [
    ({"quality": 50, "beta": 0.01}, "quality and beta"),
    ({"beta": 0.01, "target_size": 5000}, "beta and target_size"),
    ({"quality": 50, "target_psnr": 30}, "quality and target_psnr"),
])
def test_one_way_to_set_the_rate(parrots, options, names):
    with pytest.raises(ValueError, match=f"^{names} both set the rate: give one$"):
        api.encode(parrots, **options)


def test_refusals_carry_the_clis_types_and_messages(parrots):
    code, line = cli_failure("encode", PARROTS, "--model", "nope", "-o", "x.fcx")
    with pytest.raises(errors.WeightsError) as raised:
        api.encode(parrots, model="nope")
    assert errors.classify(raised.value) == (code, line)
    without_scale = sorted(set(zoo.REGISTRY) - quality.models())[0]
    with pytest.raises(errors.CodecError, match="^quality: .*no quality scale.*beta"):
        api.encode(parrots, model=without_scale, quality=50)
    with pytest.raises(ValueError, match="outside"):
        api.encode(parrots, quality=101)
    with pytest.raises(ValueError, match="positive"):
        api.encode(parrots, target_bpp=-1)
    with pytest.raises(errors.CodecError, match="outside the model's range"):
        api.encode(parrots, beta=10.0)


def test_a_target_is_searched_as_on_the_command_line(tmp_path):
    crop = tmp_path / "crop.png"
    with Image.open(PARROTS) as im:
        im.crop((0, 0, 128, 96)).save(crop)
    data = api.encode(crop, target_size=1000)
    assert data == cli_encode(tmp_path, crop, "--target-size", "1000")
    assert abs(len(data) / 1000 - 1) <= 0.01


# --- bad inputs: typed errors, never SystemExit -----------------------------------------------

def test_bad_inputs_raise_the_typed_errors(tmp_path, coded):
    with pytest.raises(errors.ImageError, match="not a recognized image"):
        api.encode(b"not an image")
    with pytest.raises(FileNotFoundError):
        api.encode(tmp_path / "missing.png")
    with pytest.raises(errors.ImageError, match=r"uint8 array, got float32 \(4, 4, 3\)"):
        api.encode(np.zeros((4, 4, 3), np.float32))
    with pytest.raises(errors.ImageError, match=r"got uint8 \(4, 4, 2\)"):
        api.encode(np.zeros((4, 4, 2), np.uint8))
    with pytest.raises(TypeError, match="a Pillow image, a uint8 array, a path or bytes"):
        api.encode([[0, 0, 0]])
    with pytest.raises(ValueError, match="frame"):
        api.encode(Image.new("RGB", (8, 8)), frame=0)
    with pytest.raises(errors.FormatError, match="CRC"):
        api.decode(coded[:-1] + bytes([coded[-1] ^ 1]))
    with pytest.raises(errors.FormatError, match="bad magic"):
        api.info(b"GIF89a")
    with pytest.raises(FileNotFoundError):
        api.decode(tmp_path / "missing.fcx")


def test_a_pil_image_fails_as_its_file_would():
    """Too large, or truncated (Image.open reads lazily): ImageError, as from a file."""
    with pytest.raises(errors.ImageError, match="exceeds the limit"):
        api.encode(Image.new("L", (70000, 1)))
    truncated = PARROTS.read_bytes()[:20000]
    with pytest.raises(errors.ImageError, match="cannot read image"):
        api.encode(Image.open(io.BytesIO(truncated)))
    with pytest.raises(errors.ImageError, match="cannot read image"):
        api.encode(truncated)


# --- side information --------------------------------------------------------------------

def test_side_information_is_taken_like_an_image():
    left, right = STEREO / "left" / "cup_upright.png", STEREO / "right" / "cup_upright.png"
    data = (ROOT / "tests" / "golden" / "cup_dsc_b0.01.fcx").read_bytes()
    assert api.info(data)["side_info_required"]
    with pytest.raises(errors.SideInfoError):
        api.decode(data)
    with pytest.raises(errors.SideInfoError, match="side information: no such file"):
        api.decode(data, side_info=STEREO / "missing.png")
    decoded = api.decode(data, side_info=right)
    with Image.open(right) as view:
        assert decoded.tobytes() == api.decode(data, side_info=view).tobytes()
    with Image.open(left) as original:
        assert psnr(decoded, original.convert("RGB")) > 25


# --- threads -------------------------------------------------------------------------------

def test_a_model_is_loaded_once_for_every_thread(monkeypatch):
    """Four threads asking for a model that is not loaded yet get one and the same instance."""
    loads = []

    def slow_init(self, name):
        loads.append(name)
        time.sleep(0.2)

    monkeypatch.setattr(LoadedCodec, "_cache", {})
    monkeypatch.setattr(LoadedCodec, "__init__", slow_init)
    barrier = threading.Barrier(4)

    def get(_):
        barrier.wait()
        return LoadedCodec.get("some-model")

    with ThreadPoolExecutor(4) as pool:
        instances = list(pool.map(get, range(4)))
    assert loads == ["some-model"] and all(i is instances[0] for i in instances)


@pytest.mark.parametrize("effort,size", [(0, (256, 192)), (1, (64, 64))])
def test_threads_code_at_once_with_the_serial_bytes(parrots, effort, size):
    """Four threads encode (and then decode) one image at once: every result is the serial one,
    and the process-wide oneDNN switch that coding turns off is back as it was after."""
    image = parrots.crop((0, 0, *size))
    serial = api.encode(image, quality=60, effort=effort)
    pixels = api.decode(serial).tobytes()
    onednn = torch.backends.mkldnn.enabled
    barrier = threading.Barrier(4)

    def encode(_):
        barrier.wait()
        return api.encode(image, quality=60, effort=effort)

    def decode(data):
        barrier.wait()
        return api.decode(data).tobytes()

    with ThreadPoolExecutor(4) as pool:
        coded = list(pool.map(encode, range(4)))
        decoded = list(pool.map(decode, coded))
    assert coded == [serial] * 4 and decoded == [pixels] * 4
    assert torch.backends.mkldnn.enabled == onednn
