"""encode(picture) -> .fcx bytes and decode(.fcx bytes) -> picture, as mirror images.

    encode: image → tensor → analysis → y → round → ŷ, ẑ → z tables → z stream
                                        ẑ → h_s → y tables → y stream → container
    decode: container → z stream → ẑ → h_s → y tables → y stream → ŷ → synthesis → image

That is the mixture models' tile (two streams). The VQ-VAE codes its tiles with indices.py (one
stream of code indices per tile); the rest is shared: header, tiles and their windows, side
view, the params CRC, the synthesis with the neighbours' latents, alpha and container.

Every tile is entropy-decoded, and the tables checked against the header's parameter CRC, before
any synthesis runs: a decoder that would rebuild other tables stops with DesyncError instead of
producing garbage (`loaded.py` says why the tables are the same everywhere).

All coding runs with oneDNN (mkldnn) switched off: its convolutions partition work by thread
count and round differently with 1 and 2 threads (measured: 44 pixel values of a Kodak image
changed by one level), while ATen's im2col + GEMM path gives identical results for any thread
count, and is no slower on this CPU, once MKL's GEMMs are pinned to one kernel branch in strict
mode (blas.py; `deterministic` warns once where they are not).
"""

from __future__ import annotations

import functools
import threading
import zlib
from dataclasses import dataclass
from typing import Callable, NamedTuple

import numpy as np
import torch

from flowcodec_cli import zoo
from flowcodec_cli.codec import blas, entropy, fcx, indices, rdoq, refine, segments
from flowcodec_cli.codec.loaded import LoadedCodec
from flowcodec_cli.codec.tiles import (DEFAULT_TILE, Box, region, tile_grid_fits, tiles, to_rgb,
                                       window)
from flowcodec_cli.errors import CodecError, SideInfoError
from flowcodec_cli.codec.picture import Metadata, Picture

__all__ = ["CodecError", "EncodeStats", "LoadedCodec", "SideInfoError", "decode", "encode",
           "DEFAULT_TILE"]


@dataclass
class EncodeStats:
    estimated_bits: float   # the model's information content of the coded symbols
    payload_bits: int       # the range-coded streams as written (without container overhead)
    network_beta: float     # the β the network ran at (the header's β), see operating_points.py
    effort: int = 0         # the effort the encoder ran at (≥ the model's min_effort)


class _OneDnnOff:
    """oneDNN switched off while any thread codes (see the module docstring). The switch is one
    process-wide flag, so torch's per-call context (`torch.backends.mkldnn.flags`) is not
    thread-safe: of two overlapping calls, the first to finish turns oneDNN back on under the
    other, and the last restores "off" for good. Counted instead: the first caller in turns it
    off, the last one out restores what it was."""

    def __init__(self):
        self._lock = threading.Lock()
        self._users = 0
        self._saved: tuple | None = None

    def __enter__(self):
        with self._lock:
            if self._users == 0:
                self._saved = torch.backends.mkldnn.set_flags(False, False, None)
            self._users += 1

    def __exit__(self, *exc_info):
        with self._lock:
            self._users -= 1
            if self._users == 0:
                torch.backends.mkldnn.set_flags(*self._saved)


_ONEDNN_OFF = _OneDnnOff()


def deterministic(fn):
    """Run `fn` without gradients (a per-thread mode), without oneDNN (`_OneDnnOff`) and with
    MKL's GEMMs pinned (`blas.check`)."""
    @functools.wraps(fn)
    def wrapper(*args, **kwargs):
        blas.check()
        with torch.no_grad(), _ONEDNN_OFF:
            return fn(*args, **kwargs)
    return wrapper


@deterministic
def encode(picture: Picture, beta: float, model_name: str = zoo.DEFAULT_MODEL, device: str = "cpu",
           tile: int = DEFAULT_TILE, side_info: Picture | None = None,
           effort: int = 0) -> tuple[bytes, EncodeStats]:
    """Compress a picture into .fcx bytes at rate weight β.

    `side_info` is only for models that see it at the encoder (joint coding); a distributed
    model's encoder never sees it, and refusing it there keeps that promise checkable.
    `effort` > 0 refines each tile's latents for this image (`refine.py`): slower, smaller,
    decoded by the same decoder."""
    codec = LoadedCodec.get(model_name)
    effort = max(effort, codec.model.min_effort)  # a joint encoder uses its side view by refining
    refine.check_supported(codec.model, effort)
    header, side = _encode_header(codec, picture, beta, tile, side_info)
    model, coder = codec.transforms(device), _coder(codec)
    objective = _Objective(beta, refine.STEPS[effort])
    streams, estimate = [], 0.0
    for box in tiles(header):
        window = _analysed(model, picture.rgb, box, header.beta, device, side)
        tile_streams, header.params_crc, bits = coder.encode(codec, model, window, header,
                                                             objective)
        streams += tile_streams
        estimate += bits
    payload = 8 * sum(len(s) for s in streams)
    if picture.alpha is not None:
        streams.append(zlib.compress(np.ascontiguousarray(picture.alpha).tobytes(), 9))
    return fcx.pack(fcx.Container(header, streams)), EncodeStats(estimate, payload, header.beta,
                                                                 effort)


