"""The .fcx container (docs/format.md): exact bytes, round trips, and every way a file can be bad.

Pure Python and fast: no model is loaded. Offsets below are derived from the spec, not from
`fcx.py`, so a change of the byte layout makes these tests fail.
"""

from __future__ import annotations

import math
import struct
import zlib

import pytest

from flowcodec_cli.codec import fcx

DIGEST = bytes(range(16))


def make_header(**changes) -> fcx.Header:
    fields = dict(model="m1", weights_digest=DIGEST, height=3, width=5, layout=fcx.LAYOUT_RGBA,
                  beta=0.5, params_crc=0x12345678, tile=1024, flags=0)
    fields.update(changes)
    return fcx.Header(**fields)


STREAMS = [b"abc", b"", b"\xff"]

# The same file written out by hand from docs/format.md (every field little-endian).
EXPECTED_BODY = bytes.fromhex(
    "89 46 43 58 0d 0a 1a 0a"      # 0x00 magic
    "01"                           # 0x08 version 1
    "00"                           # 0x09 flags
    "02" "6d 31"                   # 0x0a model id length 2, "m1"
    "00 01 02 03 04 05 06 07 08 09 0a 0b 0c 0d 0e 0f"   # 0x0d weights digest
    "03 00 00 00"                  # 0x1d height 3
    "05 00 00 00"                  # 0x21 width 5
    "02"                           # 0x25 layout RGBA
    "00 04"                        # 0x26 tile side 1024
    "00 00 00 00 00 00 e0 3f"      # 0x28 beta 0.5 (float64 0x3FE0000000000000)
    "78 56 34 12"                  # 0x30 params CRC 0x12345678
    "03 00"                        # 0x34 three streams (u16)
    "03 00 00 00" "61 62 63"       # stream 0: length 3, "abc"
    "00 00 00 00"                  # stream 1: empty
    "01 00 00 00" "ff"             # stream 2: length 1, 0xff
)


def crc32_bitwise(data: bytes) -> int:
    """Independent CRC-32 (reflected polynomial 0xEDB88320, init and final xor 0xFFFFFFFF)."""
    crc = 0xFFFFFFFF
    for byte in data:
        crc ^= byte
        for _ in range(8):
            crc = (crc >> 1) ^ (0xEDB88320 if crc & 1 else 0)
    return crc ^ 0xFFFFFFFF


# Field offsets of a file whose model id is `n` bytes long (docs/format.md, table 1).
def offsets(n: int) -> dict[str, int]:
    o = {"magic": 0, "version": 8, "flags": 9, "model_len": 10, "model": 11}
    o["digest"] = 11 + n
    o["height"] = o["digest"] + 16
    o["width"] = o["height"] + 4
    o["layout"] = o["width"] + 4
    o["tile"] = o["layout"] + 1
    o["beta"] = o["tile"] + 2
    o["params_crc"] = o["beta"] + 8
    o["count"] = o["params_crc"] + 4
    o["streams"] = o["count"] + 2
    return o


OFF = offsets(2)


def packed(**changes) -> bytes:
    return fcx.pack(fcx.Container(make_header(**changes), list(STREAMS)))


def reseal(body: bytes) -> bytes:
    """Append a correct trailing CRC, so that the check after the CRC is what gets exercised."""
    return body + struct.pack("<I", zlib.crc32(body))


def patched(data: bytes, offset: int, new: bytes) -> bytes:
    """Replace bytes of a sealed file at `offset` and re-seal it."""
    body = bytearray(data[:-4])
    body[offset:offset + len(new)] = new
    return reseal(bytes(body))


# --- exact bytes -------------------------------------------------------------------------------

def test_spec_offsets_match_hand_written_layout():
    assert len(EXPECTED_BODY) == OFF["streams"] + (4 + 3) + 4 + (4 + 1)
    assert OFF["streams"] == 52 + 2          # fixed header is 52 bytes plus the model id
    assert EXPECTED_BODY[OFF["beta"]:OFF["beta"] + 8] == struct.pack("<d", 0.5)


