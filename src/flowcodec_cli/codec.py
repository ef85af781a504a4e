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

from . import entropy, fcx, mixture, operating_points, zoo
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
    network_beta: float     # the β the network ran at (the header's β), see operating_points.py


class LoadedCodec:
    """A verified model prepared for coding: float32 transforms, float64 table networks."""

    _cache: dict[str, "LoadedCodec"] = {}
    _lock = threading.Lock()

    def __init__(self, name: str):
        self.name = name
        self.model, sha = zoo.load(name)
        # requested β → the β the network runs at, measured for these weights (operating_points.py)
        self.network_beta = operating_points.read(zoo.weights_path(name))
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
"""Images are coded in tiles of this side (a multiple of the model stride), so that memory stays
bounded for any image size. Kodak-sized images are a single tile."""

TILE_CONTEXT = 64
"""Pixels of context a tile borrows from each neighbouring tile (a multiple of every model's
latent factor). The analysis of a tile sees this much of its neighbours, so the latents at its
edge are computed as if the image went on. The synthesis of a tile decodes its neighbours'
latents within this margin too, so no tile edge is reconstructed from padding. Each tile's
streams stay self-contained (its own z, tables and y), so the entropy coding is unchanged; only
the transforms look across tile borders, which removes the seams that independent tiles show
(measured by `python -m flowcodec_cli.resources`). Image borders get no context, so an image of
one tile is coded exactly as without tiling."""


def _tiles(header: fcx.Header):
    """(top, left, height, width) of every tile, in raster order (the stream order)."""
    rows, cols = header.tile_grid
    for r in range(rows):
        for c in range(cols):
            top, left = r * header.tile, c * header.tile
            yield top, left, min(header.tile, header.height - top), min(header.tile, header.width - left)


def _region(rgb: np.ndarray, top: int, left: int, height: int, width: int) -> torch.Tensor:
    """Pixels [top, top+height) × [left, left+width) of an image as float32 (1, 3, height, width)
    in [0, 1]; the part outside the image repeats its nearest edge pixel."""
    full_h, full_w = rgb.shape[:2]
    t0, l0 = max(top, 0), max(left, 0)
    t1, l1 = min(top + height, full_h), min(left + width, full_w)
    inside = np.ascontiguousarray(rgb[t0:t1, l0:l1])
    x = torch.from_numpy(inside).permute(2, 0, 1).unsqueeze(0).float().div_(255.0)
    pad = (l0 - left, left + width - l1, t0 - top, top + height - t1)
    return F.pad(x, pad, mode="replicate") if any(pad) else x


def _context(top: int, left: int, h: int, w: int, full_h: int, full_w: int) -> tuple[int, int, int, int]:
    """Context pixels (above, left, below, right) a tile borrows: TILE_CONTEXT where a
    neighbouring tile lies, none at the image border."""
    return (TILE_CONTEXT if top > 0 else 0, TILE_CONTEXT if left > 0 else 0,
            TILE_CONTEXT if top + h < full_h else 0, TILE_CONTEXT if left + w < full_w else 0)


