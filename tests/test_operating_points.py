"""The map from the requested β to the β the network runs at: the runtime map
(codec/operating_points.py) and its measurement (training/operating_points.py)."""

from __future__ import annotations

import json
import math
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch
from click.testing import CliRunner
from safetensors import safe_open

from flowcodec_cli import cli
from flowcodec_cli import codec
from flowcodec_cli.codec import fcx
from flowcodec_cli.codec import operating_points
from flowcodec_cli import zoo
from flowcodec_cli.training import operating_points as fitting
from flowcodec_cli.models.hyperprior import HyperpriorCodec, HyperpriorConfig
from flowcodec_cli.codec.operating_points import OperatingPoints

ROOT = Path(__file__).resolve().parents[1]
PARROTS = ROOT / "tests" / "data" / "parrots_256x192.png"
KNOTS = ((0.001, 0.0012), (0.004, 0.006), (0.016, 0.024))


def test_without_knots_the_network_runs_at_the_requested_beta():
    identity = OperatingPoints((), 0.0003, 0.08)
    for beta in (0.0003, 0.00123, 0.02, 0.08):
        assert identity(beta) == beta


def test_knots_are_hit_and_the_map_is_monotone_and_stays_in_range():
    points = OperatingPoints(KNOTS, 0.0003, 0.03)
    for beta, network in KNOTS:
        assert points(beta) == network
    betas = np.geomspace(0.0003, 0.03, 400)
    mapped = [points(b) for b in betas]
    assert all(a <= b for a, b in zip(mapped, mapped[1:]))
    assert min(mapped) >= 0.0003 and max(mapped) == 0.03  # 0.03 · 1.5 is clamped
    # beyond the end knots the ratio is held
    assert points(0.0005) == pytest.approx(0.0005 * 1.2, rel=1e-3)
    # between knots the log-ratio is interpolated: 0.002 is halfway (in log β) from 0.001 to 0.004
    assert points(0.002) == pytest.approx(0.002 * math.sqrt(1.2 * 1.5), rel=1e-3)


def test_best_network_beta_finds_the_minimum_of_the_real_lagrangian():
    # A curve with a known optimum: R(β′) = -log2(β′)/3, D(β′) = c·β′. Then
    # d/dβ′ (D + β R) = c − β/(3 ln2 β′) = 0 at β′ = β / (3 c ln 2).
    c = 10.0
    grid = fitting.geometric(0.0003, 0.08, fitting.GRID_STEPS_PER_OCTAVE)
    curve = [(-math.log2(b) / 3, c * b) for b in grid]
    for beta in (0.01, 0.05, 0.3):
        expected = beta / (3 * c * math.log(2))
        assert fitting.best_network_beta(grid, curve, beta) == pytest.approx(expected, rel=0.02)
    # an optimum beyond the grid stops at its end
    assert fitting.best_network_beta(grid, curve, 1e-6) == grid[0]


def test_geometric_grid_ends_exactly_at_both_limits():
    grid = fitting.geometric(0.0003, 0.08, 6)
    assert grid[0] == 0.0003 and grid[-1] == 0.08
    ratios = np.diff(np.log2(grid))
    assert np.all(ratios > 0) and np.all(ratios <= 1 / 6 + 1e-12)


def test_measure_gives_monotone_knots_inside_the_range():
    torch.manual_seed(0)
    model = HyperpriorCodec(HyperpriorConfig(channels=8, latent_channels=8, hyper_channels=4,
                                             beta_min=0.001, beta_max=0.016)).eval()
    images = [torch.rand(1, 3, 64, 64) for _ in range(2)]
    result = fitting.measure(model, images)
    knots = result["knots"]
    assert [b for b, _ in knots] == [0.001, 0.001414, 0.002, 0.002828, 0.004, 0.005657, 0.008,
                                     0.01131, 0.016]
    networks = [p for _, p in knots]
    assert all(0.001 <= p <= 0.016 for p in networks)
    assert networks == sorted(networks)
    assert len(result["grid"]) == 25  # 6 per octave over 4 octaves, both ends included


def test_write_keeps_the_tensors_and_read_returns_the_knots(tmp_path):
    path = tmp_path / "w.safetensors"
    shutil.copy(zoo.weights_path("dsc"), path)  # a weights file without knots
    assert operating_points.read(path).knots == ()
    sha = fitting.write(path, list(KNOTS))
    assert sha == zoo.sha256_file(path) != zoo.REGISTRY["dsc"].sha256
    assert operating_points.read(path).knots == KNOTS
    with safe_open(str(zoo.weights_path("dsc")), framework="pt") as old, \
            safe_open(str(path), framework="pt") as new:
        assert set(old.keys()) == set(new.keys())
        for key in old.keys():
            assert torch.equal(old.get_tensor(key), new.get_tensor(key))
        assert {k: v for k, v in new.metadata().items() if k != operating_points.METADATA_KEY} \
            == old.metadata()


def test_encode_writes_the_network_beta_in_the_header_and_reports_both(tmp_path):
    beta = 0.02
    expected = codec.LoadedCodec.get(zoo.DEFAULT_MODEL).network_beta(beta)
    out = tmp_path / "p.fcx"
    result = CliRunner().invoke(cli.main, ["encode", str(PARROTS), "-o", str(out), "--beta",
                                           str(beta), "--json"])
    assert result.exit_code == 0, result.output
    record = json.loads(result.stdout.splitlines()[-1])
    assert record["beta"] == beta and record["network_beta"] == expected
    assert fcx.unpack(out.read_bytes()).header.beta == expected


@pytest.mark.parametrize("model", ["hyperprior", "flow"])
def test_the_shipped_models_have_measured_operating_points(model):
    points = codec.LoadedCodec.get(model).network_beta
    assert len(points.knots) >= 10
    betas = [b for b, _ in points.knots]
    assert betas[0] == points.beta_min and betas[-1] == points.beta_max