def test_pack_produces_the_bytes_of_the_spec():
    crc = crc32_bitwise(EXPECTED_BODY)
    assert crc == zlib.crc32(EXPECTED_BODY)
    expected = EXPECTED_BODY + crc.to_bytes(4, "little")
    assert packed() == expected
    assert len(expected) == 74


def test_unpack_of_the_spec_bytes():
    data = EXPECTED_BODY + crc32_bitwise(EXPECTED_BODY).to_bytes(4, "little")
    c = fcx.unpack(data)
    assert c.header == make_header()
    assert c.streams == STREAMS


# --- round trips -------------------------------------------------------------------------------

@pytest.mark.parametrize("header, streams", [
    (make_header(), STREAMS),
    (make_header(flags=fcx.FLAG_SIDE_INFO, layout=fcx.LAYOUT_RGB, beta=0.0003), [b"z" * 1000, b"y"]),
    (make_header(model="x" * 255, layout=fcx.LAYOUT_GRAY, height=fcx.MAX_DIMENSION, width=1), []),
    (make_header(layout=fcx.LAYOUT_GRAY_ALPHA, height=1 << 14, width=1 << 14, params_crc=0xFFFFFFFF,
                 beta=1e300), [bytes([i % 256]) * (i % 7) for i in range(fcx.MAX_STREAMS)]),
])
def test_round_trip(header, streams):
    data = fcx.pack(fcx.Container(header, streams))
    c = fcx.unpack(data)
    assert c.header == header
    assert c.streams == streams
    assert fcx.pack(c) == data
    assert c.header.needs_side_info == bool(header.flags & fcx.FLAG_SIDE_INFO)


def test_unpack_accepts_bytearray_and_memoryview_like_input():
    data = packed()
    assert fcx.unpack(bytearray(data)).streams == STREAMS


def test_beta_is_stored_exactly():
    for beta in (0.005, 0.01, 1 / 3, 5e-324, 1.7976931348623157e308):
        assert fcx.unpack(packed(beta=beta)).header.beta == beta


# --- every corruption is detected --------------------------------------------------------------

def test_every_single_byte_change_is_detected():
    """By the right check: the magic and the version are read first, and the CRC is verified
    before any other field is interpreted (a flipped flag, layout or length is a CRC error)."""
    data = packed()
    for i in range(len(data)):
        reason = "magic" if i < OFF["version"] else "version" if i == OFF["version"] else "CRC"
        for mask in (0x01, 0x80, 0xFF):
            bad = bytearray(data)
            bad[i] ^= mask
            with pytest.raises(fcx.FormatError, match=reason):
                fcx.unpack(bytes(bad))


def test_every_single_byte_change_of_a_larger_file_is_detected():
    data = fcx.pack(fcx.Container(make_header(model="hyperprior", layout=fcx.LAYOUT_RGB),
                                  [bytes(range(256)) * 2, b"\x00" * 300]))
    for i in range(len(data)):
        bad = bytearray(data)
        bad[i] ^= 0x5A
        with pytest.raises(fcx.FormatError):
            fcx.unpack(bytes(bad))


def test_every_truncation_is_detected():
    data = packed()
    for n in range(len(data)):
        with pytest.raises(fcx.FormatError, match="magic" if n < len(fcx.MAGIC) else "truncated|CRC"):
            fcx.unpack(data[:n])


def test_every_truncation_is_detected_behind_a_valid_crc():
    """The parser's own bounds checks, not only the CRC: every prefix of the body, re-sealed, is
    refused as truncated (never an IndexError or struct.error, never a shorter valid file)."""
    body = packed()[:-4]
    for n in range(len(fcx.MAGIC), len(body)):
        with pytest.raises(fcx.FormatError, match="truncated"):
            fcx.unpack(reseal(body[:n]))


def test_empty_and_tiny_inputs():
    for data in (b"", b"\x89", fcx.MAGIC, fcx.MAGIC + b"\x01\x00", fcx.MAGIC + bytes(6)):
        with pytest.raises(fcx.FormatError):
            fcx.unpack(data)


