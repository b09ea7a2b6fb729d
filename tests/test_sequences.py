"""Image sequence names: every way people write them finds the same frames, numbers and gaps."""

from __future__ import annotations

import tempfile
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from keygrip.sequences import Sequence, SequenceError, find_sequence, is_pattern, parse_pattern


def _touch(folder: Path, names: list[str]) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    for name in names:
        (folder / name).write_bytes(b"")


@pytest.mark.parametrize(("name", "expected"), [
    ("plate.####.exr", ("plate.", 4, ".exr")),
    ("plate.@@@@.exr", ("plate.", 4, ".exr")),
    ("plate.%04d.exr", ("plate.", 4, ".exr")),
    ("plate.%d.exr", ("plate.", 0, ".exr")),
    ("plate.$F4.exr", ("plate.", 4, ".exr")),
    ("plate.$F.exr", ("plate.", 0, ".exr")),
    ("plate.#.exr", ("plate.", 0, ".exr")),
    ("plate_v2_####_beauty.png", ("plate_v2_", 4, "_beauty.png")),
    ("plate.1001.exr", None),
])
def test_parse_pattern(name: str, expected: tuple[str, int, str] | None) -> None:
    assert parse_pattern(name) == expected
    assert is_pattern(name) == (expected is not None)


def test_two_tokens_are_refused() -> None:
    with pytest.raises(SequenceError, match="more than one"):
        parse_pattern("a.####.%04d.png")


def test_plate_from_1001_with_a_gap(tmp_path: Path) -> None:
    _touch(tmp_path, [f"plate.{f:04d}.png" for f in (1001, 1002, 1003, 1006, 1007)] + ["notes.txt", "plate.mov"])
    for spec in ("plate.####.png", "plate.%04d.png", "plate.$F4.png", "plate.1003.png", ""):
        seq = find_sequence(tmp_path / spec)
        assert seq is not None, spec
        assert seq.frames == (1001, 1002, 1003, 1006, 1007), spec
        assert (seq.first, seq.last, len(seq)) == (1001, 1007, 5)
        assert seq.gaps() == [(1004, 1005)]
        assert seq.path(1006) == tmp_path / "plate.1006.png"
    assert "missing 1004-1005" in seq.describe()
    assert seq.pattern("printf").endswith("plate.%04d.png")
    assert seq.pattern("houdini").endswith("plate.$F4.png")


def test_padding_is_kept_apart(tmp_path: Path) -> None:
    # A 4-digit sequence and a stray 5-digit file with a leading zero are not the same sequence.
    _touch(tmp_path, ["f.0001.png", "f.0002.png", "f.00003.png", "f.10000.png"])
    seq = find_sequence(tmp_path / "f.####.png")
    assert seq is not None and seq.frames == (1, 2, 10000)
    unpadded = tmp_path / "u"
    _touch(unpadded, [f"u{f}.jpg" for f in range(8, 12)])
    seq = find_sequence(unpadded / "u%d.jpg")
    assert seq is not None and seq.frames == (8, 9, 10, 11) and seq.padding == 0
    assert find_sequence(unpadded / "u9.jpg") == seq
    assert find_sequence(unpadded) == seq


def test_single_files_and_errors(tmp_path: Path) -> None:
    _touch(tmp_path, ["still.0001.png", "clip.mp4"])
    assert find_sequence(tmp_path / "still.0001.png") is None  # one numbered image is an image
    assert find_sequence(tmp_path / "clip.mp4") is None
    with pytest.raises(SequenceError, match="no file matches"):
        find_sequence(tmp_path / "plate.####.png")
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(SequenceError, match="no numbered images"):
        find_sequence(empty)
    two = tmp_path / "two"
    _touch(two, [f"a.{f:04d}.png" for f in range(3)] + [f"b.{f:04d}.png" for f in range(3)])
    with pytest.raises(SequenceError, match="several sequences"):
        find_sequence(two)


_heads = st.text(alphabet="abcxyz_.-0123456789", min_size=1, max_size=8).filter(lambda h: not h[-1].isdigit())
_tails = st.sampled_from([".png", ".exr", ".jpg", "_beauty.png", ".v2.tif"])


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(head=_heads, tail=_tails, padding=st.integers(min_value=0, max_value=6),
       frames=st.sets(st.integers(min_value=0, max_value=20000), min_size=2, max_size=12))
def test_every_spelling_finds_the_same_frames(head: str, tail: str, padding: int, frames: set[int]) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        written = Sequence(folder, head, tail, padding, tuple(sorted(frames)))
        _touch(folder, [written.name(f) for f in written.frames])
        expected = written.frames
        for style in ("hash", "printf", "houdini"):
            if style == "hash" and padding == 1:
                continue  # a single # means unpadded; 1-digit padding is the same names anyway
            seq = find_sequence(written.pattern(style))
            assert seq is not None and seq.frames == expected, style
        # A folder and any one frame find it too, whatever padding they have to infer.
        for seq in (find_sequence(folder), find_sequence(folder / written.name(expected[-1]))):
            assert seq is not None
            assert {seq.path(f).name for f in seq.frames} == {written.name(f) for f in expected}
        assert sum(b - a + 1 for a, b in written.gaps()) == expected[-1] - expected[0] + 1 - len(expected)
