"""Image sequences named the way people name them, for every host and the server alike.

A sequence is a folder, a name before the frame number, the number's padding and what follows it:
``plate.1001.exr`` .. ``plate.1100.exr`` is ``plate.`` + 4 digits + ``.exr``. Compositors and 3D
tools write that one sequence in several ways, and all of them are accepted:

- ``plate.####.exr`` (Nuke, Blender: one ``#`` per digit; ``@`` is accepted the same way),
- ``plate.%04d.exr`` (printf, FFmpeg; ``%d`` means unpadded),
- ``plate.$F4.exr`` (Houdini; ``$F`` means unpadded),
- a folder holding one numbered sequence,
- the path of any one frame (``plate.1001.exr``), when numbered siblings exist beside it.

Frame numbers are kept as they are on disk (a plate that starts at 1001 starts at 1001), and gaps
in the numbering are reported rather than closed. Pure Python: no host or server import.
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

IMAGE_EXTENSIONS = frozenset({".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff", ".webp", ".exr", ".dpx"})

# A frame-number token in a name: ####, @@@@, %04d / %4d / %d, $F4 / $F.
_TOKEN = re.compile(r"(?P<hash>#+|@+)|%(?P<printf_zero>0?)(?P<printf_width>\d*)d|\$F(?P<houdini>\d*)")
_DIGITS = re.compile(r"\d+")


class SequenceError(ValueError):
    """A path that names a sequence but not a usable one; the message says what to fix."""


class SequenceNotFound(SequenceError):
    """A pattern that matches no file: the message names the folder and the pattern searched."""


@dataclass(frozen=True)
class Sequence:
    """A numbered image sequence on disk.

    folder / head + frame number (zero-padded to `padding` digits; 0 means unpadded) + tail;
    frames: the frame numbers present, ascending.
    """

    folder: Path
    head: str
    tail: str
    padding: int
    frames: tuple[int, ...]

    @property
    def first(self) -> int:
        return self.frames[0]

    @property
    def last(self) -> int:
        return self.frames[-1]

    def __len__(self) -> int:
        return len(self.frames)

    def name(self, frame: int) -> str:
        return frame_name(self.head, self.padding, self.tail, frame)

    def path(self, frame: int) -> Path:
        return self.folder / self.name(frame)

    def paths(self) -> Iterator[tuple[int, Path]]:
        """(frame number, path) of every frame present, in order."""
        for frame in self.frames:
            yield frame, self.path(frame)

    def gaps(self) -> list[tuple[int, int]]:
        """Missing frame numbers between first and last, as inclusive (start, end) ranges."""
        f = self.frames  # (zip(strict=) is 3.10+, and the SDK runs on 3.9)
        return [(f[i] + 1, f[i + 1] - 1) for i in range(len(f) - 1) if f[i + 1] > f[i] + 1]

    def pattern(self, style: str = "hash") -> str:
        """The sequence as a path pattern: style "hash" (####), "printf" (%04d) or "houdini" ($F4)."""
        return str(self.folder / self.file_pattern(style))

    def file_pattern(self, style: str = "hash") -> str:
        """The file names as a pattern without the folder, e.g. "plate.####.png"."""
        return format_pattern(self.head, self.padding, self.tail, style)

    def describe(self) -> str:
        """One line for people: pattern, range, count and gaps."""
        return describe_frames(self.pattern(), self.first, self.last, self.gaps(), images=len(self))


# The pattern style each host writes in its file fields (Nuke reads "hash" and "printf" alike).
HOST_STYLES = {"nuke": "hash", "blender": "hash", "houdini": "houdini", "ffmpeg": "printf"}


@dataclass(frozen=True)
class SequencePath:
    """Where a sequence's frames are written, as a pattern: folder / head + frame number + tail.

    The same destination in every spelling: ``/out/shot010_matte.####.exr``, ``.../shot010_matte.%04d.exr``
    and ``.../shot010_matte.$F4.exr`` parse to one SequencePath, and text(style) writes it back in the
    style a host wants. Nothing needs to exist on disk.
    """

    folder: Path
    head: str
    padding: int   # digits (0: unpadded)
    tail: str

    @classmethod
    def parse(cls, path: str | os.PathLike[str]) -> SequencePath:
        """A destination pattern; SequenceError when its file name holds no (or two) frame-number tokens."""
        p = Path(path).expanduser()
        parsed = parse_pattern(p.name)
        if parsed is None:
            raise SequenceError(f"{p}: put the frame number in the name as #### (or %04d, $F4), "
                                f"e.g. {p.stem}.####{p.suffix or '.exr'}")
        head, padding, tail = parsed
        return cls(p.parent, head, padding, tail)

    def name(self, frame: int) -> str:
        return frame_name(self.head, self.padding, self.tail, frame)

    def path(self, frame: int) -> Path:
        return self.folder / self.name(frame)

    def text(self, style: str = "hash") -> str:
        """The pattern as a path in a style ("hash", "printf", "houdini"; see HOST_STYLES)."""
        return str(self.folder / format_pattern(self.head, self.padding, self.tail, style))


def describe_frames(name: str, first: int, last: int, gaps: list[tuple[int, int]], images: int | None = None
                    ) -> str:
    """A sequence's range and gaps in one line: plate.####.png frames 1001-1100, missing 1004-1005.

    gaps: inclusive (start, end) ranges of missing frame numbers; images: how many there are, if shown.
    """
    text = f"{name} frames {first}-{last}" + (f" ({images} images)" if images is not None else "")
    if gaps:
        text += f", missing {format_gaps(gaps)}"
    return text


def format_gaps(gaps: list[tuple[int, int]], limit: int = 5) -> str:
    """Inclusive (start, end) ranges of frame numbers for people: "1004-1005, 1010 and 2 more"."""
    shown = ", ".join(f"{a}" if a == b else f"{a}-{b}" for a, b in gaps[:limit])
    return shown + (f" and {len(gaps) - limit} more" if len(gaps) > limit else "")


def frame_name(head: str, padding: int, tail: str, frame: int) -> str:
    """The file name of one frame: head + the number zero-padded to `padding` digits (0: unpadded) + tail."""
    number = f"{frame:0{padding}d}" if padding else str(frame)
    return f"{head}{number}{tail}"


def format_pattern(head: str, padding: int, tail: str, style: str = "hash") -> str:
    """A file name pattern for head + number + tail in one of the usual styles."""
    if style == "hash":
        token = "#" * max(padding, 1)
    elif style == "printf":
        token = f"%0{padding}d" if padding else "%d"
    elif style == "houdini":
        token = f"$F{padding}" if padding else "$F"
    else:
        raise ValueError(f"unknown pattern style {style!r}: use 'hash', 'printf' or 'houdini'")
    return f"{head}{token}{tail}"


def parse_pattern(name: str) -> tuple[str, int, str] | None:
    """(head, padding, tail) when a file name holds a frame-number token, else None.

    Padding 0 means unpadded (``%d``, ``$F``); a single ``#`` also means unpadded, as in Blender.
    """
    matches = list(_TOKEN.finditer(name))
    if not matches:
        return None
    if len(matches) > 1:
        raise SequenceError(f"{name}: more than one frame-number token; keep one (e.g. name.####.png)")
    m = matches[0]
    if m.group("hash"):
        width = len(m.group("hash"))
        padding = 0 if width == 1 else width
    elif m.group(0).startswith("$F"):
        padding = int(m.group("houdini") or 0)
    else:
        width = int(m.group("printf_width") or 0)
        padding = width if m.group("printf_zero") or width else 0
    return name[: m.start()], padding, name[m.end():]


def is_pattern(path: str | os.PathLike[str]) -> bool:
    """Whether the path's file name holds a frame-number token (it names frames, not a file)."""
    try:
        return parse_pattern(Path(path).name) is not None
    except SequenceError:
        return True


def find_sequence(path: str | os.PathLike[str]) -> Sequence | None:
    """The sequence a path names, or None when it names a single file that is not part of one.

    Accepts a pattern, a folder of numbered images, or one frame of a sequence. A file that
    exists is never taken as a pattern, whatever its name holds ("take#1.png"). Raises
    SequenceNotFound when a pattern matches no file, and SequenceError when the path names a
    folder that holds no numbered images or several sequences.
    """
    p = Path(path).expanduser()
    if p.is_dir():
        return _sequence_in_folder(p)
    parsed = None if p.is_file() else parse_pattern(p.name)
    if parsed is not None:
        head, padding, tail = parsed
        numbers = _numbers(p.parent, head, tail)
        frames = _frames(numbers, padding)
        if not frames:
            raise SequenceNotFound(f"{p}: no file matches the pattern {p.name} in the folder {p.parent}; "
                                   "check the folder, the name and the number of digits")
        return Sequence(p.parent, head, tail, padding, frames)
    if p.suffix.lower() not in IMAGE_EXTENSIONS:
        return None
    # Any run of digits in the name may be the frame number ("shot2_v3_0101.png"): it is the one
    # that varies across the most siblings.
    best: tuple[str, str, list[str]] | None = None
    for head, digits, tail in _digit_runs(p.name):
        numbers = _numbers(p.parent, head, tail)
        if digits in numbers and len(numbers) >= 2 and (best is None or len(numbers) >= len(best[2])):
            best = (head, tail, numbers)
    if best is None:
        return None  # one numbered image alone is an image, not a sequence
    head, tail, numbers = best
    padding = _padding(numbers)
    return Sequence(p.parent, head, tail, padding, _frames(numbers, padding))


def _digit_runs(name: str) -> list[tuple[str, str, str]]:
    """(head, digits, tail) for every run of digits in a file name's stem, last run last."""
    stem_end = len(name) - len(Path(name).suffix)
    return [(name[:m.start()], m.group(), name[m.end():]) for m in _DIGITS.finditer(name, 0, stem_end)]


def _numbers(folder: Path, head: str, tail: str) -> list[str]:
    """The frame-number strings of the files named head + digits + tail in folder."""
    if not folder.is_dir():
        return []
    regex = re.compile(re.escape(head) + r"(\d+)" + re.escape(tail))
    out = []
    for entry in os.scandir(folder):
        m = regex.fullmatch(entry.name)
        if m and entry.is_file():
            out.append(m.group(1))
    return out


def _padding(numbers: list[str]) -> int:
    """The padding a set of frame-number strings was written with (0: unpadded).

    Leading zeros give it away (0998 .. 1001 is padded to 4); numbers all of one length are taken
    as padded to that length (1001 .. 1100 is ####); mixed lengths without zeros are unpadded.
    """
    lengths = {len(n) for n in numbers}
    if any(len(n) > 1 and n.startswith("0") for n in numbers) or len(lengths) == 1:
        return min(lengths) if min(lengths) > 1 else 0
    return 0


def _frames(numbers: list[str], padding: int) -> tuple[int, ...]:
    """The frame numbers among the strings that a sequence of that padding would write."""
    frames = set()
    for n in numbers:
        if padding:
            # Padded: exactly `padding` digits, or more for a number that outgrew them (Nuke writes
            # 10000 into ####), never with a superfluous leading zero.
            ok = len(n) == padding or (len(n) > padding and not n.startswith("0"))
        else:
            ok = n == "0" or not n.startswith("0")
        if ok:
            frames.add(int(n))
    return tuple(sorted(frames))


def _sequence_in_folder(folder: Path) -> Sequence:
    # Group the images by what surrounds each run of digits; the frame number is the run whose
    # group is biggest (on a tie, the later run: frame numbers come last by convention).
    groups: dict[tuple[str, str], list[str]] = {}
    order: dict[tuple[str, str], int] = {}
    for entry in os.scandir(folder):
        if Path(entry.name).suffix.lower() not in IMAGE_EXTENSIONS or not entry.is_file():
            continue
        for position, (head, digits, tail) in enumerate(_digit_runs(entry.name)):
            groups.setdefault((head, tail), []).append(digits)
            order[(head, tail)] = max(order.get((head, tail), 0), position)
    if not groups:
        raise SequenceError(f"{folder}: the folder holds no numbered images "
                            f"({', '.join(sorted(IMAGE_EXTENSIONS))})")
    ranked = sorted(groups.items(), key=lambda kv: (len(kv[1]), order[kv[0]]), reverse=True)
    (head, tail), numbers = ranked[0]
    # Another sequence of its own beside it: files outside the chosen group, numbered among themselves.
    others = [(key, n) for key, n in ranked[1:] if len(n) > 1 and not _overlaps(key, head, tail)]
    if others:
        names = ", ".join(format_pattern(h, _padding(n), t) for (h, t), n in [ranked[0], *others][:3])
        raise SequenceError(f"{folder}: the folder holds several sequences ({names}); "
                            "name one with a pattern such as name.####.png")
    padding = _padding(numbers)
    return Sequence(folder, head, tail, padding, _frames(numbers, padding))


def _overlaps(key: tuple[str, str], head: str, tail: str) -> bool:
    """Whether a group keyed by another digit run names files of the sequence head + N + tail."""
    regex = re.compile(re.escape(head) + r"\d+" + re.escape(tail))
    other_head, other_tail = key
    # Rebuild one member name with a placeholder number and see if the chosen sequence claims it.
    return any(regex.fullmatch(other_head + d + other_tail) for d in ("0", "1"))
