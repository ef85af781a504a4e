"""Fuzz targets for the .fcx parser and the full decoder (run by atheris, replayed by pytest).

A target passes an input when it returns normally or raises one of the documented errors.
Anything else (another exception, a crash, a hang, unbounded memory) is a finding.
"""

from __future__ import annotations

import io
import struct

from flowcodec_cli import codec
from flowcodec_cli.codec import entropy
from flowcodec_cli.codec import fcx

DOCUMENTED_ERRORS = (fcx.FormatError, codec.CodecError, entropy.DesyncError)

# Largest image the decoder fuzzer lets a mutated header declare: big enough to exercise
# padding and odd sizes, small enough that 10,000 decodes finish in minutes.
FUZZ_MAX_SIDE = 200


def parse_target(data: bytes) -> None:
    """The parser alone, on raw bytes (almost always stopped by the magic or the CRC)."""
    try:
        fcx.unpack(data)
    except fcx.FormatError:
        pass


def parse_target_crc_valid(data: bytes) -> None:
    """The parser behind a valid CRC: the fuzzer's bytes + a correct trailing CRC32."""
    import zlib
    body = fcx.MAGIC + data
    parse_target(body + struct.pack("<I", zlib.crc32(body)))


def mutate_valid_file(seed_file: bytes, data: bytes) -> bytes | None:
    """Use the fuzzer's bytes as instructions to edit a valid file, then re-pack it with a valid
    CRC so that the decoder itself (not the checksum) meets the damage."""
    container = fcx.unpack(seed_file)
    h = container.header
    stream = io.BytesIO(data)

    def take(n: int) -> bytes:
        chunk = stream.read(n)
        return chunk + bytes(n - len(chunk))

    op = take(1)[0] % 8
    if op == 0:
        h.height = 1 + struct.unpack("<H", take(2))[0] % FUZZ_MAX_SIDE
        h.width = 1 + struct.unpack("<H", take(2))[0] % FUZZ_MAX_SIDE
    elif op == 1:
        h.beta = struct.unpack("<d", take(8))[0]
    elif op == 2:
        h.layout = take(1)[0] % 4
    elif op == 3:
        h.params_crc = struct.unpack("<I", take(4))[0]
    elif op == 4:
        h.flags = take(1)[0] & fcx.KNOWN_FLAGS
    index = take(1)[0] % max(1, len(container.streams))
    if op in (5, 7) and container.streams:
        body = bytearray(container.streams[index])
        for _ in range(1 + take(1)[0] % 8):
            pos = struct.unpack("<I", take(4))[0] % max(1, len(body))
            if body:
                body[pos] ^= 1 + take(1)[0] % 255
        container.streams[index] = bytes(body)
    if op in (6, 7) and container.streams:
        cut = struct.unpack("<I", take(4))[0] % (len(container.streams[index]) + 64)
        tail = stream.read()
        container.streams[index] = (container.streams[index] + tail)[:cut]
    try:
        return fcx.pack(container)
    except (ValueError, struct.error):
        return None  # not representable (e.g. beta NaN is refused by pack's checks)


def decode_target(seed_file: bytes, data: bytes) -> None:
    mutated = mutate_valid_file(seed_file, data)
    if mutated is None:
        return
    try:
        picture = codec.decode(mutated)
    except DOCUMENTED_ERRORS:
        return
    header = fcx.unpack(mutated).header
    assert picture.rgb.shape == (header.height, header.width, 3)


def seed_file() -> bytes:
    """A small valid file (RGBA, so the alpha path is fuzzed too) made with the shipped model."""
    import numpy as np

    from flowcodec_cli.files import images
    rng = np.random.default_rng(0)
    rgb = (rng.random((24, 40, 3)) * 255).astype(np.uint8)
    alpha = (rng.random((24, 40)) * 255).astype(np.uint8)
    data, _ = codec.encode(images.Picture(rgb, alpha, fcx.LAYOUT_RGBA), 0.01)
    return data