@deterministic
def decode(data: bytes, side_info: Picture | None = None, device: str = "cpu") -> Picture:
    """Decompress .fcx bytes. Raises fcx.FormatError, CodecError or entropy.DesyncError.

    `side_info` is ignored by models that do not use it (the header's flag says which do)."""
    container = fcx.unpack(data)
    header = container.header
    codec, side, coder = _decode_setup(container, side_info)
    latents, crc, broken = {}, 0, None
    for index, box in enumerate(tiles(header)):
        tile_streams = container.streams[coder.streams * index:coder.streams * (index + 1)]
        tile_latents, crc, error = coder.decode(codec, tile_streams, box, header, crc,
                                                broken is not None)
        broken = broken or (_corrupt(error) if error else None)
        if not broken:
            latents[box.top, box.left] = tile_latents
    if crc != header.params_crc:  # before any synthesis: a desync is an error, never garbage
        raise entropy.DesyncError("probability tables differ from the encoder's (parameter CRC "
                                  "mismatch): refusing to decode")
    if broken is not None:
        raise broken
    rgb = np.empty((header.height, header.width, 3), dtype=np.uint8)
    for box in tiles(header):
        rgb[box.top:box.top + box.height, box.left:box.left + box.width] = \
            _synthesize_tile(codec, latents, header, box, device, side)
    alpha = _decode_alpha(container.streams[-1], header) if header.has_alpha else None
    metadata = Metadata(**header.metadata) if header.metadata else None
    return Picture(rgb, alpha, header.layout, metadata)


def _encode_header(codec: LoadedCodec, picture: Picture, beta: float, tile: int,
                   side_info: Picture | None) -> tuple[fcx.Header, np.ndarray | None]:
    """Check the request and make the header (with the network's β); the side view if used."""
    config = codec.model.config
    if not config.beta_min <= beta <= config.beta_max:
        raise CodecError(f"--beta {beta} is outside the model's range "
                         f"[{config.beta_min}, {config.beta_max}]")
    height, width = picture.rgb.shape[:2]
    fcx.check_dimensions(height, width)
    problem = tile_grid_fits(height, width, tile)
    if problem:
        raise CodecError(problem)
    side = None
    if codec.model.side_info_at_encoder:
        side = _side_rgb(side_info, height, width)
    elif side_info is not None:
        raise SideInfoError(f"model {codec.name!r} does not use side information at the encoder")
    flags = fcx.FLAG_SIDE_INFO if codec.model.side_info_at_decoder else 0
    network_beta = codec.network_beta(beta)  # the header carries the β the network runs at
    metadata = picture.metadata.present() if picture.metadata else {}  # carried, never read
    header = fcx.Header(codec.name, codec.digest, height, width, picture.layout, network_beta, 0,
                        tile, flags, metadata)
    return header, side


class _Objective(NamedTuple):
    """What the encoder's refinement minimizes (`refine.py`): D + β·R at the user's β (not the
    network's, which the header carries), for `steps` gradient steps per tile (none: the
    analysis, rounded, as always)."""
    beta: float
    steps: int


