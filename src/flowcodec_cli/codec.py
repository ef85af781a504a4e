"""encode(picture) -> .fcx bytes and decode(.fcx bytes) -> picture, as mirror images.

    encode: image → tensor → g_a → (y, z) → round → z tables → z stream
                                              → h_s(ẑ) → y tables → y stream → container
    decode: container → z stream → ẑ → h_s(ẑ) → y tables → y stream → ŷ → g_s → image

Determinism: everything that feeds a probability table (the hyper-synthesis h_s, the rate gains,
the factorized prior of z) runs on the CPU in float64, and its output is snapped to integer grids
in entropy.py. The encoder stores a CRC of the snapped y parameters; the decoder recomputes it
and refuses to decode on a mismatch (DesyncError) instead of emitting garbage. The transforms
g_a and g_s run in float32: g_a only on the encoder, and g_s after all entropy decoding, where a
last-ulp difference can no longer desynchronize anything.

All coding runs with oneDNN (mkldnn) switched off: its convolutions partition work by thread
count and round differently with 1 and 2 threads (measured: 44 pixel values of a Kodak image
changed by one level), while ATen's im2col + GEMM path gives identical results for any thread
count, and is no slower on this CPU.
"""

from __future__ import annotations

import copy
import threading
import zlib
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F

from . import entropy, fcx, mixture, zoo
from .images import Picture

WEIGHTS_DIGEST_BYTES = fcx.DIGEST_BYTES


class CodecError(RuntimeError):
    """The file cannot be coded with the available model (unknown, other weights, bad β)."""


class SideInfoError(CodecError):
    """Side information is required but missing, or does not fit the file."""


@dataclass
class EncodeStats:
    estimated_bits: float   # the model's information content of the coded symbols
    payload_bits: int       # the range-coded streams as written (without container overhead)


class LoadedCodec:
    """A verified model prepared for coding: float32 transforms, float64 table networks."""

    _cache: dict[str, "LoadedCodec"] = {}
    _lock = threading.Lock()

    def __init__(self, name: str):
        self.name = name
        self.model, sha = zoo.load(name)
        self.digest = bytes.fromhex(sha)[:WEIGHTS_DIGEST_BYTES]
        self._on_device: dict = {}
        self.h_s64 = copy.deepcopy(self.model.h_s).double().eval()
        self.hyper_gain64 = copy.deepcopy(self.model.inverse_hyper_gain).double()
        z_prior = self.model.z_prior(torch.Size([1, self.model.config.hyper_channels, 1, 1]),
                                     torch.float64)
        self.z_prior64 = mixture.MixtureParams(*(p[0, :, :, 0, 0].detach() for p in z_prior))

    def transforms(self, device: str):
        """The float32 model on `device` (g_a, h_a, g_s run there; tables stay on the CPU)."""
        if device == "cpu":
            return self.model
        if device == "cuda" and not torch.cuda.is_available():
            raise CodecError("--device cuda: no CUDA device is available on this machine")
        if device not in self._on_device:
            self._on_device[device] = copy.deepcopy(self.model).to(device)
        return self._on_device[device]

    @classmethod
    def get(cls, name: str) -> "LoadedCodec":
        with cls._lock:
            if name not in cls._cache:
                cls._cache[name] = LoadedCodec(name)
            return cls._cache[name]

    # --- the probability side (float64, deterministic) ---------------------------------------

    def z_tables(self, z_shape: torch.Size) -> entropy.QuantizedMixture:
        """The factorized prior of z, expanded to every position: (K, C·H·W) grids."""
        _, c, h, w = z_shape
        def per_element(p: torch.Tensor) -> np.ndarray:  # (K, C) -> (K, C·H·W), raster order
            return p[:, :, None].expand(-1, c, h * w).reshape(p.shape[0], -1).numpy()
        return entropy.quantize_params(*(per_element(p) for p in self.z_prior64))

    @torch.no_grad()
    def y_params(self, z_hat: torch.Tensor, beta: float) -> mixture.MixtureParams:
        """Float64 mixture parameters of ŷ, each (K, C, H, W), from integer ẑ (1, C, H, W)."""
        beta64 = torch.tensor([beta], dtype=torch.float64)
        raw = self.h_s64(z_hat.double() / self.hyper_gain64(beta64))
        params = self.model.split(raw)
        return mixture.MixtureParams(*(p[0] for p in params))

    @staticmethod
    def y_tables(params: mixture.MixtureParams) -> entropy.QuantizedMixture:
        k = params.logits.shape[0]
        return entropy.quantize_params(*(p.reshape(k, -1).numpy() for p in params))


def _pad(x: torch.Tensor, stride: int) -> torch.Tensor:
    """Replicate-pad (B,3,H,W) on the bottom/right to multiples of the model stride."""
    h, w = x.shape[2:]
    ph, pw = (-h) % stride, (-w) % stride
    if ph == 0 and pw == 0:
        return x
    return F.pad(x, (0, pw, 0, ph), mode="replicate")


