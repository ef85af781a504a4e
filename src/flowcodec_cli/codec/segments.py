"""Decoding one range-coded stream in segments whose tables depend on the segments before it:
the channel slices of a context model (pipeline.py) and the stages of the VQ-VAE (indices.py).
One loop for both, because both must fail the same way.

Why the failure rule: a segment decoded under wrong tables is garbage, and so are the tables of
every segment after it. The encoder chains a digest of every segment's tables into the header's
params CRC; the decoder chains its own, and the pipeline compares the two before any synthesis.
So a failing segment stops the decoding but not the table building: the remaining segments keep
the caller's zeros, their tables are built from them and chained all the same. If the CRC then
matches, the tables were right and the stream is corrupt (exit 4); if not, the tables differ
(exit 8, the desync), which is the cause to report.
"""

from __future__ import annotations

from typing import Callable

import numpy as np

from flowcodec_cli.codec.entropy import StreamDecoder
from flowcodec_cli.errors import CorruptStream


def decode_segments(data: bytes | None, count: int, tables_for: Callable[[int], object],
                    store: Callable[[int, np.ndarray], None],
                    crc: int) -> tuple[int, CorruptStream | None]:
    """Decode `count` segments of the stream `data`: segment k under `tables_for(k)` (snapped
    mixtures or categorical tables, which the caller builds from what `store(j, values)` received
    for j < k), each table's digest chained into `crc`. Returns (crc, the stream's error or None).
    `data` None builds and chains the tables alone (a tile after a failed one)."""
    error, stream = None, None
    try:
        stream = StreamDecoder(data) if data is not None else None
    except CorruptStream as exc:
        error = exc
    for index in range(count):
        tables = tables_for(index)
        crc = tables.digest(crc)
        if stream is not None and error is None:
            try:
                store(index, stream.decode(tables))
            except CorruptStream as exc:
                error = exc
    if stream is not None and error is None:
        try:
            stream.finish()
        except CorruptStream as exc:
            error = exc
    return crc, error