def _analysed(model, rgb: np.ndarray, box: Box, beta: float, device: str,
              side: np.ndarray | None) -> refine.TileWindow:
    """A tile's window (the tile padded to the stride, plus the context it borrows) and its
    analysis, with where the tile's own latents and pixels lie in them."""
    factor = model.latent_stride
    win, (above, before, below, after) = window(box, *rgb.shape[:2], model.stride)
    beta_t = torch.tensor([beta], device=device)
    x = region(rgb, win).to(device)
    side_x = None if side is None else region(side, win).to(device)
    y = model.analysis(x, beta_t) if side is None else model.analysis(x, beta_t, side_x)
    rows = slice(above // factor, (win.height - below) // factor)
    cols = slice(before // factor, (win.width - after) // factor)
    return refine.TileWindow(x, y, (rows, cols), (slice(above, above + box.height),
                                                  slice(before, before + box.width)), side_x)


def _encode_mixture_tile(codec: LoadedCodec, model, tile: refine.TileWindow, header: fcx.Header,
                         objective: _Objective) -> tuple[list[bytes], int, float]:
    """A mixture model's tile: its latents, rounded against their tables (`rdoq.py`) and refined
    from there if asked (on the CPU, each (1, C, h, w)) → its z and y streams, the params CRC
    continued, the model's bits."""
    beta_t = torch.tensor([header.beta], device=tile.y.device)
    y = tile.tile_latents(tile.y)
    z_hat = torch.round(model.entropy_model.hyper_analysis(y, beta_t).cpu())
    rounding = rdoq.for_tile(model, y, beta_t, objective.beta)
    y_hat = torch.round(y.cpu())
    if objective.steps:  # refine from effort 0's integers, then code the winner as it is
        start = y_hat.clone()
        for _ in _segments(codec, start, z_hat, header.beta, rounding):
            pass  # each segment rounded in place as _encode_y would, without its coder tables
        y_hat, z_hat = refine.refine(model, tile, beta_t, objective.beta, objective.steps,
                                     start=(start, z_hat))
        y_hat, z_hat, rounding = y_hat.cpu(), z_hat.cpu(), None
    y_stream, crc, y_bits, _ = _encode_y(codec, y_hat, z_hat, header.beta, header.params_crc,
                                         rounding)
    z_stream = entropy.encode(_symbols(z_hat), codec.z_tables(z_hat.shape))
    return [z_stream, y_stream], crc, y_bits + codec.z_bits(z_hat)


def _decode_mixture_tile(codec: LoadedCodec, streams: list[bytes], box: Box, header: fcx.Header,
                         crc: int, broken: bool):
    """The mirror of `_encode_mixture_tile`: z stream → ẑ → h_s → the y stream's slices →
    (the latents the synthesis decodes or None, the CRC continued, the y stream's error). A z
    stream that does not decode stops at once (no table can be built without ẑ); after a failed
    tile (`broken`) only the y tables are built, for the CRC."""
    z_stream, y_stream = streams
    z_shape = codec.z_shape(box.height, box.width)
    z_hat = torch.from_numpy(_decode_stream(z_stream, codec.z_tables(z_shape))).view(z_shape)
    raw = codec.hyper_params(z_hat, header.beta)
    y_hat, crc, error = _decode_y(codec, None if broken else y_stream, raw, crc)
    return (None if broken or error else codec.refined(y_hat)), crc, error


def _encode_y(codec: LoadedCodec, y_hat: torch.Tensor, z_hat: torch.Tensor, beta: float,
              crc: int, rounding: rdoq.SliceRounding | None = None
              ) -> tuple[bytes, int, float, torch.Tensor]:
    """ŷ of a tile → its y stream, segment by segment (each segment's tables from ẑ and the
    segments before it); the parameter CRC chained over the segments' tables; the model's bits
    of ŷ; ŷ as coded. `rounding`: choose each segment's integers against its tables."""
    stream, bits = entropy.StreamEncoder(), 0.0
    y_hat = y_hat.clone()
    for segment, params in _segments(codec, y_hat, z_hat, beta, rounding):
        tables = codec.y_tables(params)
        crc = tables.digest(crc)
        values = segment.values(y_hat)
        stream.encode(_symbols(values), tables)
        bits += codec.y_bits(values, params)
    return stream.bytes(), crc, bits, y_hat


def _segments(codec: LoadedCodec, y_hat: torch.Tensor, z_hat: torch.Tensor, beta: float,
              rounding: rdoq.SliceRounding | None):
    """Each segment and its elements' mixtures in coding order, its integers in `y_hat` chosen
    by `rounding` first (in place) so that the next segment's mixtures see them."""
    of_tile = codec.segments(codec.hyper_params(z_hat, beta))
    for k in range(codec.segment_count):
        segment, params = of_tile(y_hat, k)
        if rounding is not None:
            segment.store(y_hat, rounding(segment, params))
        yield segment, params


def _decode_y(codec: LoadedCodec, y_stream: bytes | None, raw: torch.Tensor,
              crc: int) -> tuple[torch.Tensor, int, entropy.CorruptStream | None]:
    """The mirror of `_encode_y`: ŷ (float64, (1, C, h, w)), the chained CRC, and the stream's
    error, if any (`y_stream` None: only the tables, for the CRC). A segment that cannot be
    decoded leaves zeros, so the tables of a context model's later segments differ from the
    encoder's and the CRC reports the desync (segments.py)."""
    y_hat = torch.zeros(1, codec.model.config.latent_channels, *raw.shape[2:], dtype=torch.float64)
    of_tile, current = codec.segments(raw), {}

    def tables_for(k: int) -> entropy.QuantizedMixture:
        current["segment"], params = of_tile(y_hat, k)
        return codec.y_tables(params)

    def store(k: int, values: np.ndarray) -> None:
        current["segment"].store(y_hat, torch.from_numpy(values))

    crc, error = segments.decode_segments(y_stream, codec.segment_count, tables_for, store, crc)
    return y_hat, crc, error


def _decode_setup(container: fcx.Container, side_info: Picture | None):
    """The model the file names (its weights must be the installed ones), the side view, and
    how the model codes a tile."""
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
    coder = _coder(codec)
    rows, cols = header.tile_grid
    expected_streams = coder.streams * rows * cols + header.has_alpha
    if len(container.streams) != expected_streams:
        raise fcx.FormatError(f"expected {expected_streams} streams, found {len(container.streams)}")
    return codec, side, coder


def _synthesize_tile(codec: LoadedCodec, latents: dict[tuple[int, int], torch.Tensor], header: fcx.Header,
                     box: Box, device: str, side: np.ndarray | None) -> np.ndarray:
    """ŷ of the tile and the context it borrows from its neighbours' ŷ → synthesis (with the side
    view, if any) → the tile's RGB (h, w, 3) uint8. The mirror of `_analyse_tile`'s window."""
    model = codec.transforms(device)
    factor = model.latent_stride
    win, (above, before, _, _) = window(box, header.height, header.width, model.stride)
    y_hat = _gather_latents(latents, header, box, win, factor)
    beta32 = torch.tensor([header.beta], dtype=torch.float64).float().to(device)
    if side is None:
        x_hat = model.synthesis(y_hat.to(device), beta32).cpu()
    else:
        x_hat = model.synthesis(y_hat.to(device), beta32, region(side, win).to(device)).cpu()
    return to_rgb(x_hat[0, :, above:above + box.height, before:before + box.width])


def _gather_latents(latents: dict[tuple[int, int], torch.Tensor], header: fcx.Header, box: Box,
                    win: Box, factor: int) -> torch.Tensor:
    """ŷ over a tile's window (in pixels, multiples of `factor`), copied from the tile and the
    neighbours it borrows context from; zero beyond the image."""
    r0, c0 = win.top // factor, win.left // factor
    r1, c1 = r0 + win.height // factor, c0 + win.width // factor
    channels = next(iter(latents.values())).shape[1]
    y_hat = torch.zeros(1, channels, r1 - r0, c1 - c0)
    neighbours = [(box.top + dt * header.tile, box.left + dl * header.tile)
                  for dt in (-1, 0, 1) for dl in (-1, 0, 1)]
    for t, l in (key for key in neighbours if key in latents):
        block, bt, bl = latents[t, l], t // factor, l // factor
        rows = slice(max(r0, bt), min(r1, bt + block.shape[2]))
        cols = slice(max(c0, bl), min(c1, bl + block.shape[3]))
        if rows.start < rows.stop and cols.start < cols.stop:
            y_hat[..., rows.start - r0:rows.stop - r0, cols.start - c0:cols.stop - c0] = \
                block[..., rows.start - bt:rows.stop - bt, cols.start - bl:cols.stop - bl]
    return y_hat


def _side_rgb(side_info: Picture | None, height: int, width: int) -> np.ndarray:
    """The side image's RGB, which must have the coded image's size (the views of one camera rig)."""
    if side_info is None:
        raise SideInfoError("this file needs side information: pass --side-info IMAGE")
    if side_info.rgb.shape[:2] != (height, width):
        h, w = side_info.rgb.shape[:2]
        raise SideInfoError(f"side image is {w}x{h}, the coded image is {width}x{height}")
    return side_info.rgb


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


def _symbols(values: torch.Tensor) -> np.ndarray:
    """Rounded latents (1, C, H, W) → the int64 symbols of a stream, raster order per channel."""
    return values.flatten().long().numpy()


def _decode_stream(stream: bytes, q: entropy.QuantizedMixture) -> np.ndarray:
    try:
        return entropy.decode(stream, q)
    except entropy.CorruptStream as exc:
        raise _corrupt(exc) from None


def _corrupt(exc: entropy.CorruptStream) -> fcx.FormatError:
    """A stream that does not decode is a corrupt file (exit 4), with the reason."""
    return fcx.FormatError(f"entropy-coded stream is corrupt ({exc})")


class _TileCoder(NamedTuple):
    """How a kind of model codes one tile: its streams per tile, and the mirror pair that writes
    (codec, model, window, header, objective) → (streams, CRC, bits) and reads (codec, streams,
    box, header, CRC, broken) → (latents, CRC, error) them."""
    streams: int
    encode: Callable
    decode: Callable


_MIXTURE = _TileCoder(2, _encode_mixture_tile, _decode_mixture_tile)
_INDICES = _TileCoder(1, indices.encode_tile, indices.decode_tile)


def _coder(codec: LoadedCodec) -> _TileCoder:
    return _INDICES if codec.indexed else _MIXTURE
