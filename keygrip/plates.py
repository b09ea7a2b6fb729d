"""Plates and their frame ranges, as compositors count them: host-neutral, pure Python.

A plate on disk runs from its first to its last frame number (plate.1001.exr .. plate.1100.exr). Most
plates carry handles: extra frames at each end (8 is common) that editorial asked for but the shot does
not use. The artist's working range is the plate without its handles (1009-1092), and that is what is
sent to the server and processed, unless the handles are asked for. Whatever is processed keeps the
plate's own numbers: matte.1009.exr is the matte of plate.1009.exr.

    plate = Plate.find("shots/010/plate.####.exr", handles=8)
    plate.range                      # FrameRange(1001, 1100): what is on disk
    plate.working                    # FrameRange(1009, 1092): what the artist works on
    plate.to_process()               # the working range; to_process(handles=True): the whole plate

Ranges here are inclusive, as people write them ("1001-1100"); the protocol's FrameRange is
[start, end) and `FrameRange.start_end()` converts.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from keygrip import sequences


def parse_range(text: str) -> tuple[int, int]:
    """"1001-1100" (inclusive, as people write it) -> (1001, 1101), the protocol's [start, end).
    "1001-" or "1001" alone: from 1001 to the last frame (end 0). ValueError naming what to write."""
    text = text.strip()
    first, _, last = text.partition("-")
    try:
        start = int(first)
        end = int(last) + 1 if last.strip() else 0
    except ValueError:
        raise ValueError(f"frame range {text!r}: write FIRST-LAST in the plate's frame numbers, e.g. 1001-1100"
                         ) from None
    if start < 0 or (end and end <= start):
        raise ValueError(f"frame range {text!r}: the first frame must not be negative nor after the last")
    return start, end


@dataclass(frozen=True)
class FrameRange:
    """Frames first..last, both included, in a plate's own numbers."""

    first: int
    last: int

    def __post_init__(self) -> None:
        if self.last < self.first:
            raise ValueError(f"frame range {self.first}-{self.last}: the last frame comes before the first")

    @classmethod
    def parse(cls, text: str) -> FrameRange:
        """"1001-1100" or "1001" (one frame). ValueError naming what to write."""
        start, end = parse_range(text)
        if not end and "-" in text:
            raise ValueError(f"frame range {text.strip()!r}: give the last frame too, e.g. {start}-{start + 99}")
        return cls(start, end - 1 if end else start)

    def __str__(self) -> str:
        return f"{self.first}-{self.last}"

    def __len__(self) -> int:
        return self.last - self.first + 1

    def __contains__(self, frame: object) -> bool:
        return isinstance(frame, int) and self.first <= frame <= self.last

    def start_end(self) -> tuple[int, int]:
        """The protocol's [start, end): (first, last + 1)."""
        return self.first, self.last + 1

    def shrink(self, head: int, tail: int) -> FrameRange:
        """Without `head` frames at the start and `tail` at the end (a plate without its handles)."""
        if head < 0 or tail < 0:
            raise ValueError(f"handles must not be negative (got {head} and {tail})")
        if head + tail >= len(self):
            raise ValueError(f"handles of {head} and {tail} frames leave nothing of frames {self}")
        return FrameRange(self.first + head, self.last - tail)

    def intersect(self, other: FrameRange) -> FrameRange | None:
        """The frames both hold, or None."""
        first, last = max(self.first, other.first), min(self.last, other.last)
        return FrameRange(first, last) if first <= last else None


@dataclass(frozen=True)
class Plate:
    """A plate as a compositor has it: its frames on disk, its handles and the artist's working range.

    path: an image sequence (a pattern, a first frame or a folder; see keygrip.sequences) or a video
    (whose frames are numbered from 0). sequence: the frames found on disk (None for a video).
    range: first..last frame of the plate. handles: (head, tail) frames at each end outside the shot.
    working_range: the artist's range when it is not the plate without its handles (a host's own
    frame range, say); it must lie inside the plate.
    """

    path: str
    range: FrameRange
    sequence: sequences.Sequence | None = None
    handles: tuple[int, int] = (0, 0)
    working_range: FrameRange | None = None

    def __post_init__(self) -> None:
        if self.working_range is not None and self.range.intersect(self.working_range) != self.working_range:
            raise ValueError(f"{self.name}: the working range {self.working_range} lies outside the plate's "
                             f"frames {self.range}; pick frames inside it")
        if self.working_range is None:
            self.range.shrink(*self.handles)  # raises when the handles leave nothing

    @classmethod
    def find(cls, path: str | os.PathLike[str], *, handles: int | tuple[int, int] = 0,
             working_range: FrameRange | str | None = None) -> Plate:
        """The image sequence a path names (pattern, first frame or folder), as a Plate.

        Raises sequences.SequenceNotFound / SequenceError naming the folder and pattern, and ValueError
        for a path that names one file rather than a sequence (use Plate.video for a movie).
        """
        seq = sequences.find_sequence(path)
        if seq is None:
            raise ValueError(f"{path}: not an image sequence; name one as plate.####.exr, a first frame "
                             "or a folder of frames (a movie file: Plate.video)")
        return cls.from_sequence(seq, handles=handles, working_range=working_range)

    @classmethod
    def from_sequence(cls, seq: sequences.Sequence, *, handles: int | tuple[int, int] = 0,
                      working_range: FrameRange | str | None = None) -> Plate:
        """A sequence already found (its folder listed) as a Plate, without listing the folder again."""
        return cls(seq.pattern(), FrameRange(seq.first, seq.last), seq, _handles(handles), _range(working_range))

    @classmethod
    def video(cls, path: str | os.PathLike[str], frame_count: int, *, handles: int | tuple[int, int] = 0,
              working_range: FrameRange | str | None = None) -> Plate:
        """A movie file of frame_count frames, numbered 0..frame_count - 1 (what a probe reports)."""
        if frame_count < 1:
            raise ValueError(f"{path}: a video plate needs at least one frame (got {frame_count})")
        return cls(os.fspath(path), FrameRange(0, frame_count - 1), None, _handles(handles), _range(working_range))

    @property
    def name(self) -> str:
        """The plate's file or pattern name, for messages."""
        return Path(self.path).name

    @property
    def padding(self) -> int:
        """The digits of the plate's frame numbers (0: unpadded or a video), for output patterns."""
        return self.sequence.padding if self.sequence is not None else 0

    @property
    def working(self) -> FrameRange:
        """The artist's range: working_range when given, else the plate without its handles."""
        return self.working_range or self.range.shrink(*self.handles)

    def to_process(self, handles: bool = False) -> FrameRange:
        """The frames a pass sends and processes: the working range, or with handles=True the whole plate."""
        return self.range if handles else self.working

    def check(self, frame_range: FrameRange) -> FrameRange:
        """frame_range if it lies inside the plate; ValueError naming the plate and its frames otherwise."""
        if self.range.intersect(frame_range) != frame_range:
            raise ValueError(f"frame range {frame_range} is not inside {self.name} (frames {self.range}); "
                             "pick frames inside it")
        return frame_range


def _handles(handles: int | tuple[int, int]) -> tuple[int, int]:
    head, tail = (handles, handles) if isinstance(handles, int) else handles
    if head < 0 or tail < 0:
        raise ValueError(f"handles must not be negative (got {head} and {tail})")
    return int(head), int(tail)


def _range(value: FrameRange | str | None) -> FrameRange | None:
    return FrameRange.parse(value) if isinstance(value, str) else value
