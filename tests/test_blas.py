"""MKL's GEMMs are pinned when the package is imported (codec/blas.py), because decoded pixels
must not depend on the thread count or the CPU. Each case runs in a fresh interpreter: MKL takes
its mode once per process."""

import subprocess
import sys

import pytest

from flowcodec_cli.codec import blas

pytestmark = pytest.mark.skipif(blas.mkl_mode() is None, reason="this torch build has no MKL")


def _run(script: str, **env: str) -> subprocess.CompletedProcess:
    import os
    environment = {k: v for k, v in os.environ.items() if k != "MKL_CBWR"} | env
    return subprocess.run([sys.executable, "-W", "always", "-c", script], env=environment,
                          capture_output=True, text=True, check=True)


def test_importing_the_package_pins_mkl_to_avx2_strict():
    out = _run("import flowcodec_cli, torch; from flowcodec_cli.codec import blas; "
               "torch.ones(64, 64) @ torch.ones(64, 64); print(blas.mkl_mode(), blas.check())")
    assert out.stdout.split() == [str(0x1000A), "True"]


def test_a_mode_the_user_chose_is_kept():
    out = _run("import flowcodec_cli; from flowcodec_cli.codec import blas; "
               "print(blas.mkl_mode(), blas.check())", MKL_CBWR="COMPATIBLE")
    mode, ok = out.stdout.split()
    assert int(mode) != 0x1000A and ok == "True"


def test_mkl_used_before_the_import_is_warned_about_once():
    script = ("import torch; torch.ones(64, 64) @ torch.ones(64, 64); "
              "import flowcodec_cli; from flowcodec_cli.codec import blas; "
              "print(blas.check(), blas.check())")
    out = _run(script)
    assert out.stdout.split() == ["False", "False"]
    assert out.stderr.count("may differ with the thread count") == 1


def test_flowcodec_train_releases_the_pin_before_mkl_starts():
    script = ("import flowcodec_cli, torch; from flowcodec_cli.codec import blas; "
              "from flowcodec_cli.cli import main\n"
              "try:\n    main(['train', '--help'])\nexcept SystemExit:\n    pass\n"
              "torch.ones(64, 64) @ torch.ones(64, 64); print(blas.mkl_mode())")
    assert int(_run(script).stdout.split()[-1]) != 0x1000A


def test_unpin_leaves_a_started_mkl_and_its_workers_pinned():
    script = ("import os, flowcodec_cli, torch; from flowcodec_cli.codec import blas; "
              "torch.ones(64, 64) @ torch.ones(64, 64); blas.unpin(); "
              "print(blas.mkl_mode(), os.environ['MKL_CBWR'])")
    assert _run(script).stdout.split() == [str(0x1000A), blas.BRANCH]
