"""The bench's images: which files of the folder, read as plain 8-bit RGB with the sha256 of
their bytes, which names their cache entries (so a renamed file still hits the cache)."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from flowcodec_cli.evaluation.bench.failures import describe, notice
from flowcodec_cli.evaluation.bench.options import BenchUsageError
from flowcodec_cli.files.images import IMAGE_SUFFIXES, image_files, read_image


@dataclass
class BenchImage:
    """One image of the run: its file name (reported), path, sha256 (cache key) and samples."""

    name: str
    path: Path
    sha256: str
    rgb: np.ndarray

    @property
    def pixels(self) -> int:
        return int(self.rgb.shape[0] * self.rgb.shape[1])


class NoReadableImages(Exception):
    """Every image was unreadable: carries the per-image errors (already reported)."""

    def __init__(self, errors):
        super().__init__("none of the images could be read")
        self.errors = errors


def list_images(directory: Path, limit: int | None) -> list[Path]:
    """The folder's images, sorted by name, the first `limit` of them."""
    paths = image_files(directory)
    if not paths:
        raise BenchUsageError(f"{directory}: no images (looked for "
                              f"{', '.join(sorted(IMAGE_SUFFIXES))})")
    return paths[:limit] if limit is not None else paths


def read_rgb(path: Path) -> np.ndarray:
    """An image file as 8-bit RGB: every codec of the bench codes the same samples, so an alpha
    plane (which our codec would add losslessly) is dropped."""
    return read_image(path.read_bytes()).rgb


def read_images(paths: list[Path], errors: list) -> list[BenchImage]:
    """Read each image as 8-bit RGB; an unreadable one is reported, recorded and skipped."""
    loaded = []
    for path in paths:
        try:
            data = path.read_bytes()
            picture = read_image(data)
        except Exception as exc:  # noqa: BLE001 - reported and skipped, the run goes on
            notice(f"{path}: {describe(exc)} (skipped)")
            errors.append((str(path), exc))
            continue
        loaded.append(BenchImage(path.name, path, hashlib.sha256(data).hexdigest(), picture.rgb))
    return loaded
