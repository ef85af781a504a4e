"""The VQ-VAE's tiles in `.fcx` streams (models/vqvae.py): its code indices, stage by stage, under
categorical tables from its prior. The pipeline's other half is the mixture models' z and y.

    encode: tile window → g_a → y (the tile's part) → residual VQ, n stages → i₁ … i_n, each h×w
            stage k: q_<k = c₁[i₁] + … + c_{k−1}[i_{k−1}] → prior → logits → tables → segment k
    decode: stage k: q_<k from the stages decoded → prior → the same tables → segment k → i_k
            q_n = c₁[i₁] + … + c_n[i_n] → the pipeline's synthesis (with its neighbours' q)

- **One stream per tile**, one segment per stage in stage order; a segment holds the stage's h·w
  indices in raster order, index i under row i of its tables (docs/format.md §5). Stage k's
  tables depend on the tile's stages before k only, so a stage is one vectorized call and tiles
  are self-contained, as the mixture models' streams are.
- **Determinism**: the prior and the contexts q_<k run in float64 on the CPU (`codec.tables`,
  the model's `for_coding` copy) and the logits become integer tables in categorical.py; every
  table's digest is chained into the header's params CRC, checked before any synthesis.
- **The stage count** n is `stages_for_beta` of the header's β, which the encoder set to the
  middle of n's β range (`VQVAECodec.network_beta`): the header says n without a field of its own.
- **What the synthesis gets**: q_n summed in float32 from the model's codebooks, exactly what the
  model's own `synthesis(dequantize(indices))` sees.
"""

from __future__ import annotations

import torch

from flowcodec_cli.codec import categorical, entropy, segments
from flowcodec_cli.codec.tiles import Box, padded


def stage_count(codec, beta: float) -> int:
    """The stages a file at the header's β sends."""
    return int(codec.model.stages_for_beta(beta))


def encode_tile(codec, model, window, header, objective) -> tuple[list[bytes], int, float]:
    """A tile's analysed window (refine.TileWindow, from `model` on any device) → its index
    stream, the params CRC continued over its tables, and the prior's bits of the indices.
    `objective` is unused: the VQ-VAE is refused effort > 0 (refine.check_supported)."""
    stages = stage_count(codec, header.beta)
    indices = model.quantize(window.tile_latents(window.y), stages).cpu()   # (1, n, h, w)
    stream, crc, bits = entropy.StreamEncoder(), header.params_crc, 0.0
    for stage in range(stages):
        logits = _logits(codec, indices, stage)
        tables = categorical.tables(logits.numpy())
        crc = tables.digest(crc)
        symbols = indices[0, stage].flatten()
        stream.encode(symbols.numpy(), tables)
        bits += categorical.bits(logits, symbols)
    return [stream.bytes()], crc, bits


def decode_tile(codec, streams: list[bytes], box: Box, header, crc: int,
                broken: bool) -> tuple[torch.Tensor | None, int, entropy.CorruptStream | None]:
    """The mirror of `encode_tile`: (q_n (1, D, h, w) float32 or None if the stream failed, the
    CRC continued, the stream's error). Tiles do not depend on each other, so a tile after a
    failed one (`broken`) is decoded all the same: its tables need its own indices."""
    stride, factor = codec.model.stride, codec.model.latent_stride
    shape = (padded(box.height, stride) // factor, padded(box.width, stride) // factor)
    indices, crc, error = decode_indices(codec, streams[0], stage_count(codec, header.beta),
                                         shape, crc)
    return (None if error else _latents(codec, indices)), crc, error


def decode_indices(codec, stream: bytes, stages: int, shape: tuple[int, int],
                   crc: int) -> tuple[torch.Tensor, int, entropy.CorruptStream | None]:
    """A tile's index stream → its indices (1, stages, h, w) (zeros from a failed stage on),
    the CRC continued over every stage's tables, and the stream's error (segments.py)."""
    indices = torch.zeros(1, stages, *shape, dtype=torch.long)

    def tables_for(stage: int) -> categorical.CategoricalTables:
        return categorical.tables(_logits(codec, indices, stage).numpy())

    def store(stage: int, values) -> None:
        indices[0, stage] = torch.from_numpy(values).view(shape)

    crc, error = segments.decode_segments(stream, stages, tables_for, store, crc)
    return indices, crc, error


@torch.no_grad()
def _logits(codec, indices: torch.Tensor, stage: int) -> torch.Tensor:
    """Float64 logits (h·w, K) of `stage` from the float64 prior, given the stages before it."""
    coding = codec.tables
    logits = coding.prior_logits(stage, coding.dequantize(indices[:, :stage]))   # (1, K, h, w)
    return logits[0].flatten(1).t().contiguous()


@torch.no_grad()
def _latents(codec, indices: torch.Tensor) -> torch.Tensor:
    """q_n (1, D, h, w) float32 from the float32 codebooks: the input of the synthesis."""
    return codec.model.dequantize(indices).float()
