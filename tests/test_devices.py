"""A file decodes on either device: the probability tables are built on the CPU in both the
encoder and the decoder (`--device` moves the transforms only), so a CPU-made file decodes on a
GPU and a GPU-made one on a CPU; the pixels differ from the other device's by float rounding.

Skipped without CUDA. What these assert was measured on a lent H200 (scripts/gpu_train.sh's
cross-device part, docs/flow.md "On a GPU"): 61.8 dB between a CPU-made file's CPU and GPU
decodes (1 pixel level at most), 56.0 dB between a GPU-made file's GPU decode and the CPU-made
file's CPU decode; the 50 dB floor here leaves room for other GPUs."""

from pathlib import Path

import numpy as np
import pytest
import torch

import flowcodec_cli

pytestmark = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
PARROTS = Path(__file__).parent / "data" / "parrots_256x192.png"


def psnr(a, b) -> float:
    err = np.mean((np.asarray(a, dtype=float) - np.asarray(b, dtype=float)) ** 2)
    return float("inf") if err == 0 else 10 * np.log10(255 ** 2 / err)


def test_a_cpu_file_decodes_on_the_gpu_and_a_gpu_file_on_the_cpu():
    on_cpu = flowcodec_cli.encode(str(PARROTS), beta=0.002)
    on_gpu = flowcodec_cli.encode(str(PARROTS), beta=0.002, device="cuda")
    reference = flowcodec_cli.decode(on_cpu)
    assert psnr(flowcodec_cli.decode(on_cpu, device="cuda"), reference) > 50
    gpu_file_on_cpu = flowcodec_cli.decode(on_gpu)
    assert psnr(gpu_file_on_cpu, flowcodec_cli.decode(on_gpu, device="cuda")) > 50
    assert psnr(gpu_file_on_cpu, reference) > 50
