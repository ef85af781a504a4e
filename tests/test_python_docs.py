"""docs/python.md and README's "From Python" section: every ```python block runs, in order, in
one namespace, in a folder with the photos the page names; and the page lists every public name
of the API and of the Pillow plug-in."""

from __future__ import annotations

import re
import shutil
from pathlib import Path

import pytest
from PIL import Image, ImageCms

import flowcodec_cli
from flowcodec_cli.codec import fcx
from pillow_registration import fcx_plugin

ROOT = Path(__file__).resolve().parents[1]
DOC = (ROOT / "docs" / "python.md").read_text(encoding="utf-8")
README = (ROOT / "README.md").read_text(encoding="utf-8")
STEREO = ROOT / "tests" / "data" / "stereo"


def python_blocks(markdown: str) -> list[str]:
    return re.findall(r"^```python\n(.*?)^```", markdown, re.S | re.M)


def readme_section() -> str:
    match = re.search(r"^## From Python\n(.*?)(?=^## )", README, re.S | re.M)
    assert match, "README.md has no '## From Python' section"
    return match.group(1)


@pytest.fixture
def folder(tmp_path, monkeypatch):
    """photo.png (the parrots, with an ICC profile and EXIF, so that the metadata examples have
    something to keep), the stereo pair left.png / right.png, and photos/, a tree of two photos
    for batch."""
    exif = Image.Exif()
    exif[0x010F] = "flowcodec docs camera"   # Make
    icc = ImageCms.ImageCmsProfile(ImageCms.createProfile("sRGB")).tobytes()
    with Image.open(ROOT / "tests" / "data" / "parrots_256x192.png") as im:
        im.save(tmp_path / "photo.png", icc_profile=icc, exif=exif)
    shutil.copy(STEREO / "left" / "cup_upright.png", tmp_path / "left.png")
    shutil.copy(STEREO / "right" / "cup_upright.png", tmp_path / "right.png")
    (tmp_path / "photos" / "2024").mkdir(parents=True)
    shutil.copy(tmp_path / "photo.png", tmp_path / "photos" / "photo.png")
    shutil.copy(tmp_path / "left.png", tmp_path / "photos" / "2024" / "cup.png")
    monkeypatch.chdir(tmp_path)
    return tmp_path


def run_blocks(blocks: list[str]) -> dict:
    assert blocks
    namespace: dict = {}
    with fcx_plugin():   # the docs import flowcodec_cli.pillow: leave Pillow as it was after
        for index, code in enumerate(blocks):
            exec(compile(code, f"python block {index + 1}", "exec"), namespace)
    return namespace


def test_the_examples_of_docs_python_md_run(folder):
    names = run_blocks(python_blocks(DOC))
    assert (folder / "q70.fcx").read_bytes().startswith(fcx.MAGIC)   # Pillow's save wrote it
    assert (folder / "gray.png").is_file() and (folder / "copy.jpg").is_file()
    assert "exif" in names["kept"].info   # the photo's metadata came back
    assert (folder / "decoded" / "2024" / "cup.png").is_file()   # batch mirrored the tree


def test_the_readme_example_runs(folder):
    run_blocks(python_blocks(readme_section()))


def test_the_readme_links_the_page():
    assert "docs/python.md" in readme_section()


def test_every_public_name_is_documented():
    import flowcodec_cli.batch as batch
    import flowcodec_cli.pillow as plugin
    public = [*flowcodec_cli.__all__, *plugin.__all__, *batch.__all__]
    assert [name for name in public if f"`{name}" not in DOC and f" {name}`" not in DOC] == []
