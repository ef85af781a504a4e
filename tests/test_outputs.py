"""Output planning (`plan_outputs`) and all-or-nothing writes (`write_atomic`)."""

from __future__ import annotations

import os
import stat

import pytest

from flowcodec_cli.files import jobs as outputs
from flowcodec_cli.files.atomic import OutputExists, write_atomic
from flowcodec_cli.files.jobs import plan_outputs

ACCEPTED = {".png", ".jpg"}


def touch(path, data=b"x"):
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)
    return str(path)


def part_files(folder):
    return [name for name in os.listdir(folder) if name.startswith(".flowcodec-")]


# --- plan_outputs ------------------------------------------------------------------------------

def test_one_input_with_output_file(tmp_path):
    src = touch(tmp_path / "in" / "a.png")
    dst = str(tmp_path / "out.fcx")
    assert plan_outputs([src], dst, ".fcx", ACCEPTED) == [(src, dst)]
    assert not os.path.exists(dst)


def test_one_input_with_existing_directory(tmp_path):
    src = touch(tmp_path / "a.png")
    (tmp_path / "out").mkdir()
    out = str(tmp_path / "out")
    assert plan_outputs([src], out, ".fcx", ACCEPTED) == [(src, os.path.join(out, "a.fcx"))]


def test_one_input_with_trailing_separator_creates_the_directory(tmp_path):
    src = touch(tmp_path / "a.png")
    out = str(tmp_path / "new") + os.sep
    assert plan_outputs([src], out, ".fcx", ACCEPTED) == [(src, os.path.join(out, "a.fcx"))]
    assert os.path.isdir(out)


def test_several_inputs_go_into_a_directory_that_is_created(tmp_path):
    a = touch(tmp_path / "a.png")
    b = touch(tmp_path / "sub" / "b.jpg")
    out = str(tmp_path / "made" / "here")
    assert not os.path.exists(out)
    pairs = plan_outputs([a, b], out, ".fcx", ACCEPTED)
    assert pairs == [(a, os.path.join(out, "a.fcx")), (b, os.path.join(out, "b.fcx"))]
    assert os.path.isdir(out)


def test_directory_input_expands_to_accepted_files_sorted(tmp_path):
    folder = tmp_path / "photos"
    for name in ("c.png", "a.JPG", "b.png", "notes.txt", "d.png.bak", "noext"):
        touch(folder / name)
    (folder / "e.png").mkdir()                      # a directory with an image suffix: skipped
    touch(folder / "nested" / "f.png")              # not recursive
    out = str(tmp_path / "out")
    pairs = plan_outputs([str(folder)], out, ".fcx", ACCEPTED)
    assert [os.path.basename(s) for s, _ in pairs] == ["a.JPG", "b.png", "c.png"]
    assert [d for _, d in pairs] == [os.path.join(out, n) for n in ("a.fcx", "b.fcx", "c.fcx")]


def test_directory_input_without_output_writes_beside_each_file(tmp_path):
    folder = tmp_path / "photos"
    touch(folder / "a.png")
    pairs = plan_outputs([str(folder)], None, ".fcx", ACCEPTED)
    assert pairs == [(str(folder / "a.png"), str(folder / "a.fcx"))]


def test_directory_input_counts_as_several_even_with_one_file(tmp_path):
    folder = tmp_path / "photos"
    touch(folder / "a.png")
    out = str(tmp_path / "out")
    assert plan_outputs([str(folder)], out, ".fcx", ACCEPTED) == [
        (str(folder / "a.png"), os.path.join(out, "a.fcx"))]
    assert os.path.isdir(out)


def test_directory_without_matching_files_is_an_error(tmp_path):
    folder = tmp_path / "empty"
    touch(folder / "readme.txt")
    with pytest.raises(ValueError, match="no input files"):
        plan_outputs([str(folder)], None, ".fcx", ACCEPTED)