def _estimated_bits(values: torch.Tensor, params: mixture.MixtureParams) -> float:
    """Model bits of integer values (C,H,W) under float mixture params (K,C,H,W)."""
    batched = mixture.MixtureParams(*(p.unsqueeze(0) for p in params))
    likelihood = mixture.bin_likelihood(values.double().unsqueeze(0), batched)
    return float(mixture.bits(likelihood)[0])


def _deterministic(fn):
    """Run `fn` without gradients and without oneDNN (see the module docstring)."""
    def wrapper(*args, **kwargs):
        with torch.no_grad(), torch.backends.mkldnn.flags(enabled=False, allow_tf32=None):
            return fn(*args, **kwargs)
    wrapper.__doc__, wrapper.__name__ = fn.__doc__, fn.__name__
    return wrapper


DEFAULT_TILE = 1024
"""Images are coded in independent tiles of this side (a multiple of the model stride), so that
memory stays bounded for any image size. Kodak-sized images are a single tile."""


def _tiles(header: fcx.Header):
    """(top, left, height, width) of every tile, in raster order (the stream order)."""
    rows, cols = header.tile_grid
    for r in range(rows):
        for c in range(cols):
            top, left = r * header.tile, c * header.tile
            yield top, left, min(header.tile, header.height - top), min(header.tile, header.width - left)


@_deterministic
def encode(picture: Picture, beta: float, model_name: str = zoo.DEFAULT_MODEL,
           device: str = "cpu", tile: int = DEFAULT_TILE) -> tuple[bytes, EncodeStats]:
    """Compress a picture into .fcx bytes at rate weight β."""
    codec = LoadedCodec.get(model_name)
    config = codec.model.config
    if not config.beta_min <= beta <= config.beta_max:
        raise CodecError(f"--beta {beta} is outside the model's range "
                         f"[{config.beta_min}, {config.beta_max}]")
    height, width = picture.rgb.shape[:2]
    fcx.check_dimensions(height, width)
    header = fcx.Header(model_name, codec.digest, height, width, picture.layout, beta, 0, tile)
    streams: list[bytes] = []
    estimate = 0.0
    for top, left, h, w in _tiles(header):
        z_stream, y_stream, y_q, bits = _encode_tile(
            codec, picture.rgb[top:top + h, left:left + w], beta, device)
        streams += [z_stream, y_stream]
        header.params_crc = y_q.digest(header.params_crc)
        estimate += bits
    payload = 8 * sum(len(s) for s in streams)
    if picture.alpha is not None:
        streams.append(zlib.compress(np.ascontiguousarray(picture.alpha).tobytes(), 9))
    return fcx.pack(fcx.Container(header, streams)), EncodeStats(estimate, payload)


def _image_tensor(rgb: np.ndarray, stride: int) -> torch.Tensor:
    """uint8 (H, W, 3) → float32 (1, 3, H', W') in [0, 1], padded to multiples of `stride`."""
    x = torch.from_numpy(np.ascontiguousarray(rgb)).permute(2, 0, 1).unsqueeze(0).float().div_(255.0)
    return _pad(x, stride)


@_deterministic
def unquantized_roundtrip_error(codec: LoadedCodec, rgb: np.ndarray, beta: float) -> float:
    """max |synthesis(analysis(x)) − x| over the image's pixels in [0, 1], float32, with the
    rounding of the latents left out: what an invertible transform loses by itself."""
    model = codec.model
    height, width = rgb.shape[:2]
    x = _image_tensor(rgb, model.stride)
    beta_t = torch.tensor([beta])
    y, _ = model.analysis(x, beta_t)
    x_back = model.synthesis(y, beta_t)
    return float((x_back - x)[..., :height, :width].abs().max())


def _encode_tile(codec: LoadedCodec, rgb: np.ndarray, beta: float, device: str):
    """One tile: image → g_a → (y, z) → z stream, h_s(ẑ) → tables → y stream."""
    x = _image_tensor(rgb, codec.model.stride)
    y, z = codec.transforms(device).analysis(x.to(device), torch.tensor([beta], device=device))
    y_hat, z_hat = torch.round(y.cpu())[0], torch.round(z.cpu())

    z_q = codec.z_tables(z_hat.shape)
    z_stream = entropy.encode(z_hat.flatten().long().numpy(), z_q)
    y_params = codec.y_params(z_hat, beta)
    y_q = codec.y_tables(y_params)
    y_stream = entropy.encode(y_hat.flatten().long().numpy(), y_q)

    z_prior = mixture.MixtureParams(*(p[:, :, None, None].expand(-1, -1, *z_hat.shape[2:])
                                      for p in codec.z_prior64))
    bits = _estimated_bits(y_hat, y_params) + _estimated_bits(z_hat[0], z_prior)
    return z_stream, y_stream, y_q, bits


