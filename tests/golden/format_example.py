"""The worked example of docs/format.md (§2), rendered from the bytes the encoder writes today.

    python tests/golden/format_example.py          # rewrite §2 of docs/format.md and the
                                                   # `info --json` example of docs/cli.md
    python tests/golden/format_example.py --check  # exit 1 if §2 is stale

The example shows a real file byte by byte, so it changes whenever the weights or the
entropy-coder constants do. Writing it by hand after each retraining was error-prone;
`make_golden.py` calls this, and `tests/test_fcx.py` fails when the committed text is stale.
"""

from __future__ import annotations

import functools
import json
import struct
import sys
import tempfile
import zlib
from pathlib import Path

from flowcodec_cli import codec
from flowcodec_cli.codec import fcx
from flowcodec_cli.files import images
from flowcodec_cli import zoo

ROOT = Path(__file__).resolve().parents[2]
DOC = ROOT / "docs" / "format.md"
IMAGE = "tests/data/parrots_256x192.png"
BETA = 0.005
SECTION_START = "## 2. Worked example\n"
SECTION_END = "## 3. Tiles\n"


@functools.cache
def example_file() -> bytes:
    """What `flowcodec encode tests/data/parrots_256x192.png --beta 0.005` writes (encoded once
    per process: both doc tests and the rewrite use it)."""
    return codec.encode(images.read_image(ROOT / IMAGE), BETA, zoo.DEFAULT_MODEL)[0]


def _spaced(n: int) -> str:
    """1024 → '1 024': the document's thousands separator."""
    return f"{n:,}".replace(",", " ")


def xxd(data: bytes) -> str:
    """`xxd` output: 16 bytes a line, in groups of two, then the printable characters."""
    lines = []
    for offset in range(0, len(data), 16):
        chunk = data[offset:offset + 16]
        groups = " ".join(chunk[i:i + 2].hex() for i in range(0, len(chunk), 2))
        text = "".join(chr(b) if 0x20 <= b < 0x7F else "." for b in chunk)
        lines.append(f"{offset:08x}: {groups:<39}  {text}")
    return "\n".join(lines)


def render(data: bytes) -> str:
    """§2 of docs/format.md for the file `data` (one tile, RGB)."""
    container = fcx.unpack(data)
    h = container.header
    z_len, y_len = (len(s) for s in container.streams)
    name = h.model.encode()
    digest = zoo.sha256_file(ROOT / "weights" / f"{h.model}.safetensors")
    assert digest[:32] == h.weights_digest.hex(), "the example must be made with the shipped weights"
    beta_bits = struct.unpack("<Q", struct.pack("<d", h.beta))[0]
    # (field, size in bytes, value): the fields in file order, so offsets add up as they do in fcx.pack
    fields = [
        ("magic", 8, ""),
        ("version", 1, str(h.version)),
        ("flags", 1, "no side information"),
        ("model id length", 1, str(len(name))),
        ("model id", len(name), f"`{h.model}`"),
        ("weights digest", fcx.DIGEST_BYTES,
         f"the first 16 bytes of `sha256(weights/{h.model}.safetensors)` = `{digest[:8]}…{digest[24:32]}…`"),
        ("height", 4, f"{h.height:#x} = {h.height}"),
        ("width", 4, f"{h.width:#x} = {h.width}"),
        ("layout", 1, fcx.LAYOUT_NAMES[h.layout]),
        ("tile", 2, f"{h.tile:#x} = {_spaced(h.tile)} (`DEFAULT_TILE`): a 1 × 1 grid"),
        ("beta", 8, f"{beta_bits:#018x} = {h.beta:g}"
                    + (f", the network's β for `--beta {BETA:g}`" if h.beta != BETA else "")),
        ("params CRC", 4, f"{h.params_crc:#010x}"),
        ("stream count", 2, "2 (RGB, one tile: z and y)"),
        ("length of stream 0", 4, f"{z_len:#x} = {_spaced(z_len)}"),
        ("stream 0 (z of tile 0)", z_len, f"{_spaced(z_len)} bytes = {_spaced(z_len // 4)} range-coder words"),
        ("length of stream 1", 4, f"{y_len:#x} = {_spaced(y_len)}"),
        ("stream 1 (y of tile 0)", y_len, f"{_spaced(y_len)} bytes = {_spaced(y_len // 4)} words"),
    ]
    rows, offset = [], 0
    for field_name, size, value in fields:
        rows.append((offset, data[offset:offset + min(size, 16)], field_name, value))
        offset += size
    crc_at = offset
    rows.append((crc_at, data[crc_at:], "file CRC",
                 f"{zlib.crc32(data[:crc_at]):#010x} = `zlib.crc32(data[:{crc_at:#x}])`"))
    assert crc_at + 4 == len(data)
    fixed = next(offset for offset, _, name_, _ in rows if name_ == "length of stream 0")
    pixels = h.height * h.width
    table = ["| offset | bytes | field | value |", "|--------|-------|-------|-------|"]
    for offset, field_bytes, field_name, value in rows:
        payload = field_name.startswith("stream ") and "tile" in field_name  # show its first word
        shown = field_bytes[:4].hex(" ") + " …" if payload else field_bytes.hex(" ")
        table.append(f"| 0x{offset:02x} | `{shown}` | {field_name} |{f' {value} ' if value else ' '}|")
    return f"""{SECTION_START}
This file was made with
`.venv/bin/flowcodec encode {IMAGE} -o /tmp/x.fcx --beta {BETA:g} --force`
({_spaced(len(data))} bytes, {len(data) * 8 / pixels:.3f} bpp). The image is smaller than the default tile side, so it is one tile:

```
$ xxd -l 72 /tmp/x.fcx
{xxd(data[:72])}
```

{chr(10).join(table)}

Check: {fixed} (fixed part, L = {len(name)}) + 4 + {_spaced(z_len)} + 4 + {_spaced(y_len)} + 4 = {_spaced(len(data))} bytes.

The magic, version, model, digest, size, layout, tile and beta bytes do not change between
builds. The params CRC, the stream lengths and the stream bytes depend on the entropy-coder
constants (§4.1), so they change whenever those constants change. The same command gives the
same bytes on one build: coding turns off oneDNN and pins MKL's GEMMs to one kernel branch
(AVX-512 or AVX2) in strict reproducibility mode (`codec/blas.py`), so that the float32
transforms give the same result for any thread count, and the decoded pixels are the same on
every machine of one branch.

`flowcodec info /tmp/x.fcx` prints the same fields, with `tile {h.tile}` and
`streams [{z_len}, {y_len}]`.

"""


