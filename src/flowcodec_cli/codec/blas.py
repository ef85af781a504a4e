"""Pins the BLAS's numerics, so that decoded pixels depend neither on the thread count nor on the
CPU's newest instructions.

Why: the coding path's convolutions are GEMMs in Intel MKL (pipeline.py keeps oneDNN off). MKL
picks its kernels by CPU (AVX-512 on one Xeon, AVX2 or SSE on another) and splits a GEMM's work
by thread count, and both change float32 rounding. Measured on an Intel Xeon (AVX-512) with MKL's
default mode: the flow's decode of a 768×512 image moved 8 pixel values by one level between 1
and 2 threads, and the hyperprior goldens decoded to other pixels than on an AMD EPYC. The
tables were never affected (they are float64 and snapped, loaded.py); the pixels were.

MKL's conditional numerical reproducibility in strict mode fixes the kernel branch and makes
?gemm bitwise independent of the thread count. The branch is the fastest that is reproducible:
"AVX512,STRICT" on an Intel CPU with AVX-512, else "AVX2,STRICT" (what x86-64 CPUs have had
since 2013-2015). So the pixels are the same for any thread count on every machine, and the same
on every machine of one branch; the two branches differ from each other by one level in a few
pixels (tests/golden holds the digests of both, and checks the AVX2 ones on any CPU). Why not
AVX2 everywhere: on that Xeon it made a Kodak-size flow decode 0.3-0.5 s slower on 2 threads
(about 1.2-1.6 s against 0.85-0.95 s, noisy), and the decode has a 1 s budget.

MKL reads the mode once, at its first call. So it is set when the package is imported, before
any torch work (`flowcodec` and every worker it starts do so); a program that used torch's BLAS
before importing flowcodec_cli keeps MKL's default mode, and `check()` warns it once. A MKL_CBWR
the user set is kept; `flowcodec train` releases the pin (`unpin`); and builds of torch without
MKL (aarch64, macOS) have nothing to pin. MKL_ENABLE_INSTRUCTIONS, if the user sets it, overrides
the branch (measured: with AVX512 the flow golden decodes to other pixels than pinned to AVX2,
though MKL reports the pin in place), so it is left to those who set it.
"""

from __future__ import annotations

import ctypes
import functools
import os
import warnings

AVX2, AVX512 = "AVX2,STRICT", "AVX512,STRICT"
#: the branches as mkl_cbwr_get(MKL_CBWR_ALL) reports them: MKL_CBWR_AVX2 or _AVX512 | _STRICT
BRANCH_CODES = {AVX2: 10 | 0x10000, AVX512: 12 | 0x10000}
#: what MKL's AVX512 branch needs (Skylake-SP's AVX-512 subsets), as /proc/cpuinfo names them
_AVX512_FLAGS = {"avx512f", "avx512cd", "avx512bw", "avx512dq", "avx512vl"}
_ALL, _AUTO = -1, 2     # MKL_CBWR_ALL, MKL_CBWR_AUTO
_USER_SET = "MKL_CBWR" in os.environ


def pin() -> None:
    """Ask MKL for the pinned mode (it takes effect at MKL's first call in this process)."""
    os.environ.setdefault("MKL_CBWR", best_branch())


def best_branch(cpuinfo: str = "/proc/cpuinfo") -> str:
    """AVX512 on an Intel CPU with MKL's AVX-512 subsets, else AVX2 (also where the CPU cannot
    be read: MKL's CNR documentation promises its branches on Intel CPUs; AVX2 is the one other
    x86-64 CPUs are known to take)."""
    try:
        with open(cpuinfo, encoding="utf-8", errors="replace") as f:
            head = {}
            for line in f:
                key, _, value = line.partition(":")
                head.setdefault(key.strip(), value.split())
                if "flags" in head and "vendor_id" in head:
                    break
    except OSError:
        return AVX2
    intel = head.get("vendor_id") == ["GenuineIntel"]
    return AVX512 if intel and _AVX512_FLAGS <= set(head.get("flags", ())) else AVX2


def branch() -> str | None:
    """The pinned branch this process runs (AVX2 or AVX512), or None (no MKL, or not pinned)."""
    mode = mkl_mode()
    return next((name for name, code in BRANCH_CODES.items() if code == mode), None)


def unpin() -> None:
    """For training, which needs speed and not bit-identical pixels: MKL's fastest kernels for
    this CPU (the AVX2 pin cost 12% of a flow training step on one thread of an AVX-512 Xeon).
    `flowcodec train` calls it first thing. It acts only while MKL has not started (importing
    the models starts it: ATen's vectorized math is MKL's VML), and only then tells child
    processes (torchrun's ranks) through the environment: a process that already codes, pinned,
    must not hand its workers another mode. A MKL_CBWR the user set is kept."""
    setter = None if _USER_SET else _mkl_function("mkl_serv_cbwr_set")
    if setter is not None and setter(_AUTO) == 0:
        os.environ["MKL_CBWR"] = "AUTO"


def mkl_mode() -> int | None:
    """MKL's reproducibility setting in this process, or None when torch has no MKL."""
    getter = _mkl_function("mkl_serv_cbwr_get")
    return None if getter is None else getter(_ALL)


def _mkl_function(name: str):
    """mkl_cbwr_get or _set (int → int) of the MKL linked into torch, or None without MKL."""
    import torch  # only here: importing this module (as the package does) must not load torch
    library = os.path.join(os.path.dirname(torch.__file__), "lib", "libtorch_cpu.so")
    try:
        function = getattr(ctypes.CDLL(library), name)
    except (OSError, AttributeError):
        return None
    function.restype, function.argtypes = ctypes.c_int, [ctypes.c_int]
    return function


@functools.cache
def check() -> bool:
    """True when the GEMMs are pinned (or cannot be: no MKL; or the user chose MKL_CBWR); warns
    once otherwise, since pixels may then differ with the thread count."""
    if mkl_mode() is None or branch() is not None or _USER_SET:
        return True
    warnings.warn("flowcodec: MKL was used before flowcodec_cli was imported, so decoded pixels "
                  f"may differ with the thread count; import it first or set MKL_CBWR={AVX2}",
                  RuntimeWarning, stacklevel=3)
    return False
