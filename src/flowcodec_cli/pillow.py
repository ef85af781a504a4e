"""The Pillow plug-in for .fcx files: after `import flowcodec_cli.pillow`, `Image.open("x.fcx")`
opens them and `im.save("x.fcx", quality=70)` writes them, as for any format Pillow knows.

Opening is lazy, as Pillow's own formats are: `Image.open` reads the file and checks it (magic,
CRC, header: a corrupt file fails there, with the same FormatError as `flowcodec_cli.decode`),
and gives the size, mode (RGB, L, RGBA or LA) and metadata (`im.info`) from the header, without
decoding or importing torch; the pixels are decoded by `flowcodec_cli.decode` on first use
(`im.load()`, or anything that reads them). Saving is `flowcodec_cli.encode` of the image, with
its keyword options (`SAVE_OPTIONS`); like Pillow's plug-ins, the save ignores options it does
not know. A file that needs side information opens, but its pixels come only from
`flowcodec_cli.decode(data, side_info=...)`: Pillow has no way to pass the side view to `load()`,
which raises SideInfoError saying so.

Registration is this import: Pillow has no entry point through which an installed package adds
a format (it loads the plug-ins it lists itself; python-pillow/Pillow#6070, which proposed entry
points, was closed unmerged), so a program that wants .fcx in `Image.open` imports this module.
"""

from __future__ import annotations

import inspect
from io import BytesIO

from PIL import Image, ImageFile

from flowcodec_cli import api
from flowcodec_cli.codec import fcx
from flowcodec_cli.codec.picture import Metadata
from flowcodec_cli.errors import SideInfoError
from flowcodec_cli.files import images

__all__ = ["EXTENSION", "FORMAT", "FcxImageFile", "MIME", "SAVE_OPTIONS", "register"]

FORMAT = "FCX"
EXTENSION = ".fcx"
MIME = "image/x-fcx"   # no media type is registered for .fcx; an unregistered one, as x- says
SAVE_OPTIONS = tuple(name for name in inspect.signature(api.encode).parameters
                     if name not in ("image", "frame"))
"""The keyword options of `im.save(..., format="FCX")`: those of `flowcodec_cli.encode` (a
Pillow image has no frame to choose: it is coded at the frame it is on)."""


def _accept(prefix: bytes) -> bool:
    return prefix.startswith(fcx.MAGIC)


class FcxImageFile(ImageFile.ImageFile):
    """An .fcx file opened by Pillow: the header now, the pixels on first use."""

    format = FORMAT
    format_description = "flowcodec learned image"

    def _open(self) -> None:
        """Size, mode and metadata from the header. The whole file is read to check its CRC
        (.fcx files are small), but nothing is decoded."""
        self._fcx: bytes | None = self.fp.read()
        header = fcx.unpack(self._fcx).header
        self._needs_side_info = header.needs_side_info
        self._size = (header.width, header.height)
        self._mode = fcx.LAYOUT_NAMES[header.layout]   # "RGB", "L", "RGBA", "LA": Pillow's modes
        self.info.update(images.pil_info(Metadata(**header.metadata)))
        self.tile = [(FORMAT, (0, 0, *self.size), 0, None)]   # replaced by `load`

    def load(self):
        """Decode on first use, then hand Pillow the pixels as a raw tile (as its WebP plug-in
        does with what libwebp decodes)."""
        if self._fcx is not None:
            if self._needs_side_info:
                raise SideInfoError("this file needs side information, which Image.open cannot "
                                    "pass on: use flowcodec_cli.decode(data, side_info=...)")
            pixels = api.decode(self._fcx).tobytes()
            self._fcx = None
            if self.fp and self._exclusive_fp:
                self.fp.close()
            self.fp = BytesIO(pixels)
            self.tile = [("raw", (0, 0, *self.size), 0, self.mode)]
        return super().load()

    def load_seek(self, pos: int) -> None:
        """The raw tile is read from the decoded pixels, already at their start. Defined so that
        Pillow reads it through `fp`: without it, Pillow would memory-map the file by its name
        and take the .fcx bytes for pixels."""


def _save(im: Image.Image, fp, filename) -> None:
    """`im.save(..., quality=70)`: the image coded by `flowcodec_cli.encode` with the options
    of SAVE_OPTIONS that were given."""
    options = {name: im.encoderinfo[name] for name in SAVE_OPTIONS if name in im.encoderinfo}
    fp.write(api.encode(im, **options))


def register() -> None:
    """Teach Pillow the format (done on import; registering again changes nothing)."""
    Image.register_open(FORMAT, FcxImageFile, _accept)
    Image.register_save(FORMAT, _save)
    Image.register_extension(FORMAT, EXTENSION)
    Image.register_mime(FORMAT, MIME)


register()