def _padded(n: int, stride: int) -> int:
    return -(-n // stride) * stride


def _side_rgb(side_info: Picture | None, height: int, width: int) -> np.ndarray:
    """The side image's RGB, which must have the coded image's size (the views of one camera rig)."""
    if side_info is None:
        raise SideInfoError("this file needs side information: pass --side-info IMAGE")
    if side_info.rgb.shape[:2] != (height, width):
        h, w = side_info.rgb.shape[:2]
        raise SideInfoError(f"side image is {w}x{h}, the coded image is {width}x{height}")
    return side_info.rgb


@_deterministic
def encode(picture: Picture, beta: float, model_name: str = zoo.DEFAULT_MODEL,
           device: str = "cpu", tile: int = DEFAULT_TILE,
           side_info: Picture | None = None) -> tuple[bytes, EncodeStats]:
    """Compress a picture into .fcx bytes at rate weight β.

    `side_info` is only for models that see it at the encoder (joint coding); a distributed
    model's encoder never sees it, and refusing it there keeps that promise checkable."""
    codec = LoadedCodec.get(model_name)
    model = codec.model
    config = model.config
    if not config.beta_min <= beta <= config.beta_max:
        raise CodecError(f"--beta {beta} is outside the model's range "
                         f"[{config.beta_min}, {config.beta_max}]")
    height, width = picture.rgb.shape[:2]
    fcx.check_dimensions(height, width)
    if tile <= 0 or tile % fcx.TILE_MULTIPLE or tile > 0xFFFF:
        raise CodecError(f"tile side {tile} must be a positive multiple of {fcx.TILE_MULTIPLE} below 65536")
    if -(-height // tile) * -(-width // tile) > fcx.MAX_TILES:
        raise CodecError(f"tile side {tile} gives more than {fcx.MAX_TILES} tiles for {width}x{height}")
    side = None
    if model.side_info_at_encoder:
        side = _side_rgb(side_info, height, width)
    elif side_info is not None:
        raise SideInfoError(f"model {model_name!r} does not use side information at the encoder")
    flags = fcx.FLAG_SIDE_INFO if model.side_info_at_decoder else 0
    beta = codec.network_beta(beta)  # from here on, and in the header: the β the network runs at
    header = fcx.Header(model_name, codec.digest, height, width, picture.layout, beta, 0, tile, flags)
    streams: list[bytes] = []
    estimate = 0.0
    for top, left, h, w in _tiles(header):
        z_stream, y_stream, y_q, bits = _encode_tile(codec, picture.rgb, (top, left, h, w), beta,
                                                     device, side)
        streams += [z_stream, y_stream]
        header.params_crc = y_q.digest(header.params_crc)
        estimate += bits
    payload = 8 * sum(len(s) for s in streams)
    if picture.alpha is not None:
        streams.append(zlib.compress(np.ascontiguousarray(picture.alpha).tobytes(), 9))
    return fcx.pack(fcx.Container(header, streams)), EncodeStats(estimate, payload, beta)


def _image_tensor(rgb: np.ndarray, stride: int) -> torch.Tensor:
    """uint8 (H, W, 3) → float32 (1, 3, H', W') in [0, 1], replicate-padded on the bottom and
    right to multiples of `stride`."""
    height, width = rgb.shape[:2]
    return _region(rgb, 0, 0, _padded(height, stride), _padded(width, stride))


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


def _encode_tile(codec: LoadedCodec, rgb: np.ndarray, tile: tuple[int, int, int, int], beta: float,
                 device: str, side: np.ndarray | None = None):
    """One tile of the image: its window (the tile, padded to the stride, plus the context it
    borrows) → g_a → y cropped to the tile → z = h_a(y) → z stream, h_s(ẑ) → tables → y stream."""
    top, left, h, w = tile
    model = codec.transforms(device)
    stride, factor = model.stride, model.latent_stride
    above, before, below, after = _context(top, left, h, w, *rgb.shape[:2])
    window = (top - above, left - before, _padded(h, stride) + above + below,
              _padded(w, stride) + before + after)
    beta_t = torch.tensor([beta], device=device)
    x = _region(rgb, *window).to(device)
    if side is None:
        y, _ = model.analysis(x, beta_t)
    else:
        y, _ = model.analysis(x, beta_t, _region(side, *window).to(device))
    y = y[..., above // factor:(window[2] - below) // factor, before // factor:(window[3] - after) // factor]
    z = model.hyper_analysis(y, beta_t)
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
    side = _side_rgb(side_info, header.height, header.width) if header.needs_side_info else None
    try:
        codec = LoadedCodec.get(header.model)
    except zoo.WeightsError as exc:
        raise CodecError(f"cannot decode: {exc}") from None
    if header.weights_digest != codec.digest:
        raise CodecError(f"file was made with other weights for model {header.model!r} "
                         f"({header.weights_digest.hex()[:12]}…, installed {codec.digest.hex()[:12]}…)")
    if header.needs_side_info != codec.model.side_info_at_decoder:
        raise fcx.FormatError(f"side-information flag does not match model {header.model!r}")
    rows, cols = header.tile_grid
    has_alpha = header.layout in (fcx.LAYOUT_RGBA, fcx.LAYOUT_GRAY_ALPHA)
    expected_streams = 2 * rows * cols + has_alpha
    if len(container.streams) != expected_streams:
        raise fcx.FormatError(f"expected {expected_streams} streams, found {len(container.streams)}")

    # Entropy decoding of every tile first: ŷ of all tiles, and the verdict on the tables.
    latents: dict[tuple[int, int], torch.Tensor] = {}
    crc = 0
    broken: fcx.FormatError | None = None
    for index, (top, left, h, w) in enumerate(_tiles(header)):
        z_stream, y_stream = container.streams[2 * index:2 * index + 2]
        y_params, y_q = _tile_tables(codec, z_stream, h, w, header.beta)
        crc = y_q.digest(crc)
        if broken is None:
            try:
                latents[top, left] = _decode_latents(y_stream, y_params, y_q)
            except fcx.FormatError as exc:
                # Keep chaining the parameter CRC: wrong tables also break the range decoder,
                # and then the right diagnosis is the desync, not a corrupt stream.
                broken = exc
    # Checked before any synthesis: a desync yields an error, never an image of garbage.
    if crc != header.params_crc:
        raise entropy.DesyncError("probability tables differ from the encoder's (parameter CRC "
                                  "mismatch): refusing to decode")
    if broken is not None:
        raise broken
    rgb = np.empty((header.height, header.width, 3), dtype=np.uint8)
    for top, left, h, w in _tiles(header):
        rgb[top:top + h, left:left + w] = _synthesize_tile(codec, latents, header, (top, left, h, w),
                                                           device, side)
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


def _decode_latents(y_stream: bytes, y_params: mixture.MixtureParams,
                    y_q: entropy.QuantizedMixture) -> torch.Tensor:
    """The second half of the entropy decoding: y stream → ŷ of one tile, (1, C, h', w')."""
    return torch.from_numpy(_decode_stream(y_stream, y_q)).float().view(1, *y_params.means.shape[1:])


def _synthesize_tile(codec: LoadedCodec, latents: dict, header: fcx.Header,
                     tile: tuple[int, int, int, int], device: str, side: np.ndarray | None):
    """ŷ of the tile and the context it borrows from its neighbours' ŷ → synthesis (with the side
    view, if any) → the tile's RGB (h, w, 3) uint8. The mirror of `_encode_tile`'s window."""
    top, left, h, w = tile
    model = codec.transforms(device)
    stride, factor = model.stride, model.latent_stride
    above, before, below, after = _context(top, left, h, w, header.height, header.width)
    r0, c0 = (top - above) // factor, (left - before) // factor
    r1 = (top + _padded(h, stride) + below) // factor
    c1 = (left + _padded(w, stride) + after) // factor
    y_hat = torch.zeros(1, next(iter(latents.values())).shape[1], r1 - r0, c1 - c0)
    neighbours = [(top + dt * header.tile, left + dl * header.tile)
                  for dt in (-1, 0, 1) for dl in (-1, 0, 1)]
    for t, l in (key for key in neighbours if key in latents):
        # copy the overlap of this (neighbouring) tile's ŷ with the window
        block, bt, bl = latents[t, l], t // factor, l // factor
        rows = slice(max(r0, bt), min(r1, bt + block.shape[2]))
        cols = slice(max(c0, bl), min(c1, bl + block.shape[3]))
        if rows.start < rows.stop and cols.start < cols.stop:
            y_hat[..., rows.start - r0:rows.stop - r0, cols.start - c0:cols.stop - c0] = \
                block[..., rows.start - bt:rows.stop - bt, cols.start - bl:cols.stop - bl]

    beta32 = torch.tensor([header.beta], dtype=torch.float64).float().to(device)
    if side is None:
        x_hat = model.synthesis(y_hat.to(device), beta32).cpu()
    else:
        window = _region(side, r0 * factor, c0 * factor, (r1 - r0) * factor, (c1 - c0) * factor)
        x_hat = model.synthesis(y_hat.to(device), beta32, window.to(device)).cpu()
    x_hat = x_hat[0, :, above:above + h, before:before + w].clamp(0, 1)  # NaN from a forged stream also ends up in [0, 1]
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
