"""The one way this project writes a file: all or nothing, and never over an existing file unless
asked to.

`atomic_path` hands out a temporary path in the destination's folder; whatever is written there
(bytes, a torch checkpoint, safetensors, a PNG plot) is flushed to disk and only then moved into
place, so a full disk or a killed process never leaves a partial file at the destination.
Without `force`, the final step is a hard link, which fails atomically if the destination appeared
meanwhile: an existing file is never overwritten. `write_atomic` is the command line's writer on
top of it (bytes, or stdout for '-').
"""

from __future__ import annotations

import os
import sys
import tempfile
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator

from flowcodec_cli.errors import OutputExists

STDIO = "-"


@contextmanager
def atomic_path(dst: str | os.PathLike, force: bool = True) -> Iterator[Path]:
    """Yield a temporary path beside `dst`; on a clean exit, fsync it and move it to `dst`
    (replacing it only if `force`); on any error, remove it."""
    dst = os.fspath(dst)
    if not force and os.path.lexists(dst):
        raise OutputExists(dst)
    folder = os.path.dirname(os.path.abspath(dst))
    fd, tmp = tempfile.mkstemp(prefix=".flowcodec-", suffix=".part", dir=folder)
    os.close(fd)
    try:
        os.chmod(tmp, 0o666 & ~_umask())  # mkstemp's 0600 would surprise users
        yield Path(tmp)
        with open(tmp, "rb+") as f:
            os.fsync(f.fileno())
        if force:
            os.replace(tmp, dst)
        else:
            _move_no_clobber(tmp, dst)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise


def write_atomic(dst: str, data: bytes, force: bool) -> None:
    """All-or-nothing write of `data` to `dst` (or stdout for '-')."""
    if dst == STDIO:
        sys.stdout.buffer.write(data)
        sys.stdout.buffer.flush()
        return
    with atomic_path(dst, force) as tmp:
        tmp.write_bytes(data)


def _move_no_clobber(tmp: str, dst: str) -> None:
    """Move into place without ever replacing an existing file."""
    try:
        os.link(tmp, dst)  # atomic, and fails if dst exists
    except FileExistsError:
        raise OutputExists(dst) from None
    except OSError:  # filesystems without hard links (FAT, some network mounts)
        if os.path.lexists(dst):
            raise OutputExists(dst) from None
        os.replace(tmp, dst)
        return
    os.unlink(tmp)


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask
