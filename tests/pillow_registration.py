"""The .fcx Pillow plug-in registered for one test and taken out of Pillow's tables after it.

Registered, it makes .fcx a format Pillow can write, and `flowcodec decode -o x.fcx` must keep
refusing that suffix in the same test process (tests/test_odd_inputs.py): so no test leaves it
registered, whatever the order the tests run in."""

from __future__ import annotations

from contextlib import contextmanager

from PIL import Image


@contextmanager
def fcx_plugin():
    import flowcodec_cli.pillow as plugin
    plugin.register()
    try:
        yield plugin
    finally:
        Image.OPEN.pop(plugin.FORMAT, None)
        Image.SAVE.pop(plugin.FORMAT, None)
        Image.MIME.pop(plugin.FORMAT, None)
        if plugin.FORMAT in Image.ID:
            Image.ID.remove(plugin.FORMAT)
        for suffix in [s for s, fmt in Image.EXTENSION.items() if fmt == plugin.FORMAT]:
            del Image.EXTENSION[suffix]