def test_no_output_writes_beside_the_input(tmp_path, monkeypatch):
    src = touch(tmp_path / "deep" / "er" / "photo.tar.png")
    assert plan_outputs([src], None, ".fcx", ACCEPTED) == [
        (src, str(tmp_path / "deep" / "er" / "photo.tar.fcx"))]
    monkeypatch.chdir(tmp_path)
    touch(tmp_path / "here.png")
    assert plan_outputs(["here.png"], None, ".fcx", ACCEPTED) == [("here.png", "here.fcx")]


def test_stdin_without_output_goes_to_stdout():
    assert plan_outputs(["-"], None, ".fcx", ACCEPTED) == [("-", "-")]


def test_stdin_with_output_file_and_directory(tmp_path):
    dst = str(tmp_path / "x.fcx")
    assert plan_outputs(["-"], dst, ".fcx", ACCEPTED) == [("-", dst)]
    out = str(tmp_path / "d")
    os.mkdir(out)
    assert plan_outputs(["-"], out, ".png", ACCEPTED) == [("-", os.path.join(out, "stdin.png"))]


def test_stdin_read_twice_is_an_error():
    with pytest.raises(ValueError, match="stdin"):
        plan_outputs(["-", "-"], "out", ".fcx", ACCEPTED)


def test_stdout_with_one_input(tmp_path):
    src = touch(tmp_path / "a.png")
    assert plan_outputs([src], "-", ".fcx", ACCEPTED) == [(src, "-")]
    assert plan_outputs(["-"], "-", ".fcx", ACCEPTED) == [("-", "-")]


def test_stdout_with_several_inputs_is_an_error(tmp_path):
    a, b = touch(tmp_path / "a.png"), touch(tmp_path / "b.png")
    with pytest.raises(ValueError, match="exactly one input"):
        plan_outputs([a, b], "-", ".fcx", ACCEPTED)
    folder = tmp_path / "one"
    touch(folder / "c.png")
    with pytest.raises(ValueError, match="exactly one input"):
        plan_outputs([str(folder)], "-", ".fcx", ACCEPTED)


def test_duplicate_stems_are_an_error_and_nothing_is_created(tmp_path):
    a = touch(tmp_path / "one" / "x.png")
    b = touch(tmp_path / "two" / "x.jpg")
    out = tmp_path / "out"
    with pytest.raises(ValueError, match="same file stem"):
        plan_outputs([a, b], str(out), ".fcx", ACCEPTED)
    assert not out.exists()


def test_duplicate_stems_beside_the_input_are_an_error(tmp_path):
    a = touch(tmp_path / "x.png")
    b = touch(tmp_path / "x.jpg")
    with pytest.raises(ValueError, match="same file stem"):
        plan_outputs([a, b], None, ".fcx", ACCEPTED)
    with pytest.raises(ValueError, match="same file stem"):
        plan_outputs([a, a], None, ".fcx", ACCEPTED)


# --- write_atomic ------------------------------------------------------------------------------

PAYLOAD = bytes(range(256)) * 7 + b"\x00\r\n\x1a"


def test_writes_exact_bytes_and_leaves_no_temporary_file(tmp_path):
    dst = tmp_path / "out.fcx"
    write_atomic(str(dst), PAYLOAD, force=False)
    assert dst.read_bytes() == PAYLOAD
    assert os.listdir(tmp_path) == ["out.fcx"]


def test_writes_empty_file(tmp_path):
    dst = tmp_path / "empty"
    write_atomic(str(dst), b"", force=False)
    assert dst.read_bytes() == b""