@_deterministic
def decode(data: bytes, side_info: Picture | None = None, device: str = "cpu") -> Picture:
    """Decompress .fcx bytes. Raises fcx.FormatError, CodecError or entropy.DesyncError.

    `side_info` is ignored by models that do not use it (the header's flag says which do).
    """
    container = fcx.unpack(data)
    header = container.header
    if header.needs_side_info and side_info is None:
        raise SideInfoError("this file needs side information: pass --side-info IMAGE")
    try:
        codec = LoadedCodec.get(header.model)
    except zoo.WeightsError as exc:
        raise CodecError(f"cannot decode: {exc}") from None
    if header.weights_digest != codec.digest:
        raise CodecError(f"file was made with other weights for model {header.model!r} "
                         f"({header.weights_digest.hex()[:12]}…, installed {codec.digest.hex()[:12]}…)")
    rows, cols = header.tile_grid
    has_alpha = header.layout in (fcx.LAYOUT_RGBA, fcx.LAYOUT_GRAY_ALPHA)
    expected_streams = 2 * rows * cols + has_alpha
    if len(container.streams) != expected_streams:
        raise fcx.FormatError(f"expected {expected_streams} streams, found {len(container.streams)}")

    rgb = np.empty((header.height, header.width, 3), dtype=np.uint8)
    crc = 0
    broken: fcx.FormatError | None = None
    for index, (top, left, h, w) in enumerate(_tiles(header)):
        z_stream, y_stream = container.streams[2 * index:2 * index + 2]
        y_params, y_q = _tile_tables(codec, z_stream, h, w, header.beta)
        crc = y_q.digest(crc)
        if broken is None:
            try:
                rgb[top:top + h, left:left + w] = _decode_tile(codec, y_stream, y_params, y_q, h, w,
                                                               header.beta, device)
            except fcx.FormatError as exc:
                # Keep chaining the parameter CRC: wrong tables also break the range decoder,
                # and then the right diagnosis is the desync, not a corrupt stream.
                broken = exc
    # Checked before anything is returned: a desync yields an error, never an image of garbage.
    if crc != header.params_crc:
        raise entropy.DesyncError("probability tables differ from the encoder's (parameter CRC "
                                  "mismatch): refusing to decode")
    if broken is not None:
        raise broken
    alpha = _decode_alpha(container.streams[-1], header) if has_alpha else None
    return Picture(rgb, alpha, header.layout)


def _tile_tables(codec: LoadedCodec, z_stream: bytes, h: int, w: int, beta: float):
    """Mirror of the first half of `_encode_tile`: z stream → ẑ → h_s(ẑ) → y tables."""
    stride = codec.model.stride
    z_shape = torch.Size([1, codec.model.config.hyper_channels, -(-h // stride), -(-w // stride)])
    z_q = codec.z_tables(z_shape)
    z_hat = torch.from_numpy(_decode_stream(z_stream, z_q)).double().view(z_shape)
    y_params = codec.y_params(z_hat, beta)
    return y_params, codec.y_tables(y_params)


def _decode_tile(codec: LoadedCodec, y_stream: bytes, y_params: mixture.MixtureParams,
                 y_q: entropy.QuantizedMixture, h: int, w: int, beta: float, device: str):
    """The second half: y stream → ŷ → synthesis → RGB tile (h, w, 3) uint8."""
    y_hat = torch.from_numpy(_decode_stream(y_stream, y_q)).float().view(1, *y_params.means.shape[1:])

    beta32 = torch.tensor([beta], dtype=torch.float64).float()
    x_hat = codec.transforms(device).synthesis(y_hat.to(device), beta32.to(device)).cpu()
    x_hat = x_hat[0, :, :h, :w].clamp(0, 1)  # NaN from a forged stream also ends up in [0, 1]
    x_hat = torch.nan_to_num(x_hat, nan=0.0)
    return x_hat.mul(255).round().to(torch.uint8).permute(1, 2, 0).numpy()


def _decode_alpha(stream: bytes, header: fcx.Header) -> np.ndarray:
    """The lossless alpha plane; bounded so a forged stream cannot inflate past the image size."""
    size = header.height * header.width
    try:
        raw = zlib.decompressobj().decompress(stream, size + 1)
    except zlib.error:
        raise fcx.FormatError("alpha stream is corrupt") from None
    if len(raw) != size:
        raise fcx.FormatError("alpha stream has the wrong size")
    return np.frombuffer(raw, dtype=np.uint8).reshape(header.height, header.width).copy()


def _decode_stream(stream: bytes, q: entropy.QuantizedMixture) -> np.ndarray:
    try:
        return entropy.decode(stream, q)
    except (ValueError, RuntimeError, AssertionError, OverflowError) as exc:  # constriction: broken stream
        raise fcx.FormatError(f"entropy-coded stream is corrupt ({exc})") from None
