"""Where a bench ran: machine, library versions and code version, recorded in every report so
that a figure can be traced to what produced it (timings mean nothing without the CPU)."""

from __future__ import annotations

import datetime as _dt
import os
import platform
import subprocess
from pathlib import Path

# The distributions whose versions can change a figure (the bytes, the metrics or the plot).
LIBRARIES = ("torch", "numpy", "pillow", "imagecodecs", "pytorch-msssim", "constriction",
             "ssimulacra2", "scipy", "matplotlib", "flowcodec-cli")


def library_versions() -> dict[str, str | None]:
    """Installed version of each of LIBRARIES, None where one is not installed."""
    from importlib import metadata
    versions = {}
    for dist in LIBRARIES:
        try:
            versions[dist] = metadata.version(dist)
        except metadata.PackageNotFoundError:
            versions[dist] = None
    return versions


def cpu_model() -> str:
    """The CPU's marketing name (from /proc/cpuinfo on Linux), else what platform knows."""
    try:
        with open("/proc/cpuinfo", encoding="utf-8", errors="replace") as f:
            for line in f:
                if line.lower().startswith(("model name", "hardware", "processor\t: ")):
                    value = line.split(":", 1)[1].strip()
                    if value and not value.isdigit():
                        return value
    except OSError:
        pass
    return platform.processor() or platform.machine()


def git_state() -> dict:
    """Commit and dirtiness of the source tree this package runs from; None for each when it is
    not a git checkout (an installed wheel) or git is missing."""
    root = Path(__file__).resolve().parents[4]

    def git(*args: str) -> str | None:
        try:
            out = subprocess.run(["git", "-C", str(root), *args], capture_output=True, text=True,
                                 timeout=10, check=True)
        except (OSError, subprocess.SubprocessError):
            return None
        return out.stdout.strip()

    commit = git("rev-parse", "HEAD")
    dirty = None
    if commit:
        status = git("status", "--porcelain", "--untracked-files=no")
        dirty = bool(status) if status is not None else None
    return {"commit": commit, "dirty": dirty}


def environment(device: str, threads: int | None) -> dict:
    """The `environment` section of bench.json and stereo.json. `mkl_branch` is the kernel
    branch coding pinned (codec/blas.py): it sets both the speed and which pixels come out."""
    import torch
    from flowcodec_cli.codec import blas
    return {
        "date": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
        "python": platform.python_version(),
        "platform": platform.platform(),
        "cpu": cpu_model(),
        "cpu_count": os.cpu_count(),
        "torch": torch.__version__,
        "torch_threads": torch.get_num_threads(),
        "threads_option": threads,
        "mkl_branch": blas.branch(),
        "device": device,
        "cuda_device": torch.cuda.get_device_name(0) if device == "cuda" else None,
        "libraries": library_versions(),
        "git": git_state(),
    }