def test_relative_destination(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    write_atomic("rel.bin", PAYLOAD, force=False)
    assert (tmp_path / "rel.bin").read_bytes() == PAYLOAD
    assert part_files(tmp_path) == []


def test_refuses_an_existing_file_without_force(tmp_path):
    dst = tmp_path / "out.fcx"
    dst.write_bytes(b"precious")
    with pytest.raises(OutputExists):
        write_atomic(str(dst), PAYLOAD, force=False)
    assert dst.read_bytes() == b"precious"
    assert part_files(tmp_path) == []


def test_refuses_a_dangling_symlink_without_force(tmp_path):
    dst = tmp_path / "link"
    dst.symlink_to(tmp_path / "nowhere")
    with pytest.raises(OutputExists):
        write_atomic(str(dst), PAYLOAD, force=False)
    assert not (tmp_path / "nowhere").exists()


def test_overwrites_with_force(tmp_path):
    dst = tmp_path / "out.fcx"
    dst.write_bytes(b"old contents that are longer than the new ones" * 100)
    write_atomic(str(dst), PAYLOAD, force=True)
    assert dst.read_bytes() == PAYLOAD
    assert os.listdir(tmp_path) == ["out.fcx"]


def _failing_fsync(fd):
    raise OSError(28, "No space left on device")


@pytest.mark.parametrize("force", [False, True])
def test_failure_leaves_nothing_behind(tmp_path, monkeypatch, force):
    seen = []
    real_fsync = os.fsync

    def failing_fsync(fd):
        seen.append(part_files(tmp_path))   # the temporary file does exist at this point
        _failing_fsync(fd)

    monkeypatch.setattr(os, "fsync", failing_fsync)
    dst = tmp_path / "out.fcx"
    with pytest.raises(OSError, match="No space"):
        write_atomic(str(dst), PAYLOAD, force=force)
    monkeypatch.setattr(os, "fsync", real_fsync)
    assert len(seen) == 1 and len(seen[0]) == 1 and seen[0][0].endswith(".part")
    assert not dst.exists()
    assert part_files(tmp_path) == []
    assert os.listdir(tmp_path) == []


def test_failure_with_force_keeps_the_old_file(tmp_path, monkeypatch):
    dst = tmp_path / "out.fcx"
    dst.write_bytes(b"old")
    monkeypatch.setattr(os, "fsync", _failing_fsync)
    with pytest.raises(OSError):
        write_atomic(str(dst), PAYLOAD, force=True)
    assert dst.read_bytes() == b"old"
    assert part_files(tmp_path) == []


def test_interrupt_leaves_nothing_behind(tmp_path, monkeypatch):
    def interrupted(fd):
        raise KeyboardInterrupt

    monkeypatch.setattr(os, "fsync", interrupted)
    with pytest.raises(KeyboardInterrupt):
        write_atomic(str(tmp_path / "out.fcx"), PAYLOAD, force=False)
    assert os.listdir(tmp_path) == []


def test_destination_appearing_meanwhile_is_not_overwritten(tmp_path, monkeypatch):
    dst = tmp_path / "out.fcx"
    real_fsync = os.fsync

    def racing_fsync(fd):
        real_fsync(fd)
        dst.write_bytes(b"written by someone else")   # appears after the existence check

    monkeypatch.setattr(os, "fsync", racing_fsync)
    with pytest.raises(OutputExists):
        write_atomic(str(dst), PAYLOAD, force=False)
    assert dst.read_bytes() == b"written by someone else"
    assert part_files(tmp_path) == []


@pytest.mark.parametrize("mask, mode", [(0o022, 0o644), (0o077, 0o600), (0o002, 0o664),
                                        (0o027, 0o640)])
@pytest.mark.parametrize("force", [False, True])
def test_permissions_follow_the_umask(tmp_path, mask, mode, force):
    old = os.umask(mask)
    try:
        dst = tmp_path / "out.fcx"
        if force:
            dst.write_bytes(b"old")
        write_atomic(str(dst), PAYLOAD, force=force)
        # read back before the finally restores it: write_atomic must leave the umask as it was
        # (reading it means setting it, so set it to what it must already be)
        assert os.umask(mask) == mask
    finally:
        os.umask(old)
    assert stat.S_IMODE(os.stat(dst).st_mode) == mode


def test_stdout(capsysbinary):
    write_atomic(outputs.STDIO, PAYLOAD, force=False)
    assert capsysbinary.readouterr().out == PAYLOAD


def test_read_input_file_and_stdin(tmp_path, monkeypatch):
    import io
    import sys
    src = tmp_path / "in.bin"
    src.write_bytes(PAYLOAD)
    assert outputs.read_input(str(src)) == PAYLOAD

    class FakeStdin:
        buffer = io.BytesIO(b"from stdin")

    monkeypatch.setattr(sys, "stdin", FakeStdin())
    assert outputs.read_input("-") == b"from stdin"
