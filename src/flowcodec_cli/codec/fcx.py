"""The `.fcx` container: the only module that knows the byte layout (see docs/format.md).

Pure Python, no torch: `flowcodec info` and the fuzzers parse headers without loading a model.
Every multi-byte integer is little-endian. A CRC32 over everything before it closes the file,
so any corruption or truncation is detected before a single symbol is decoded.

A file's version is the lowest that can express it: version 2 adds the metadata block (ICC, EXIF,
XMP), so a file without metadata is written as version 1, byte for byte what earlier builds wrote
and still read. Every valid file has exactly one encoding: `pack(unpack(data)) == data`.
"""

from __future__ import annotations

import struct
import zlib
from dataclasses import dataclass, field

from flowcodec_cli.errors import FormatError

MAGIC = b"\x89FCX\r\n\x1a\n"   # PNG-style: catches text-mode mangling and 7-bit transports
VERSION = 2                    # the newest version this build reads and writes
VERSIONS = (1, 2)              # the versions it reads

FLAG_SIDE_INFO = 0x01          # decoding needs a side-information image
FLAG_METADATA = 0x02           # version 2: a metadata block follows the stream count
KNOWN_FLAGS = FLAG_SIDE_INFO   # the flags a Header carries; FLAG_METADATA is the layout's own:
                               # pack sets it when Header.metadata is not empty
_VERSION_FLAGS = {1: FLAG_SIDE_INFO, 2: FLAG_SIDE_INFO | FLAG_METADATA}   # defined per version

METADATA_KINDS = {1: "icc", 2: "exif", 3: "xmp"}   # kind byte → name (picture.Metadata's fields)
MAX_METADATA_BYTES = 1 << 24   # 16 MiB per entry: refused before any allocation

LAYOUT_RGB, LAYOUT_GRAY, LAYOUT_RGBA, LAYOUT_GRAY_ALPHA = 0, 1, 2, 3
LAYOUT_NAMES = {LAYOUT_RGB: "RGB", LAYOUT_GRAY: "L", LAYOUT_RGBA: "RGBA", LAYOUT_GRAY_ALPHA: "LA"}

MAX_DIMENSION = 1 << 16        # per side
MAX_PIXELS = 1 << 28           # 268 MP: refused before any allocation (cf. Pillow's bomb limit)
MAX_TILES = 4096               # tiles per image (2 streams each)
MAX_STREAMS = 2 * MAX_TILES + 1
TILE_MULTIPLE = 64             # tile sides are multiples of the model stride
DIGEST_BYTES = 16

_FIXED = struct.Struct("<8sBB")          # magic, version, flags
_BODY = struct.Struct("<16sIIBHdIH")     # digest, height, width, layout, tile, beta, params crc, streams
_LENGTH = struct.Struct("<I")
_ENTRY = struct.Struct("<BI")            # metadata kind, length
_KIND_CODES = {name: kind for kind, name in METADATA_KINDS.items()}


