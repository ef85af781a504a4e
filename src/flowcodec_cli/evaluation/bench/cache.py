"""The bench cache: one small JSON per (codec, setting, image), so that an interrupted bench
resumes where it stopped and a rerun only recomputes curves and reports.

Layout: `CACHE_DIR/<codec cache id>/<setting>/<image sha256>.json`, holding {"key", "point"}.
A codec's cache id (plan.py) starts with `v{CACHE_VERSION}` and includes everything that changes
its bytes (a model's weights sha256 and device; a classical codec's configuration and library
versions), so stale entries are never read, only left behind. An entry whose stored key does not
match is ignored, as is an unreadable one.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING

from flowcodec_cli.files.atomic import atomic_path

if TYPE_CHECKING:
    from flowcodec_cli.evaluation.bench.images import BenchImage
    from flowcodec_cli.evaluation.bench.plan import Codec

CACHE_VERSION = 1


def setting_name(value: float) -> str:
    """A setting as it appears in file names: repr of the float, exact and the same every run."""
    return repr(float(value))


def cache_path(cache_dir: Path, codec: Codec, setting: float, image: BenchImage) -> Path:
    """Where one point's entry lives (see the module docstring for the layout)."""
    return cache_dir / codec.cache_id / setting_name(setting) / f"{image.sha256}.json"


def cache_key(codec: Codec, setting: float, image: BenchImage) -> dict:
    """What an entry must have been made for; stored in it and compared on reading."""
    return {"cache_id": codec.cache_id, "setting": float(setting), "image_sha256": image.sha256}


def cache_load(path: Path, key: dict) -> dict | None:
    """The cached point, or None when there is none that matches `key`."""
    try:
        entry = json.loads(path.read_text("utf-8"))
    except (OSError, ValueError):
        return None
    if not isinstance(entry, dict) or entry.get("key") != key or "point" not in entry:
        return None
    return entry["point"]


def cache_store(path: Path, key: dict, point: dict) -> None:
    """Write an entry all or nothing: a bench killed mid-write leaves no half entry behind."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with atomic_path(path) as tmp:
        tmp.write_text(json.dumps({"key": key, "point": point}, allow_nan=False), "utf-8")