def test_bad_magic():
    data = packed()
    for i in range(8):
        bad = bytearray(data)
        bad[i] ^= 0x20
        with pytest.raises(fcx.FormatError, match="magic"):
            fcx.unpack(bytes(bad))
    with pytest.raises(fcx.FormatError, match="magic"):
        fcx.unpack(b"\x89PNG\r\n\x1a\n" + data[8:])


def test_text_mode_mangling_breaks_the_magic():
    data = packed()
    with pytest.raises(fcx.FormatError, match="magic"):
        fcx.unpack(data.replace(b"\r\n", b"\n"))


@pytest.mark.parametrize("version", [0, 3, 255])
def test_unknown_version(version):
    with pytest.raises(fcx.FormatError, match=f"unsupported .fcx version {version} "
                                              r"\(this build reads versions 1, 2"):
        fcx.unpack(patched(packed(), OFF["version"], bytes([version])))


@pytest.mark.parametrize("flags", [0x02, 0x80, 0xFF])
def test_unknown_flags(flags):
    with pytest.raises(fcx.FormatError, match="flags"):
        fcx.unpack(patched(packed(), OFF["flags"], bytes([flags])))


def test_known_flag_is_accepted():
    data = patched(packed(), OFF["flags"], bytes([fcx.FLAG_SIDE_INFO]))
    assert fcx.unpack(data).header.needs_side_info


@pytest.mark.parametrize("layout", [4, 5, 255])
def test_unknown_layout(layout):
    with pytest.raises(fcx.FormatError, match="layout"):
        fcx.unpack(patched(packed(), OFF["layout"], bytes([layout])))


