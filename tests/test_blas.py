"""MKL's GEMMs are pinned when the package is imported (codec/blas.py), because decoded pixels
must not depend on the thread count. Each case runs in a fresh interpreter: MKL takes its mode
once per process."""

import os
import subprocess
import sys

import pytest

from flowcodec_cli.codec import blas

needs_mkl = pytest.mark.skipif(blas.mkl_mode() is None, reason="this torch build has no MKL")
PINNED = blas.BRANCH_CODES[blas.best_branch()]


def _run(script: str, **env: str) -> subprocess.CompletedProcess:
    environment = {k: v for k, v in os.environ.items() if k != "MKL_CBWR"} | env
    return subprocess.run([sys.executable, "-W", "always", "-c", script], env=environment,
                          capture_output=True, text=True, check=True)


@needs_mkl
def test_importing_the_package_pins_mkl_to_the_best_strict_branch():
    out = _run("import flowcodec_cli, torch; from flowcodec_cli.codec import blas; "
               "torch.ones(64, 64) @ torch.ones(64, 64); print(blas.mkl_mode(), blas.check())")
    assert out.stdout.split() == [str(PINNED), "True"]


@needs_mkl
def test_a_mode_the_user_chose_is_kept():
    out = _run("import flowcodec_cli; from flowcodec_cli.codec import blas; "
               "print(blas.mkl_mode(), blas.check())", MKL_CBWR="COMPATIBLE")
    mode, ok = out.stdout.split()
    assert int(mode) not in blas.BRANCH_CODES.values() and ok == "True"


@needs_mkl
def test_mkl_used_before_the_import_is_warned_about_once():
    script = ("import torch; torch.ones(64, 64) @ torch.ones(64, 64); "
              "import flowcodec_cli; from flowcodec_cli.codec import blas; "
              "print(blas.check(), blas.check())")
    out = _run(script)
    assert out.stdout.split() == ["False", "False"]
    assert out.stderr.count("may differ with the thread count") == 1


@needs_mkl
def test_flowcodec_train_releases_the_pin_before_mkl_starts():
    script = ("import flowcodec_cli, torch; from flowcodec_cli.codec import blas; "
              "from flowcodec_cli.cli import main\n"
              "try:\n    main(['train', '--help'])\nexcept SystemExit:\n    pass\n"
              "torch.ones(64, 64) @ torch.ones(64, 64); print(blas.mkl_mode())")
    assert int(_run(script).stdout.split()[-1]) not in blas.BRANCH_CODES.values()


@needs_mkl
def test_unpin_leaves_a_started_mkl_and_its_workers_pinned():
    script = ("import os, flowcodec_cli, torch; from flowcodec_cli.codec import blas; "
              "torch.ones(64, 64) @ torch.ones(64, 64); blas.unpin(); "
              "print(blas.mkl_mode(), os.environ['MKL_CBWR'])")
    assert _run(script).stdout.split() == [str(PINNED), blas.best_branch()]


@pytest.mark.parametrize("vendor, flags, expected", [
    ("GenuineIntel", "fpu avx2 avx512f avx512cd avx512bw avx512dq avx512vl", blas.AVX512),
    ("GenuineIntel", "fpu avx2 avx512f", blas.AVX2),            # not every subset MKL needs
    ("AuthenticAMD", "fpu avx2 avx512f avx512cd avx512bw avx512dq avx512vl", blas.AVX2),
    ("GenuineIntel", "fpu avx2", blas.AVX2),
])
def test_the_branch_follows_the_cpu(tmp_path, vendor, flags, expected):
    cpuinfo = tmp_path / "cpuinfo"
    cpuinfo.write_text(f"processor\t: 0\nvendor_id\t: {vendor}\nflags\t\t: {flags}\n\n"
                       f"processor\t: 1\nvendor_id\t: {vendor}\nflags\t\t: fpu\n")
    assert blas.best_branch(str(cpuinfo)) == expected
    assert blas.best_branch(str(tmp_path / "missing")) == blas.AVX2
