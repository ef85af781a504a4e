"""Coding a folder tree (docs/python.md, "Many files"): `encode_tree` and `decode_tree`, here or
on a Dask cluster.

A collection that takes hours is coded in a run that may stop half-way, so a tree is coded
resumably: every output is written atomically (`files.atomic`: a temporary file moved into
place), so an output that exists is complete, and a second run skips it and codes only what is
missing. Each file is one task that never raises: a bad file is a failed record with the
command line's exit code and one-line message, and the other files are still coded.

Without a client the tasks run here, one after another. With a `distributed.Client` they are
Dask tasks, one per file (`client.map`), run by the cluster's workers, which must have this
package and the weights installed and see `src` and `dst` at the same paths (docs/python.md
also says why to turn off Dask's memory trimming there: it halves the codec's speed). This
module never imports Dask: a client is used through `client.map` and the futures it returns,
so Dask stays an optional extra (`pip install 'flowcodec-cli[cluster]'`).

The bytes are those of `flowcodec encode` and `flowcodec decode` (to PNG) with the same options:
`encode` codes through the Python API (`api.encode`), `decode` through the codec and the image
writer the command line uses.
"""

from __future__ import annotations

import os
import time
from functools import partial
from pathlib import Path
from typing import Callable

from flowcodec_cli import api, zoo
from flowcodec_cli.codec import fcx, rate_request
from flowcodec_cli.errors import classify
from flowcodec_cli.files import images
from flowcodec_cli.files.atomic import write_atomic

__all__ = ["decode_tree", "encode_tree"]


def encode_tree(src: str | os.PathLike, dst: str | os.PathLike, *, client=None,
                quality: float | None = None, beta: float | None = None, model: str | None = None,
                effort: int = 0, target_size: int | None = None, target_bpp: float | None = None,
                target_psnr: float | None = None, strip: bool = False, frame: int | None = None,
                device: str = "cpu", force: bool = False) -> dict:
    """Encode every image under `src` (recursively) to `dst/<same relative path>.fcx`, skipping
    outputs that exist unless `force`; the keywords are `flowcodec_cli.encode`'s. Returns the
    summary (`_summary`). A contradictory request (ValueError) or an unknown model is refused
    before any file is read, as by the command line."""
    options = dict(quality=quality, beta=beta, model=model, effort=effort,
                   target_size=target_size, target_bpp=target_bpp, target_psnr=target_psnr,
                   strip=strip, frame=frame, device=device)
    rate_request.resolve(model or zoo.DEFAULT_MODEL, quality, beta,
                         {"size": target_size, "bpp": target_bpp, "psnr": target_psnr})
    return _code_tree(_encode_file, src, dst, images.IMAGE_SUFFIXES, ".fcx", options, client,
                      force)


def decode_tree(src: str | os.PathLike, dst: str | os.PathLike, *, client=None,
                device: str = "cpu", force: bool = False) -> dict:
    """Decode every .fcx file under `src` (recursively) to `dst/<same relative path>.png`, as
    `encode_tree` encodes. Files that need side information fail (SideInfoError's code, 6)."""
    return _code_tree(_decode_file, src, dst, {".fcx"}, ".png", {"device": device}, client,
                      force)


def _code_tree(code_file, src, dst, accepted: set[str], suffix: str, options: dict, client,
               force: bool) -> dict:
    """Plan the tree, leave out the outputs already there (unless `force`), code the rest."""
    start = time.perf_counter()
    pairs = _plan_tree(Path(src), Path(dst), accepted, suffix)
    todo = [(s, d) for s, d in pairs if force or not os.path.lexists(d)]
    if client is None:
        results = [_code_one(code_file, s, d, options, force) for s, d in todo]
    else:  # pure=False: a task writes a file, so equal arguments are no reason to run it once
        sources, outputs = [s for s, _ in todo], [d for _, d in todo]
        futures = client.map(partial(_code_one, code_file), sources, outputs, options=options,
                             force=force, pure=False)
        results = [_result(future, s) for future, s in zip(futures, sources)]
    return _summary(len(pairs), results, time.perf_counter() - start)


