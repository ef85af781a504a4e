"""Write the hand-made regression inputs of tests/fuzz/crashers/ (see the README there).

    .venv/bin/python tests/fuzz/make_crashers.py

The `decoder-*` files are instructions for `harness.mutate_valid_file` and do not depend on the
weights. The `fcx-*` files are damaged copies of a golden file, so they name the weights it was
made with: rerun this script after tests/golden/make_golden.py (the replay test fails with
"other weights" until then). Crashers found by the fuzzer are written by run_fuzz.py instead.
"""

from __future__ import annotations

import struct
from pathlib import Path

from flowcodec_cli.codec import fcx

HERE = Path(__file__).resolve().parent
CRASHERS = HERE / "crashers"
GOLDEN = HERE.parent / "golden" / "parrots_b0.02.fcx"

# mutate_valid_file's opcodes (harness.py): 5 flips bytes of a stream, 6 cuts a stream.
FLIP, CUT = 5, 6
Y_STREAM = 1  # the seed file is one tile: streams z, y, alpha

DECODER_INSTRUCTIONS = {
    # no instructions at all: op 0 with zero bytes declares a 1×1 image over a 24×40 file's streams
    "decoder-1x1-header": b"",
    # one flip (xor 0xFF) of the y stream's byte 100, under the re-sealed CRC
    "decoder-y-byte-flipped": bytes([FLIP, Y_STREAM, 0]) + struct.pack("<I", 100) + bytes([0xFE]),
    # the y stream cut to its first two 32-bit words
    "decoder-y-cut-to-two-words": bytes([CUT, Y_STREAM]) + struct.pack("<I", 8),
    # the y stream emptied
    "decoder-y-emptied": bytes([CUT, Y_STREAM]) + struct.pack("<I", 0),
}


def _damaged_y(data: bytes, damage) -> bytes:
    """The golden file with its (single tile's) y stream damaged and the file CRC made valid."""
    container = fcx.unpack(data)
    container.streams[1] = damage(container.streams[1])
    return fcx.pack(container)


def main() -> None:
    CRASHERS.mkdir(exist_ok=True)
    for name, data in DECODER_INSTRUCTIONS.items():
        (CRASHERS / name).write_bytes(data)
    golden = GOLDEN.read_bytes()
    files = {
        "fcx-parrots-y-last-word-dropped.fcx": _damaged_y(golden, lambda s: s[:-4]),
        "fcx-parrots-y-word-appended.fcx": _damaged_y(golden, lambda s: s + b"\x12\x34\x56\x78"),
        "parser-parrots-truncated": golden[:len(golden) // 2],
    }
    for name, data in files.items():
        (CRASHERS / name).write_bytes(data)


if __name__ == "__main__":
    main()