@dataclass
class Header:
    model: str
    weights_digest: bytes
    height: int
    width: int
    layout: int
    beta: float
    params_crc: int
    tile: int = 1024
    flags: int = 0
    metadata: dict[str, bytes] = field(default_factory=dict)   # kind name → bytes, none empty

    @property
    def version(self) -> int:
        """The version this header is written as: the lowest that can express it."""
        return 2 if self.metadata else 1

    @property
    def tile_grid(self) -> tuple[int, int]:
        """(rows, columns) of tiles covering the image."""
        return -(-self.height // self.tile), -(-self.width // self.tile)

    @property
    def has_alpha(self) -> bool:
        """The last stream is the lossless alpha plane."""
        return self.layout in (LAYOUT_RGBA, LAYOUT_GRAY_ALPHA)

    @property
    def needs_side_info(self) -> bool:
        return bool(self.flags & FLAG_SIDE_INFO)

    def to_dict(self) -> dict:
        return {
            "format_version": self.version,
            "model": self.model,
            "weights_digest": self.weights_digest.hex(),
            "height": self.height,
            "width": self.width,
            "layout": LAYOUT_NAMES[self.layout],
            "beta": self.beta,
            "tile": self.tile,
            "params_crc32": f"{self.params_crc:08x}",
            "side_info_required": self.needs_side_info,
            "metadata": {name: len(self.metadata[name]) for name in _KIND_CODES
                         if name in self.metadata},   # kind → size in bytes
        }


@dataclass
class Container:
    header: Header
    streams: list[bytes] = field(default_factory=list)


def check_dimensions(height: int, width: int) -> None:
    """Refuse sizes the codec will not allocate for (raised before any big allocation)."""
    if height < 1 or width < 1:
        raise FormatError(f"image size {width}x{height} is empty")
    if height > MAX_DIMENSION or width > MAX_DIMENSION or height * width > MAX_PIXELS:
        raise FormatError(
            f"image size {width}x{height} exceeds the limit "
            f"({MAX_DIMENSION} per side, {MAX_PIXELS} pixels)")


def pack(container: Container) -> bytes:
    h = container.header
    model = h.model.encode("ascii")
    if not 0 < len(model) < 256:
        raise ValueError("model id must be 1..255 ASCII bytes")
    if len(h.weights_digest) != DIGEST_BYTES:
        raise ValueError("weights digest must be 16 bytes")
    if len(container.streams) > MAX_STREAMS:
        raise ValueError("too many streams")
    if h.layout not in LAYOUT_NAMES or h.flags & ~KNOWN_FLAGS:
        raise ValueError("unknown layout or flags")
    if not (0 < h.beta < float("inf")):
        raise ValueError(f"invalid beta {h.beta!r}")
    if h.tile == 0 or h.tile % TILE_MULTIPLE or h.tile > 0xFFFF:
        raise ValueError(f"invalid tile size {h.tile}")
    check_dimensions(h.height, h.width)
    flags = h.flags | (FLAG_METADATA if h.metadata else 0)
    parts = [
        _FIXED.pack(MAGIC, h.version, flags),
        bytes([len(model)]), model,
        _BODY.pack(h.weights_digest, h.height, h.width, h.layout, h.tile, h.beta, h.params_crc,
                   len(container.streams)),
        _pack_metadata(h.metadata),
    ]
    for stream in container.streams:
        parts += [_LENGTH.pack(len(stream)), stream]
    body = b"".join(parts)
    return body + _LENGTH.pack(zlib.crc32(body))


def _pack_metadata(metadata: dict[str, bytes]) -> bytes:
    """The metadata block (version 2): an entry count, then each entry as kind, length, bytes,
    in ascending kind order, so that equal metadata always gives equal bytes. b"" if none."""
    if not metadata:
        return b""
    unknown = set(metadata) - set(_KIND_CODES)
    if unknown:
        raise ValueError(f"unknown metadata kinds {sorted(unknown)}")
    parts = [bytes([len(metadata)])]
    for kind, name in sorted(METADATA_KINDS.items()):
        value = metadata.get(name)
        if value is None:
            continue
        if not 0 < len(value) <= MAX_METADATA_BYTES:
            raise ValueError(f"{name} metadata must be 1..{MAX_METADATA_BYTES} bytes")
        parts += [_ENTRY.pack(kind, len(value)), bytes(value)]
    return b"".join(parts)


def _unpack_metadata(take) -> dict[str, bytes]:
    """The mirror of `_pack_metadata`, through the parser's bounded `take`: each length is
    checked against MAX_METADATA_BYTES before anything is sliced, and every rule that makes the
    encoding unique (1 to 3 entries, kinds known, ascending, none empty) is enforced."""
    count = take(1)[0]
    if not 1 <= count <= len(METADATA_KINDS):
        raise FormatError(f"metadata block with {count} entries (1 to {len(METADATA_KINDS)})")
    metadata, last = {}, 0
    for _ in range(count):
        kind, length = _ENTRY.unpack(take(_ENTRY.size))
        if kind not in METADATA_KINDS:
            raise FormatError(f"unknown metadata kind {kind}")
        if kind <= last:
            raise FormatError("metadata entries repeated or out of order")
        if not 0 < length <= MAX_METADATA_BYTES:
            raise FormatError(f"{METADATA_KINDS[kind]} metadata of {length} bytes "
                              f"(1 to {MAX_METADATA_BYTES})")
        metadata[METADATA_KINDS[kind]] = bytes(take(length))
        last = kind
    return metadata


def unpack(data: bytes) -> Container:
    """Parse and verify a whole file. Raises FormatError with a one-line reason."""
    if len(data) < len(MAGIC) or data[:len(MAGIC)] != MAGIC:
        raise FormatError("not an .fcx file (bad magic)")
    if len(data) < _FIXED.size + 1 + 4:
        raise FormatError("truncated .fcx file")
    _, version, flags = _FIXED.unpack_from(data, 0)
    if version not in VERSIONS:
        raise FormatError(f"unsupported .fcx version {version} (this build reads versions "
                          f"{', '.join(map(str, VERSIONS))}: a newer flowcodec wrote it?)")
    (stored_crc,) = _LENGTH.unpack_from(data, len(data) - 4)
    if zlib.crc32(data[:-4]) != stored_crc:
        raise FormatError("corrupt or truncated .fcx file (CRC mismatch)")
    if flags & ~_VERSION_FLAGS[version]:
        raise FormatError(f"unknown flags 0x{flags:02x} for version {version}")
    if version == 2 and not flags & FLAG_METADATA:  # it would have been written as version 1
        raise FormatError("version 2 without the metadata flag")
    pos = _FIXED.size
    end = len(data) - 4

    def take(n: int) -> bytes:
        nonlocal pos
        if n < 0 or pos + n > end:
            raise FormatError("truncated .fcx file")
        chunk = data[pos:pos + n]
        pos += n
        return chunk

    model_len = take(1)[0]
    try:
        model = take(model_len).decode("ascii")
    except UnicodeDecodeError:
        raise FormatError("model id is not ASCII") from None
    if not model:
        raise FormatError("empty model id")
    digest, height, width, layout, tile, beta, params_crc, count = _BODY.unpack(take(_BODY.size))
    if layout not in LAYOUT_NAMES:
        raise FormatError(f"unknown channel layout {layout}")
    if not (beta > 0 and beta < float("inf")):
        raise FormatError(f"invalid beta {beta!r}")
    if count > MAX_STREAMS:
        raise FormatError(f"too many streams ({count})")
    if tile == 0 or tile % TILE_MULTIPLE:
        raise FormatError(f"invalid tile size {tile}")
    check_dimensions(height, width)
    metadata = _unpack_metadata(take) if flags & FLAG_METADATA else {}
    streams = [take(_LENGTH.unpack(take(4))[0]) for _ in range(count)]
    if pos != end:
        raise FormatError("trailing bytes after the last stream")
    header = Header(model, digest, height, width, layout, beta, params_crc, tile,
                    flags & ~FLAG_METADATA, metadata)
    return Container(header, streams)


def describe(data: bytes, container: Container | None = None) -> dict:
    """What a file says about itself, as `flowcodec info --json` prints it and
    `flowcodec_cli.info` returns it: the header's fields plus what only the whole file tells (its
    size, the stream sizes, the bpp). `container`: `data` already unpacked, if it is."""
    container = unpack(data) if container is None else container
    h = container.header
    return {"bytes": len(data), **h.to_dict(), "streams": [len(s) for s in container.streams],
            "bpp": 8 * len(data) / (h.height * h.width)}
