"""analysis.py: reverse water-filling against closed forms, the gap decomposition on a real
image, and the `flowcodec analyze` command."""

import json
import math
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner

from flowcodec_cli import cli, codec
from flowcodec_cli.codec import fcx
from flowcodec_cli.evaluation import analysis
from flowcodec_cli.files import images

SAMPLE = Path(__file__).parent / "data" / "parrots_256x192.png"
BETA = 0.005


# --- reverse water-filling ---------------------------------------------------------------------


@pytest.mark.parametrize("s,d", [(1.0, 0.25), (4.0, 1.0), (10.0, 9.99), (3.0, 1e-4)])
def test_single_gaussian(s, d):
    assert analysis.reverse_water_filling(np.array([s]), d) == pytest.approx(
        0.5 * math.log2(s / d), rel=1e-9, abs=1e-12)


def test_two_components_both_above_the_water_level():
    s1, s2, d = 4.0, 9.0, 2.0  # θ = D/2 = 1 < min(s1, s2)
    theta = d / 2
    expected = 0.5 * math.log2(s1 / theta) + 0.5 * math.log2(s2 / theta)
    assert analysis.reverse_water_filling(np.array([s1, s2]), d) == pytest.approx(expected, rel=1e-9)


def test_component_below_the_water_level_gets_zero_rate():
    s1, s2, d = 0.5, 8.0, 2.5  # θ = D − s1 = 2: s1 < θ < s2, so only s2 is coded
    theta = d - s1
    assert s1 < theta < s2
    expected = 0.5 * math.log2(s2 / theta)
    assert analysis.reverse_water_filling(np.array([s1, s2]), d) == pytest.approx(expected, rel=1e-9)
    # the component below the water level adds nothing: same rate as s2 alone at D − s1
    assert analysis.reverse_water_filling(np.array([s2]), theta) == pytest.approx(expected, rel=1e-9)


def test_many_components_mixed():
    variances = np.array([0.1, 0.2, 3.0, 5.0, 7.0])
    theta = 1.0
    d = 0.1 + 0.2 + 3 * theta
    expected = sum(0.5 * math.log2(v / theta) for v in (3.0, 5.0, 7.0))
    assert analysis.reverse_water_filling(variances, d) == pytest.approx(expected, rel=1e-9)


@pytest.mark.parametrize("d", [15.0, 15.0 + 1e-9, 100.0])
def test_distortion_at_or_above_total_variance_costs_nothing(d):
    assert analysis.reverse_water_filling(np.array([4.0, 5.0, 6.0]), d) == 0.0


def test_rate_decreases_with_distortion():
    variances = np.array([0.3, 1.0, 2.5, 6.0])
    rates = [analysis.reverse_water_filling(variances, d) for d in (0.5, 1.0, 2.0, 4.0, 8.0)]
    assert all(a > b for a, b in zip(rates, rates[1:]))


# --- analyze on a real image ------------------------------------------------------------------


@pytest.fixture(scope="module")
def result():
    return analysis.analyze(images.read_image(SAMPLE), BETA, "hyperprior")


def test_gaps_add_up_to_the_total(result):
    gaps = result["gaps_bpp"]
    assert set(gaps) == {"quantization", "variance_estimation", "context_mean_prediction",
                         "coding_overhead_and_z"}
    assert sum(gaps.values()) == pytest.approx(result["total_gap_bpp"], abs=1e-9)
    assert result["total_gap_bpp"] == pytest.approx(
        result["real_payload_bpp"] - result["bound_bpp"], abs=1e-9)


def test_bound_and_real_rate_are_consistent(result):
    # The Gaussian reverse water-filling rate at the latents' second moments is the most a source
    # with those variances can need (the Gaussian is the hardest to compress), not a floor: a
    # trained hyperprior, whose variances adapt per element, may code below it. For the same
    # reason rounding coded with the channel Gaussian (R_uniform) may also fall below the bound
    # when the latents are sparser than a Gaussian (it does for the 53,585-step weights), so the
    # quantization gap has no fixed sign and is not asserted.
    assert 0 < result["bound_bpp"] and 0 < result["uniform_quantization_bpp"]
    assert result["beta"] == BETA and result["model"] == "hyperprior"
    # rounding error of each latent is at most 1/2, so its mean square is at most 1/4
    assert 0 < result["latent_mse_per_element"] <= 0.25


def test_rates_are_those_of_the_file_analyze_describes(result):
    """The real rates are the file's, and the model's rates are those of the latents the file
    codes: y and z bits each match their own range-coded stream (a wrong β or other latents in
    the analysis would move the model's y bits, and z bits = estimate − y bits, away from them)."""
    picture = images.read_image(SAMPLE)
    pixels = picture.rgb.shape[0] * picture.rgb.shape[1]
    data, stats = codec.encode(picture, BETA, "hyperprior", tile=256)  # one tile, as analyze does
    z_stream, y_stream = fcx.unpack(data).streams
    assert result["network_beta"] == stats.network_beta != BETA  # the operating-point map ran
    assert result["bpp_file"] == 8 * len(data) / pixels
    assert result["real_payload_bpp"] == 8 * (len(z_stream) + len(y_stream)) / pixels
    assert result["model_bpp"] == pytest.approx(8 * len(y_stream) / pixels, rel=0.02)
    assert result["hyper_latent_bpp"] == pytest.approx(8 * len(z_stream) / pixels, rel=0.03)


def test_cli_analyze_json(result):
    run = CliRunner().invoke(cli.main, ["analyze", str(SAMPLE), "--model", "hyperprior", "--beta", str(BETA), "--json"])
    assert run.exit_code == 0, run.output
    lines = [line for line in run.stdout.splitlines() if line.strip()]
    assert len(lines) == 1
    record = json.loads(lines[0])
    assert record["image"] == str(SAMPLE)
    assert record["beta"] == BETA
    assert sum(record["gaps_bpp"].values()) == pytest.approx(record["total_gap_bpp"], abs=1e-9)
    # deterministic: the CLI gives the same numbers as the library
    assert record["bound_bpp"] == pytest.approx(result["bound_bpp"], rel=1e-12)
    assert record["real_payload_bpp"] == result["real_payload_bpp"]


def test_cli_analyze_unreadable_image_exits_3(tmp_path):
    bad = tmp_path / "not-an-image.png"
    bad.write_bytes(b"hello")
    run = CliRunner().invoke(cli.main, ["analyze", str(bad), "--beta", str(BETA), "--json"])
    assert run.exit_code == cli.EXIT_INPUT
    assert run.stdout == ""
