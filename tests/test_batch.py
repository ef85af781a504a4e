"""flowcodec_cli.batch: a folder tree coded to a mirrored tree with the command line's bytes,
resumably, one failed record per bad file; here (no client) and on a Dask LocalCluster of two
worker processes (skipped, with the reason, where the `cluster` extra is not installed)."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from click.testing import CliRunner
from PIL import Image

from flowcodec_cli import WeightsError, cli
from flowcodec_cli.batch import decode_tree, encode_tree

ROOT = Path(__file__).resolve().parents[1]
PARROTS = ROOT / "tests" / "data" / "parrots_256x192.png"
IMAGES = ("top.png", "sub/deeper/crop.png")   # the images of the tree, in path order
CODED = tuple(str(Path(name).with_suffix(".fcx")) for name in IMAGES)
JUNK = "sub/junk.png"


def run(*args):
    result = CliRunner().invoke(cli.main, [str(a) for a in args])
    assert result.exit_code == 0, (result.stderr, result.exception)


@pytest.fixture(scope="module")
def tree(tmp_path_factory) -> Path:
    """Two images at different depths, a file that is not an image, and a file that is not
    an image file by name (left alone)."""
    src = tmp_path_factory.mktemp("tree")
    (src / "sub" / "deeper").mkdir(parents=True)
    with Image.open(PARROTS) as im:
        im.save(src / "top.png")
        im.crop((64, 32, 192, 128)).save(src / "sub" / "deeper" / "crop.png")
    (src / JUNK).write_text("not an image")
    (src / "notes.txt").write_text("left alone")
    return src


@pytest.fixture(scope="module")
def by_cli(tree, tmp_path_factory) -> dict[str, bytes]:
    """Each image coded by `flowcodec encode -q 50` and decoded back by `flowcodec decode
    --threads 1` (a cluster worker's one thread; pixels do not depend on it, test_golden.py):
    relative output path → bytes."""
    out = tmp_path_factory.mktemp("cli")
    found = {}
    for name, coded in zip(IMAGES, CODED):
        fcx, png = out / Path(coded).name, out / Path(name).name
        run("encode", tree / name, "-o", fcx, "-q", "50", "--quiet")
        run("decode", fcx, "-o", png, "--threads", "1", "--quiet")
        found[coded], found[name] = fcx.read_bytes(), png.read_bytes()
    return found


def files_under(folder: Path) -> dict[str, bytes]:
    return {str(p.relative_to(folder)): p.read_bytes()
            for p in sorted(folder.rglob("*")) if p.is_file()}


def check_first_run(summary: dict, tree: Path, dst: Path, by_cli: dict) -> None:
    """Both images coded with the command line's bytes, the junk reported, nothing else."""
    coded = files_under(dst)
    assert coded == {name: by_cli[name] for name in CODED}   # no .part file, none for the junk
    assert summary["failed"] == [{"input": str(tree / JUNK), "code": 3,
                                  "message": "not a recognized image file"}]
    assert (summary["files"], summary["coded"], summary["skipped"]) == (3, 2, 0)
    assert summary["bytes_in"] == sum((tree / n).stat().st_size for n in IMAGES)
    assert summary["bytes_out"] == sum(len(data) for data in coded.values())
    assert summary["seconds"] > 0


# --- here, without Dask --------------------------------------------------------------------------

def test_encode_tree_mirrors_the_tree_with_the_clis_bytes_and_resumes(tree, by_cli, tmp_path):
    dst = tmp_path / "coded"
    check_first_run(encode_tree(tree, dst, quality=50), tree, dst, by_cli)
    again = encode_tree(tree, dst, quality=50)
    assert (again["coded"], again["skipped"], len(again["failed"])) == (0, 2, 1)
    (dst / "top.fcx").unlink()   # as if the first run had stopped before it
    assert encode_tree(tree, dst, quality=50)["coded"] == 1
    assert files_under(dst)["top.fcx"] == by_cli["top.fcx"]
    forced = encode_tree(tree, dst, quality=50, force=True)
    assert (forced["coded"], forced["skipped"]) == (2, 0)


def test_decode_tree_gives_the_clis_pngs(tree, by_cli, tmp_path):
    coded = tmp_path / "coded"
    encode_tree(tree, coded, quality=50)
    (coded / "broken.fcx").write_bytes(b"FCX?")
    summary = decode_tree(coded, tmp_path / "decoded")
    assert files_under(tmp_path / "decoded") == {n: by_cli[n] for n in IMAGES}
    assert [(f["code"], Path(f["input"]).name) for f in summary["failed"]] == [
        (4, "broken.fcx")]


@pytest.mark.parametrize("request_, error", [
    ({"quality": 50, "beta": 0.01}, ValueError),   # two ways to set the rate
    ({"model": "nope"}, WeightsError),             # an unknown model
])
def test_bad_requests_are_refused_before_any_file(tree, tmp_path, request_, error):
    with pytest.raises(error):
        encode_tree(tree, tmp_path / "coded", **request_)
    assert not (tmp_path / "coded").exists()


def test_two_sources_for_one_output_are_refused_before_any_file(tmp_path):
    src = tmp_path / "src"
    src.mkdir()
    with Image.open(PARROTS) as im:
        im.save(src / "x.png")
        im.save(src / "x.jpg")
    with pytest.raises(ValueError, match="would both write"):
        encode_tree(src, tmp_path / "coded")
    assert not (tmp_path / "coded").exists()


def test_the_source_must_be_a_folder(tmp_path):
    with pytest.raises(NotADirectoryError):
        encode_tree(PARROTS, tmp_path / "coded")


# --- on a Dask cluster -------------------------------------------------------------------------

@pytest.fixture(scope="module")
def client():
    distributed = pytest.importorskip(
        "distributed", reason="Dask is not installed: pip install 'flowcodec-cli[cluster]'")
    import dask
    untrimmed = {"distributed.nanny.pre-spawn-environ.MALLOC_TRIM_THRESHOLD_": None}
    with dask.config.set(untrimmed), distributed.LocalCluster(   # as docs/python.md advises
            n_workers=2, threads_per_worker=1, processes=True, dashboard_address=":0") as cluster:
        with distributed.Client(cluster) as client:
            yield client


def test_on_a_cluster_the_same_bytes_and_resume(tree, by_cli, tmp_path, client):
    dst = tmp_path / "coded"
    check_first_run(encode_tree(tree, dst, client=client, quality=50), tree, dst, by_cli)
    assert len({pid for pid in client.run(os.getpid).values()}) == 2   # two worker processes
    again = encode_tree(tree, dst, client=client, quality=50)
    assert (again["coded"], again["skipped"], len(again["failed"])) == (0, 2, 1)
    decoded = decode_tree(dst, tmp_path / "decoded", client=client)
    assert (decoded["coded"], decoded["failed"]) == (2, [])
    assert files_under(tmp_path / "decoded") == {n: by_cli[n] for n in IMAGES}