def _result(future, src: str) -> dict:
    """A task's record; a task that could not run at all (its worker died: KilledWorker, say)
    is a failed record too, rather than the end of the whole run."""
    try:
        return future.result()
    except Exception as exc:  # noqa: BLE001
        return _failed(src, exc)


def _plan_tree(src: Path, dst: Path, accepted: set[str], suffix: str) -> list[tuple[str, str]]:
    """(source, destination) for every file under `src` with an accepted suffix, the
    destination mirroring its path relative to `src` with `suffix`. Raises NotADirectoryError
    for a `src` that is not a folder and ValueError when two sources would write one output
    (`x.png` and `x.jpg` side by side), as the command line refuses them, before any work."""
    if not src.is_dir():
        raise NotADirectoryError(f"{src} is not a directory")
    pairs, seen = [], {}
    for path in images.image_files(src, recursive=True, suffixes=accepted):
        out = dst / path.relative_to(src).with_suffix(suffix)
        if out in seen:
            raise ValueError(f"{seen[out]} and {path} would both write {out}")
        seen[out] = path
        pairs.append((str(path), str(out)))
    return pairs


def _code_one(code_file: Callable[[str, str, dict, bool], tuple[int, int]], src: str, dst: str,
             options: dict, force: bool) -> dict:
    """One file, wherever it runs: its record ({input, output, bytes_in, bytes_out, seconds}),
    or, for any failure, {input, code, message} as the command line reports it. It never
    raises, so that one bad file is one failed record, not a failed gather."""
    start = time.perf_counter()
    try:
        bytes_in, bytes_out = code_file(src, dst, options, force)
    except Exception as exc:  # noqa: BLE001 - every failure becomes a code and one line
        return _failed(src, exc)
    return {"input": src, "output": dst, "bytes_in": bytes_in, "bytes_out": bytes_out,
            "seconds": round(time.perf_counter() - start, 4)}


def _failed(src: str, exc: BaseException) -> dict:
    """A failed file's record: the command line's exit code and one-line message."""
    failure = classify(exc)
    return {"input": src, "code": failure.code, "message": failure.message}


def _encode_file(src: str, dst: str, options: dict, force: bool) -> tuple[int, int]:
    """Encode one image file as `flowcodec encode` would; (input bytes, output bytes)."""
    raw = Path(src).read_bytes()
    data = api.encode(raw, **options)
    _write(dst, data, force)
    return len(raw), len(data)


def _decode_file(src: str, dst: str, options: dict, force: bool) -> tuple[int, int]:
    """Decode one .fcx file to PNG as `flowcodec decode` would; (input bytes, output bytes)."""
    raw = Path(src).read_bytes()
    fcx.unpack(raw)  # a corrupt file fails here, before torch is imported
    from flowcodec_cli import codec
    png = images.encode_image_bytes(codec.decode(raw, device=options["device"]), ".png")
    _write(dst, png, force)
    return len(raw), len(png)


def _write(dst: str, data: bytes, force: bool) -> None:
    """The atomic write, into the destination's folder, made where the task runs."""
    os.makedirs(os.path.dirname(dst), exist_ok=True)
    write_atomic(dst, data, force)


def _summary(found: int, results: list[dict], seconds: float) -> dict:
    """What a run did: `files` found, `coded`, `skipped` (their output was there), `failed`
    ([{input, code, message}], in path order), `bytes_in` and `bytes_out` of the files coded,
    and the run's wall-clock `seconds`, planning included."""
    done = [r for r in results if "output" in r]
    return {"files": found, "coded": len(done), "skipped": found - len(results),
            "failed": [r for r in results if "output" not in r],
            "bytes_in": sum(r["bytes_in"] for r in done),
            "bytes_out": sum(r["bytes_out"] for r in done),
            "seconds": round(seconds, 3)}