def documented() -> str:
    """§2 as committed in docs/format.md."""
    text = DOC.read_text()
    return text[text.index(SECTION_START):text.index(SECTION_END)]


def write(section: str) -> None:
    text = DOC.read_text()
    DOC.write_text(text[:text.index(SECTION_START)] + section + text[text.index(SECTION_END):])


CLI_DOC = ROOT / "docs" / "cli.md"
INFO_START = '```json\n{"file": "x.fcx"'


def info_example() -> str:
    """What `flowcodec info x.fcx --json` prints for the example file, wrapped for reading."""
    from click.testing import CliRunner
    from flowcodec_cli.cli import main as cli_main
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "x.fcx"
        path.write_bytes(example_file())
        result = CliRunner().invoke(cli_main, ["info", str(path), "--json"])
    record = {**json.loads(result.output), "file": "x.fcx"}
    items = [f"{json.dumps(k)}: {json.dumps(v)}" for k, v in record.items()]
    lines, line = [], ""
    for item in items:
        if line and len(line) + len(item) > 88:
            lines.append(line + ",")
            line = ""
        line = f"{line}, {item}" if line else item
    return "{" + "\n ".join(lines + [line]) + "}"


def _info_block(text: str) -> tuple[int, int]:
    """Start and end of the `info --json` example's JSON inside docs/cli.md."""
    start = text.index(INFO_START) + len("```json\n")
    return start, text.index("```", start)


def documented_info() -> dict:
    """The `info --json` example as committed in docs/cli.md."""
    text = CLI_DOC.read_text()
    start, end = _info_block(text)
    return json.loads(text[start:end])


def write_info_example() -> None:
    """Replace the `info --json` example block of docs/cli.md with today's output."""
    text = CLI_DOC.read_text()
    start, end = _info_block(text)
    CLI_DOC.write_text(text[:start] + info_example() + "\n" + text[end:])


def main(argv: list[str]) -> int:
    section = render(example_file())
    if "--check" in argv:
        if section != documented():
            print(f"{DOC}: §2 is stale; run python tests/golden/format_example.py", file=sys.stderr)
            return 1
        return 0
    write(section)
    write_info_example()
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
