"""`flowcodec bench` on one small image: report structure, rates, cache, reports, exit codes.

One real run (2 β of our model, WebP at 2 settings, the 256x192 parrots image) is shared by the
module; every later run reads its points from the cache, so the whole file stays fast.
"""

from __future__ import annotations

import dataclasses
import importlib.util
import json
import shutil
import sys
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner
from PIL import Image

from flowcodec_cli.evaluation import bench
from flowcodec_cli.evaluation.bench import measure as bench_measure
from flowcodec_cli import cli
from flowcodec_cli import codec
from flowcodec_cli import zoo

HAS_SSIMULACRA2 = importlib.util.find_spec("ssimulacra2") is not None
ROOT = Path(__file__).resolve().parents[1]
PARROTS = ROOT / "tests" / "data" / "parrots_256x192.png"
BETAS = (0.004, 0.02)
WEBP = (5.0, 60.0)


def bench_kwargs(tmp: Path, **extra) -> dict:
    kwargs = dict(models=["hyperprior"], betas=BETAS, codecs=["webp"],
                  settings={"webp": WEBP}, cache_dir=tmp / "cache",
                  report_dir=tmp / "report", quiet=True, analysis_images=0)
    kwargs.update(extra)
    return kwargs


@pytest.fixture(scope="module")
def work(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("bench")
    images = tmp / "images"
    images.mkdir()
    shutil.copy(PARROTS, images / PARROTS.name)
    result = bench.run(images, **bench_kwargs(tmp, analysis_images=1))
    return tmp, images, result


def test_json_structure(work):
    tmp, _, result = work
    assert not result.errors
    doc = json.loads((tmp / "report" / "bench.json").read_text())
    assert doc == json.loads(json.dumps(result.document))
    assert doc["format"] == bench.FORMAT
    for key in ("format", "environment", "config", "images", "points", "curves", "bd", "errors"):
        assert key in doc
    env = doc["environment"]
    for key in ("torch", "torch_threads", "mkl_branch", "cpu", "date", "git"):
        assert key in env
    assert doc["images"][0]["name"] == PARROTS.name and len(doc["images"][0]["sha256"]) == 64
    assert doc["config"]["jobs"] == 4 and doc["config"]["jobs_run"] == 4

    assert [a["beta"] for a in doc["bound_analysis"]] == list(BETAS)  # re-encodes: not cached
    assert doc["invertibility"] == []  # only invertible models (the flow codec) get a figure

    assert set(doc["curves"]) == {"hyperprior", "webp"}
    model = doc["curves"]["hyperprior"]
    assert sorted(r["setting"] for r in model["points"]) == sorted(BETAS)
    network_beta = codec.LoadedCodec.get("hyperprior").network_beta
    assert [r["network_beta"] for r in model["points"]] == [network_beta(r["setting"])
                                                           for r in model["points"]]
    assert model["bpp"] == sorted(model["bpp"])
    assert sorted(r["setting"] for r in doc["curves"]["webp"]["points"]) == sorted(WEBP)
    for curve in doc["curves"].values():
        for row in curve["points"]:
            assert row["bpp"] > 0 and row["psnr"] > 0 and 0 < row["ms_ssim"] <= 1
            assert (row["ssimulacra2"] < 100) if HAS_SSIMULACRA2 else row["ssimulacra2"] is None
        assert curve["speed"]["peak_rss_mib"] > 0

    points = doc["points"]
    assert len(points) == 4
    for p in points:
        for key in ("codec", "setting", "image", "bpp_file", "psnr", "ms_ssim", "ssimulacra2",
                    "encode_s", "decode_s", "encode_mp_s", "decode_mp_s", "warmup",
                    "rss_after_mib"):
            assert key in p, key
    for name in ("hyperprior", "webp"):
        assert sum(p["warmup"] for p in points if p["codec"] == name) == 1
    for p in (p for p in points if p["kind"] == "model"):
        assert p["bpp_file"] >= p["bpp_payload"] > 0
        assert p["bpp_estimated"] > 0
        assert p["payload_over_estimate"] == pytest.approx(p["payload_bits"] / p["estimated_bits"])
        assert p["bytes"] * 8 == pytest.approx(p["bpp_file"] * p["width"] * p["height"])


def test_bd_against_every_reference(work):
    _, _, result = work
    doc = result.document
    refs = {(e["reference_group"], e["reference"]) for e in doc["bd"]}
    assert ("measured in this run", "webp") in refs
    for key in ("vtm", "bpg444", "av1", "jpeg", "webp", "bmshj2018-hyperprior"):
        assert ("published", key) in refs
    for entry in doc["bd"]:
        assert entry["curve"] == "hyperprior"
        for metric in ("psnr", "ms_ssim_db", "ssimulacra2"):
            bd = entry[metric]
            assert {"bd_rate_pct", "bd_quality_db", "method"} <= set(bd)
            if bd["method"] is not None:
                assert bd["method"] == "pchip"  # 2 points: too few for the cubic fit
        # no shipped curve has SSIMULACRA2; the WebP measured in the run has it with the extra
        measured_here = entry["reference"] == "webp" and entry["reference_group"] != "published"
        has_figure = entry["ssimulacra2"]["method"] is not None
        assert has_figure == (HAS_SSIMULACRA2 and measured_here)


def test_bd_pair_uses_cubic_with_enough_points():
    ref = [(0.25, 30.0), (0.5, 33.0), (1.0, 36.0), (2.0, 39.0)]
    half = [(b / 2, q) for b, q in ref]
    result = bench.bd_pair(half, ref, "cubic")
    assert result["method"] == "cubic"
    assert result["bd_rate_pct"] == pytest.approx(-50.0)
    assert bench.bd_pair(half[:2], ref, "cubic")["method"] == "pchip"
    assert bench.bd_pair(None, ref, "cubic")["bd_rate_pct"] is None


def test_reports_written(work):
    tmp, _, result = work
    md = (tmp / "report" / "results.md").read_text()
    for text in ("## Rate-distortion", "## Bjøntegaard deltas", "## Speed and memory",
                 "payload vs estimate: hyperprior β=0.004", "VTM", "peak RSS", "SSIMULACRA2"):
        assert text in md, text
    assert ("BD-rate (SSIMULACRA2)" in md) == HAS_SSIMULACRA2
    png = tmp / "report" / "rd.png"
    if importlib.util.find_spec("matplotlib") is None:
        assert png not in result.written
    else:
        assert png in result.written
        assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_cache_skips_encoding(work, monkeypatch):
    tmp, images, first = work
    calls = {"model": 0, "classical": 0}
    real_encode, real_classical = codec.encode, bench_measure.measure_classical

    def counting_encode(*args, **kwargs):
        calls["model"] += 1
        return real_encode(*args, **kwargs)

    def counting_classical(*args, **kwargs):
        calls["classical"] += 1
        return real_classical(*args, **kwargs)

    monkeypatch.setattr(codec, "encode", counting_encode)
    monkeypatch.setattr(bench_measure, "measure_classical", counting_classical)
    again = bench.run(images, **bench_kwargs(tmp, report_dir=tmp / "report2"))
    assert calls == {"model": 0, "classical": 0}
    assert again.document["config"]["jobs_cached"] == 4
    assert again.document["curves"]["hyperprior"]["points"] == \
        first.document["curves"]["hyperprior"]["points"]

    # A new β is not in the cache: exactly that one image is encoded.
    bench.run(images, **bench_kwargs(tmp, betas=BETAS + (0.01,), report_dir=tmp / "report3"))
    assert calls == {"model": 1, "classical": 0}


def test_failing_job_is_reported_and_the_run_goes_on(work, monkeypatch, capsys):
    tmp, images, _ = work
    real_classical = bench_measure.measure_classical

    def failing_at_60(codec_, setting, image):
        if setting == 60.0:
            raise RuntimeError("encoder crashed")
        return real_classical(codec_, setting, image)

    monkeypatch.setattr(bench_measure, "measure_classical", failing_at_60)
    result = bench.run(images, **bench_kwargs(tmp, cache_dir=tmp / "cache-fail",
                                              betas=BETAS[:1], report_dir=tmp / "report-fail"))
    what = f"{images / PARROTS.name}: webp at quality 60"
    assert [failed for failed, _ in result.errors] == [what]
    assert f"{what}: encoder crashed" in capsys.readouterr().err
    assert result.document["errors"] == [f"{what}: encoder crashed"]
    kept = {(p["codec"], p["setting"]) for p in result.document["points"]}
    assert kept == {("hyperprior", BETAS[0]), ("webp", WEBP[0])}


def test_quality_carries_ssimulacra2():
    photo = np.asarray(Image.open(PARROTS).convert("RGB"))
    worse = photo // 8 * 8  # posterized: a visible distortion
    same, posterized = bench_measure.quality(photo, photo), bench_measure.quality(photo, worse)
    if HAS_SSIMULACRA2:
        assert same["ssimulacra2"] == pytest.approx(100.0) and posterized["ssimulacra2"] < 90
    else:
        assert same["ssimulacra2"] is None and posterized["ssimulacra2"] is None


def test_without_ssimulacra2_the_run_goes_on_with_one_notice(work, monkeypatch, capsys):
    tmp, images, _ = work
    monkeypatch.setitem(sys.modules, "ssimulacra2", None)  # makes `import ssimulacra2` fail
    result = bench.run(images, **bench_kwargs(tmp, models=[], cache_dir=tmp / "cache-no-s2",
                                              report_dir=tmp / "report-no-s2"))
    assert not result.errors and result.document["config"]["jobs_run"] == 2
    assert all(p["ssimulacra2"] is None for p in result.document["points"])
    assert result.document["curves"]["webp"]["ssimulacra2"] == [None, None]
    err = capsys.readouterr().err
    assert err.count("ssimulacra2 package is not installed") == 1, err
    assert "flowcodec-cli[metrics]" in err


def test_points_cached_without_ssimulacra2_read_as_none(work, tmp_path):
    """Cache entries written before SSIMULACRA2 was measured have no such key: n/a, no error."""
    tmp, images, _ = work
    cache = tmp_path / "cache"
    shutil.copytree(tmp / "cache", cache)
    for path in cache.rglob("*.json"):
        entry = json.loads(path.read_text())
        entry["point"].pop("ssimulacra2", None)
        path.write_text(json.dumps(entry))
    result = bench.run(images, **bench_kwargs(tmp, cache_dir=cache, report_dir=tmp_path / "r"))
    assert not result.errors and result.document["config"]["jobs_cached"] == 4
    for curve in result.document["curves"].values():
        assert curve["ssimulacra2"] == [None, None]
    assert all(e["ssimulacra2"]["bd_rate_pct"] is None for e in result.document["bd"])
    assert "BD-rate (SSIMULACRA2)" not in (tmp_path / "r" / "results.md").read_text()


def test_other_weights_get_other_cache_entries(monkeypatch):
    entry = zoo.REGISTRY["hyperprior"]
    original = bench.plan_models(["hyperprior"], BETAS, "cpu")[0]
    other_sha = "0" * 64
    monkeypatch.setattr(zoo, "sha256_file", lambda path: other_sha)
    monkeypatch.setitem(zoo.REGISTRY, "hyperprior", dataclasses.replace(entry, sha256=other_sha))
    changed = bench.plan_models(["hyperprior"], BETAS, "cpu")[0]
    assert changed.cache_id != original.cache_id
    assert other_sha[:16] in changed.cache_id


def test_cli_skips_unreadable_image(work, tmp_path):
    tmp, images, _ = work
    mixed = tmp_path / "images"
    shutil.copytree(images, mixed)
    (mixed / "broken.png").write_bytes(b"not an image at all")
    report = tmp_path / "report"
    result = CliRunner().invoke(cli.main, [
        "bench", str(mixed), "--models", "hyperprior", "--betas", ",".join(map(str, BETAS)),
        "--codecs", "webp", "--settings", "webp=5,60", "--cache", str(tmp / "cache"),
        "--report-dir", str(report), "--json", str(tmp_path / "out.json"), "--quiet"])
    assert result.exit_code == cli.EXIT_INPUT, (result.output, result.exception)
    assert "broken.png" in result.stderr
    doc = json.loads((tmp_path / "out.json").read_text())
    assert [im["name"] for im in doc["images"]] == [PARROTS.name]
    assert doc["config"]["jobs_cached"] == 4
    assert (report / "results.md").is_file()


@pytest.mark.parametrize("args", [
    ["--models", "no-such-model"],
    ["--betas", "0.00001"],          # outside the model's β range
    ["--betas", "abc"],
    ["--codecs", "no-such-codec"],
    ["--codecs", "webp", "--no-classical"],
    ["--codecs", "webp", "--settings", "jpeg420=50"],
    ["--images", "0"],
    ["--threads", "0"],
])
def test_usage_errors_exit_2(args, tmp_path):
    shutil.copy(PARROTS, tmp_path / PARROTS.name)
    result = CliRunner().invoke(cli.main, ["bench", str(tmp_path), "--cache",
                                           str(tmp_path / "c"), "--report-dir",
                                           str(tmp_path / "r"), "--quiet", *args])
    assert result.exit_code == cli.EXIT_USAGE, (result.output, result.exception)
    assert result.stderr.startswith("flowcodec: ")
    assert "Traceback" not in result.output
    assert not (tmp_path / "r").exists()


def test_directory_without_images_is_a_usage_error(tmp_path):
    result = CliRunner().invoke(cli.main, ["bench", str(tmp_path), "--quiet"])
    assert result.exit_code == cli.EXIT_USAGE
    missing = CliRunner().invoke(cli.main, ["bench", str(tmp_path / "nope"), "--quiet"])
    assert missing.exit_code == cli.EXIT_USAGE


def test_default_betas():
    betas = bench.DEFAULT_BETAS
    assert len(betas) == 8 and list(betas) == sorted(betas)
    assert {0.0005, 0.02, 0.05} <= set(betas)


def test_default_betas_follow_each_models_range():
    flow = bench.default_betas({"beta_min": 0.0001, "beta_max": 0.05})
    assert flow[0] == 0.0001 and flow[-1] == 0.05 and list(flow) == sorted(set(flow))
    assert set(bench.DEFAULT_BETAS) <= set(flow)
    narrow = bench.default_betas({"beta_min": 0.001, "beta_max": 0.02})
    assert narrow == tuple(b for b in bench.DEFAULT_BETAS if 0.001 <= b <= 0.02)
