"""Frame ranges with handles, and sequence patterns parsed and written in every host's style (pure SDK)."""

from __future__ import annotations

from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from keygrip.compositing import PassFiles, default_destination
from keygrip.plates import FrameRange, Plate, parse_range
from keygrip.sequences import SequenceError, SequencePath, find_sequence


def _touch(folder: Path, names: list[str]) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    for name in names:
        (folder / name).write_bytes(b"x")


def test_frame_ranges_as_people_write_them() -> None:
    r = FrameRange.parse(" 1001-1100 ")
    assert (r.first, r.last, len(r), str(r), r.start_end()) == (1001, 1100, 100, "1001-1100", (1001, 1101))
    assert FrameRange.parse("1050") == FrameRange(1050, 1050)
    assert 1001 in r and 1100 in r and 1000 not in r and 1101 not in r
    assert r.shrink(8, 8) == FrameRange(1009, 1092)
    assert r.intersect(FrameRange(1090, 1200)) == FrameRange(1090, 1100) and r.intersect(FrameRange(1, 2)) is None
    assert parse_range("1001-") == (1001, 0)
    with pytest.raises(ValueError, match="give the last frame too"):
        FrameRange.parse("1001-")
    with pytest.raises(ValueError, match="write FIRST-LAST"):
        FrameRange.parse("a-b")
    with pytest.raises(ValueError, match="the last frame comes before the first"):
        FrameRange(20, 10)
    with pytest.raises(ValueError, match="leave nothing of frames 1001-1010"):
        FrameRange(1001, 1010).shrink(5, 5)


def test_handles_are_kept_apart_from_the_working_range(tmp_path: Path) -> None:
    _touch(tmp_path, [f"plate.{n}.exr" for n in range(1001, 1101) if n != 1050])
    plate = Plate.find(tmp_path / "plate.%04d.exr", handles=8)
    assert plate.range == FrameRange(1001, 1100) and plate.working == FrameRange(1009, 1092)
    assert plate.to_process() == plate.working and plate.to_process(handles=True) == plate.range
    assert plate.padding == 4 and plate.name == "plate.####.exr"
    assert plate.sequence is not None and plate.sequence.gaps() == [(1050, 1050)]  # a gap stays a gap
    uneven = Plate.find(tmp_path / "plate.1001.exr", handles=(10, 0))
    assert uneven.working == FrameRange(1011, 1100)
    own = Plate.find(tmp_path, working_range="1020-1030", handles=8)
    assert own.working == FrameRange(1020, 1030)  # a host's own range wins over the handles
    with pytest.raises(ValueError, match=r"working range 990-1030 lies outside the plate's frames 1001-1100"):
        Plate.find(tmp_path, working_range="990-1030")
    with pytest.raises(ValueError, match="handles of 50 and 50 frames leave nothing"):
        Plate.find(tmp_path, handles=50)
    seq = find_sequence(tmp_path / "plate.####.exr")
    assert seq is not None
    (tmp_path / "plate.1100.exr").unlink()  # from_sequence keeps what was listed and lists nothing again
    kept = Plate.from_sequence(seq, handles=8)
    assert kept.sequence is seq and (kept.path, kept.range, kept.working) == (plate.path, plate.range, plate.working)
    video = Plate.video(tmp_path / "shot.mp4", 100, handles=4)
    assert video.range == FrameRange(0, 99) and video.working == FrameRange(4, 95) and video.padding == 0
    (tmp_path / "single.mov").write_bytes(b"x")
    with pytest.raises(ValueError, match="not an image sequence"):
        Plate.find(tmp_path / "single.mov")


@pytest.mark.parametrize(("text", "head", "padding", "tail"), [
    ("/out/shot010_matte.####.exr", "shot010_matte.", 4, ".exr"),
    ("/out/shot010_matte.%04d.exr", "shot010_matte.", 4, ".exr"),
    ("/out/shot010_matte.$F4.exr", "shot010_matte.", 4, ".exr"),
    ("/out/shot010_matte.%d.exr", "shot010_matte.", 0, ".exr"),
    ("/out/matte_#####_v2.png", "matte_", 5, "_v2.png"),
])
def test_destination_patterns_parse(text: str, head: str, padding: int, tail: str) -> None:
    dest = SequencePath.parse(text)
    assert (dest.folder, dest.head, dest.padding, dest.tail) == (Path("/out"), head, padding, tail)


def test_destination_patterns_are_written_in_each_hosts_style() -> None:
    dest = SequencePath.parse("/out/shot010_matte.$F4.exr")
    assert dest.text("hash") == "/out/shot010_matte.####.exr"      # Nuke, Blender
    assert dest.text("printf") == "/out/shot010_matte.%04d.exr"    # Nuke, FFmpeg
    assert dest.text("houdini") == "/out/shot010_matte.$F4.exr"
    assert dest.path(1001) == Path("/out/shot010_matte.1001.exr")
    assert dest.path(10000) == Path("/out/shot010_matte.10000.exr")  # outgrows the padding, as Nuke writes it
    assert SequencePath.parse("/out/m.%d.exr").path(7) == Path("/out/m.7.exr")
    with pytest.raises(SequenceError, match=r"put the frame number in the name as #### .* e\.g\. matte\.####\.exr"):
        SequencePath.parse("/out/matte.exr")
    with pytest.raises(SequenceError, match="more than one frame-number token"):
        SequencePath.parse("/out/m.####.%04d.exr")
    with pytest.raises(ValueError, match="unknown pattern style"):
        dest.text("nuke")


@given(head=st.sampled_from(["plate.", "shot_010_", "a"]), padding=st.integers(0, 8),
       tail=st.sampled_from([".exr", ".png", "_beauty.tif"]), style=st.sampled_from(["hash", "printf", "houdini"]),
       frame=st.integers(0, 10**6))
def test_every_style_parses_back_to_the_same_destination(head: str, padding: int, tail: str, style: str,
                                                         frame: int) -> None:
    dest = SequencePath(Path("/out"), head, padding, tail)
    back = SequencePath.parse(dest.text(style))
    # (a single # reads back as unpadded, as in Blender: padding 1 and 0 write the same names)
    assert back.path(frame) == dest.path(frame) and back.text(style) == SequencePath.parse(back.text(style)).text(style)


def test_default_destinations_keep_the_plates_padding(tmp_path: Path) -> None:
    _touch(tmp_path / "a", [f"shot010_plate_v3.{n:05d}.exr" for n in range(100, 103)])
    plate = Plate.find(tmp_path / "a")
    assert default_destination(plate, "matte", "/out") == "/out/shot010_plate_v3_matte.#####.exr"
    assert default_destination(plate, "depth", "/out", format="png16", style="printf") == \
        "/out/shot010_plate_v3_depth.%05d.png"
    video = Plate.video(tmp_path / "take3.mp4", 10)
    assert default_destination(video, "matte", "/out") == "/out/take3_matte.####.exr"
    # What the download wrote is found again as the same sequence.
    files = PassFiles(frames={n: tmp_path / "b" / f"m.{n:04d}.exr" for n in (7, 8)},
                      pattern=str(tmp_path / "b" / "m.####.exr"))
    _touch(tmp_path / "b", [p.name for p in files.frames.values()])
    seq = find_sequence(files.pattern_as("printf"))
    assert seq is not None and seq.frames == (7, 8) and files.frame_range == FrameRange(7, 8)