@pytest.mark.parametrize("height, width", [
    (0, 5), (3, 0), (0, 0),
    (fcx.MAX_DIMENSION + 1, 1), (1, fcx.MAX_DIMENSION + 1),
    (0xFFFFFFFF, 0xFFFFFFFF),
    (fcx.MAX_DIMENSION, fcx.MAX_PIXELS // fcx.MAX_DIMENSION + 1),   # both sides legal, too many pixels
    (1 << 15, 1 << 15),
])
def test_absurd_dimensions(height, width):
    assert not (1 <= height <= fcx.MAX_DIMENSION and 1 <= width <= fcx.MAX_DIMENSION
                and height * width <= fcx.MAX_PIXELS)
    data = patched(packed(), OFF["height"], struct.pack("<II", height, width))
    with pytest.raises(fcx.FormatError, match="image size"):
        fcx.unpack(data)


@pytest.mark.parametrize("height, width", [
    (1, 1), (fcx.MAX_DIMENSION, 1), (1, fcx.MAX_DIMENSION),
    (fcx.MAX_DIMENSION, fcx.MAX_PIXELS // fcx.MAX_DIMENSION),   # exactly MAX_PIXELS
])
def test_largest_legal_dimensions(height, width):
    data = patched(packed(), OFF["height"], struct.pack("<II", height, width))
    header = fcx.unpack(data).header
    assert (header.height, header.width) == (height, width)


def test_dimension_check_comes_before_the_streams_are_read():
    # A huge declared size with a stream length pointing far past the end: the size is refused
    # first, so nothing is sized from the bogus numbers.
    data = patched(packed(), OFF["height"], struct.pack("<II", 1 << 20, 1 << 20))
    data = patched(data, OFF["streams"], struct.pack("<I", 0xFFFFFFFF))
    with pytest.raises(fcx.FormatError, match="image size"):
        fcx.unpack(data)


@pytest.mark.parametrize("beta", [0.0, -0.0, -1.0, math.inf, -math.inf, math.nan])
def test_invalid_beta(beta):
    with pytest.raises(fcx.FormatError, match="beta"):
        fcx.unpack(patched(packed(), OFF["beta"], struct.pack("<d", beta)))


@pytest.mark.parametrize("count", [fcx.MAX_STREAMS + 1, 0xFFFF])
def test_too_many_streams(count):
    with pytest.raises(fcx.FormatError, match="too many streams"):
        fcx.unpack(patched(packed(), OFF["count"], struct.pack("<H", count)))


@pytest.mark.parametrize("tile", [0, 1, 100, 1000])
def test_tile_side_must_be_a_multiple_of_64(tile):
    with pytest.raises(fcx.FormatError, match="tile"):
        fcx.unpack(patched(packed(), OFF["tile"], struct.pack("<H", tile)))


def test_pack_refuses_too_many_streams():
    with pytest.raises(ValueError):
        fcx.pack(fcx.Container(make_header(), [b""] * (fcx.MAX_STREAMS + 1)))


def test_stream_count_larger_than_the_data():
    with pytest.raises(fcx.FormatError, match="truncated"):
        fcx.unpack(patched(packed(), OFF["count"], struct.pack("<H", 4)))


def test_stream_length_past_the_end():
    for length in (5, 1000, 0xFFFFFFFF):
        with pytest.raises(fcx.FormatError, match="truncated"):
            fcx.unpack(patched(packed(), OFF["streams"], struct.pack("<I", length)))


def test_model_length_past_the_end():
    with pytest.raises(fcx.FormatError, match="truncated"):
        fcx.unpack(patched(packed(), OFF["model_len"], b"\xff"))


def test_empty_and_non_ascii_model_id():
    body = bytearray(EXPECTED_BODY)
    empty = reseal(bytes(body[:10]) + b"\x00" + bytes(body[13:]))
    with pytest.raises(fcx.FormatError, match="empty model"):
        fcx.unpack(empty)
    with pytest.raises(fcx.FormatError, match="ASCII"):
        fcx.unpack(patched(packed(), OFF["model"], b"\xc3\xa9"))


def test_trailing_garbage_inside_the_crc():
    data = packed()
    with pytest.raises(fcx.FormatError, match="trailing"):
        fcx.unpack(reseal(data[:-4] + b"\x00"))
    with pytest.raises(fcx.FormatError, match="trailing"):
        fcx.unpack(reseal(data[:-4] + b"junk" * 10))


def test_trailing_garbage_after_the_crc():
    data = packed()
    for tail in (b"\x00", b"\n", data[-4:], b"x" * 100):
        with pytest.raises(fcx.FormatError):
            fcx.unpack(data + tail)


def test_two_files_concatenated():
    with pytest.raises(fcx.FormatError):
        fcx.unpack(packed() + packed())


# --- pack's own argument checks ----------------------------------------------------------------

@pytest.mark.parametrize("changes", [
    dict(model=""), dict(model="x" * 256), dict(model="modèle"),
    dict(weights_digest=b"\x00" * 15), dict(weights_digest=b"\x00" * 32),
    dict(height=0), dict(width=fcx.MAX_DIMENSION + 1),
])
def test_pack_refuses_bad_headers(changes):
    with pytest.raises(ValueError):
        fcx.pack(fcx.Container(make_header(**changes), []))


# --- Header -----------------------------------------------------------------------------------

def test_header_to_dict():
    header = make_header(params_crc=0xAE508F04, flags=fcx.FLAG_SIDE_INFO, beta=0.005)
    assert header.to_dict() == {
        "format_version": 1,
        "model": "m1",
        "weights_digest": "000102030405060708090a0b0c0d0e0f",
        "height": 3,
        "width": 5,
        "layout": "RGBA",
        "beta": 0.005,
        "tile": 1024,
        "params_crc32": "ae508f04",
        "side_info_required": True,
        "metadata": {},
    }


def test_header_to_dict_layout_names_and_crc_padding():
    names = {fcx.LAYOUT_RGB: "RGB", fcx.LAYOUT_GRAY: "L", fcx.LAYOUT_RGBA: "RGBA",
             fcx.LAYOUT_GRAY_ALPHA: "LA"}
    for layout, name in names.items():
        d = make_header(layout=layout, params_crc=0x1F).to_dict()
        assert d["layout"] == name
        assert d["params_crc32"] == "0000001f"
        assert d["side_info_required"] is False


# --- version 2: the metadata block --------------------------------------------------------------

META = {"xmp": b"<x:xmpmeta/>", "icc": b"ICC!"}

# The file of EXPECTED_BODY with ICC and XMP metadata, written out by hand from docs/format.md:
# version 2, flag bit 1, and the block between the stream count and the first stream.
EXPECTED_V2_BODY = (
    EXPECTED_BODY[:OFF["version"]]
    + b"\x02"                                      # version 2
    + b"\x02"                                      # flags: FLAG_METADATA
    + EXPECTED_BODY[OFF["flags"] + 1:OFF["streams"]]
    + bytes.fromhex("02")                          # two entries
    + bytes.fromhex("01 04 00 00 00") + b"ICC!"    # kind 1 (ICC), length 4
    + bytes.fromhex("03 0c 00 00 00") + b"<x:xmpmeta/>"   # kind 3 (XMP), length 12
    + EXPECTED_BODY[OFF["streams"]:])
META_AT = OFF["streams"]   # where the block starts


def packed_v2(**changes) -> bytes:
    return packed(metadata=dict(META), **changes)


def test_a_file_without_metadata_is_version_1():
    """Byte for byte what earlier builds wrote (and still read): the version is the lowest
    that can express the file."""
    assert packed()[OFF["version"]] == 1
    assert make_header().version == 1 and make_header(metadata=META).version == 2


def test_pack_with_metadata_produces_the_bytes_of_the_spec():
    assert packed_v2() == EXPECTED_V2_BODY + crc32_bitwise(EXPECTED_V2_BODY).to_bytes(4, "little")


def test_unpack_of_the_v2_spec_bytes():
    c = fcx.unpack(reseal(EXPECTED_V2_BODY))
    assert c.header == make_header(metadata=META)
    assert c.header.flags == 0          # FLAG_METADATA is the layout's, not the header's
    assert c.streams == STREAMS


@pytest.mark.parametrize("metadata", [
    {"icc": b"\x00"}, {"exif": b"MM\x00*" + bytes(100)}, {"xmp": b"x" * 70000},
    {"icc": b"a", "exif": b"b", "xmp": b"c"},
    {"xmp": b"\xff" * fcx.MAX_METADATA_BYTES},
])
def test_v2_round_trip(metadata):
    header = make_header(metadata=metadata, flags=fcx.FLAG_SIDE_INFO)
    data = fcx.pack(fcx.Container(header, list(STREAMS)))
    c = fcx.unpack(data)
    assert c.header == header and c.header.needs_side_info
    assert c.streams == STREAMS
    assert fcx.pack(c) == data


def test_the_order_of_the_metadata_dict_does_not_change_the_bytes():
    assert (packed(metadata={"xmp": b"x", "icc": b"i"})
            == packed(metadata={"icc": b"i", "xmp": b"x"}))


def test_header_to_dict_lists_metadata_sizes():
    d = make_header(metadata={"exif": b"12345", "icc": b"123"}).to_dict()
    assert d["format_version"] == 2
    assert d["metadata"] == {"icc": 3, "exif": 5}
    assert list(d["metadata"]) == ["icc", "exif"]   # kind order


def test_every_single_byte_change_of_a_v2_file_is_detected():
    data = packed_v2()
    for i in range(len(data)):
        bad = bytearray(data)
        bad[i] ^= 0x5A
        with pytest.raises(fcx.FormatError):
            fcx.unpack(bytes(bad))


def test_every_truncation_of_a_v2_file_is_detected_behind_a_valid_crc():
    body = packed_v2()[:-4]
    for n in range(len(fcx.MAGIC), len(body)):
        with pytest.raises(fcx.FormatError, match="truncated"):
            fcx.unpack(reseal(body[:n]))


def test_flag_metadata_is_unknown_in_a_version_1_file():
    with pytest.raises(fcx.FormatError, match="unknown flags 0x02 for version 1"):
        fcx.unpack(patched(packed(), OFF["flags"], b"\x02"))


def test_version_2_without_the_metadata_flag_is_refused():
    """It would have been written as version 1: every file has one encoding."""
    with pytest.raises(fcx.FormatError, match="version 2 without the metadata flag"):
        fcx.unpack(patched(packed(), OFF["version"], b"\x02"))


@pytest.mark.parametrize("flags", [0x04, 0x80, 0xFF])
def test_unknown_flags_of_a_version_2_file(flags):
    with pytest.raises(fcx.FormatError, match="unknown flags"):
        fcx.unpack(patched(packed_v2(), OFF["flags"], bytes([flags])))


@pytest.mark.parametrize("count", [0, 4, 255])
def test_metadata_entry_count(count):
    with pytest.raises(fcx.FormatError, match=f"metadata block with {count} entries"):
        fcx.unpack(patched(packed_v2(), META_AT, bytes([count])))


@pytest.mark.parametrize("kind", [0, 4, 255])
def test_unknown_metadata_kind(kind):
    with pytest.raises(fcx.FormatError, match=f"unknown metadata kind {kind}"):
        fcx.unpack(patched(packed_v2(), META_AT + 1, bytes([kind])))


def test_metadata_entries_repeated_or_out_of_order():
    second_kind = META_AT + 1 + 5 + 4   # after the count and the 4-byte ICC entry
    with pytest.raises(fcx.FormatError, match="repeated or out of order"):
        fcx.unpack(patched(packed_v2(), second_kind, b"\x01"))   # ICC twice
    swapped = packed(metadata={"icc": b"ICC!", "exif": b"EXIF"})
    body = bytearray(swapped[:-4])
    body[META_AT + 1] = 2            # first entry claims EXIF, second ICC: out of order
    body[second_kind] = 1
    with pytest.raises(fcx.FormatError, match="repeated or out of order"):
        fcx.unpack(reseal(bytes(body)))


def test_empty_metadata_entry_is_refused():
    data = packed(metadata={"icc": b"I"})
    body = bytearray(data[:-4])
    body[META_AT + 2:META_AT + 6] = struct.pack("<I", 0)
    del body[META_AT + 6]            # the entry's one byte
    with pytest.raises(fcx.FormatError, match="icc metadata of 0 bytes"):
        fcx.unpack(reseal(bytes(body)))


@pytest.mark.parametrize("length", [fcx.MAX_METADATA_BYTES + 1, 0xFFFFFFFF])
def test_absurd_metadata_length_is_refused_before_any_allocation(length, monkeypatch):
    """The limit is checked before the entry is sliced out of the file: the error names the
    limit (not 'truncated'), and the parser never takes more than the file holds."""
    taken = []
    original = fcx._unpack_metadata

    def spy(take):
        def counting_take(n):
            taken.append(n)
            return take(n)
        return original(counting_take)

    monkeypatch.setattr(fcx, "_unpack_metadata", spy)
    data = patched(packed_v2(), META_AT + 2, struct.pack("<I", length))
    with pytest.raises(fcx.FormatError, match=f"icc metadata of {length} bytes"):
        fcx.unpack(data)
    assert max(taken) < 16


def test_metadata_length_past_the_end():
    with pytest.raises(fcx.FormatError, match="truncated"):
        fcx.unpack(patched(packed_v2(), META_AT + 2, struct.pack("<I", 1000)))


@pytest.mark.parametrize("metadata", [
    {"icc": b""}, {"gps": b"x"}, {"xmp": b"x" * (fcx.MAX_METADATA_BYTES + 1)},
])
def test_pack_refuses_bad_metadata(metadata):
    with pytest.raises(ValueError):
        packed(metadata=metadata)


def test_pack_refuses_the_metadata_flag_in_the_header():
    with pytest.raises(ValueError):
        packed(flags=fcx.FLAG_METADATA)
