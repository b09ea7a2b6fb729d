"""Reading a plate frame by frame and writing passes numbered like it.

A plate is what media/video.py reads (a video, or an image sequence named as keygrip.sequences reads
it). Its frames keep their numbers: an output frame is named with the plate's own number and padding
(plate.1001.exr gives matte.1001.exr; a video's frames are 0000, 0001, ...). Numbers missing on disk
stay missing in the output, and the caller hears of them (a warning) and of every other frame that
does not follow its predecessor (a temporal filter restarts there). Every frame must have the first
frame's size: a sequence whose frames differ fails naming the frame.
"""

from __future__ import annotations

import io
from collections.abc import Iterator
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path

import av
import cv2
import numpy as np

from inference_server.compositing.options import Output
from inference_server.errors import InvalidInput
from inference_server.media.video import (
    Frame,
    MediaInfo,
    frame_numbers,
    frames_in_range,
    image_sequence,
    iter_frames,
    missing_in,
    probe,
)
from inference_server.scene.exr import read_exr, srgb_to_linear, write_exr_channels
from keygrip.sequences import Sequence, format_gaps, format_pattern, frame_name

VIDEO_PADDING = 4


@dataclass(frozen=True)
class Plate:
    """A plate's frames [start, end) as read: its info, the numbers there are, and how outputs are named."""

    path: Path
    info: MediaInfo
    start: int
    end: int
    numbers: tuple[int, ...]
    padding: int
    sequence: Sequence | None  # the image sequence on disk; None for a video

    @property
    def name(self) -> str:
        return self.info.sequence_pattern or self.path.name

    def output_pattern(self, stem: str, suffix: str) -> str:
        return format_pattern(f"{stem}.", self.padding, suffix)

    def output_name(self, stem: str, suffix: str, number: int) -> str:
        return frame_name(f"{stem}.", self.padding, suffix, number)

    def gap_warnings(self) -> list[str]:
        gaps = [(a, b - 1) for a, b in missing_in(self.info, self.start, self.end)]
        if not gaps:
            return []
        count = sum(b - a + 1 for a, b in gaps)
        return [f"{self.name}: {count} frame{'s' if count > 1 else ''} missing on disk ({format_gaps(gaps)}); "
                "no output is written for them (the other frames keep their numbers) and the temporal "
                "filter restarts after each gap. Render or copy the missing frames and run again to fill them."]

    def frames(self) -> Iterator[Frame]:
        """The frames in order, each checked to have the first frame's size."""
        seq = self.sequence
        size: tuple[int, ...] | None = None
        for frame in iter_frames(self.path, self.start, self.end):
            shape = frame.image.shape[:2]
            if size is None:
                size = shape
            elif shape != size:
                where = seq.name(frame.index) if seq is not None else f"frame {frame.index}"
                first = seq.name(self.numbers[0]) if seq is not None else "the first frame"
                raise InvalidInput(f"{where} is {shape[1]}x{shape[0]} pixels but {first} is {size[1]}x{size[0]}: "
                                   f"every frame of {self.name} must have one size; re-render or resize the "
                                   "odd frames")
            yield frame

    def linear_rgb(self, frame: Frame) -> np.ndarray:
        """A frame as scene-linear float RGB: an EXR plate's own values (never clamped), else the
        decoded sRGB image linearised."""
        seq = self.sequence
        if seq is not None and seq.tail.lower().endswith(".exr"):
            return read_exr(seq.path(frame.index))
        return srgb_to_linear(frame.image.astype(np.float32) / 255.0)


def open_plate(path: Path, start: int, end: int | None) -> Plate:
    """The plate at path with the frames [start, end) it has (InvalidInput for a range outside it)."""
    info = probe(path)
    start, stop = frames_in_range(info, start, end)
    numbers = frame_numbers(info, start, stop)
    seq = image_sequence(path)
    return Plate(path=Path(path), info=info, start=start, end=stop, numbers=tuple(int(n) for n in numbers),
                 padding=seq.padding if seq is not None else VIDEO_PADDING, sequence=seq)


def write_image(path: Path, channels: dict[str, np.ndarray], out: Output, metadata: dict[str, str],
                *, png_range: tuple[float, float] = (0.0, 1.0)) -> None:
    """One output frame: EXR with the named channels as they are, or a 16-bit PNG (grey for one
    channel, RGBA for four) of the values mapped from png_range to 0..65535."""
    if out.exr:
        write_exr_channels(path, channels, half=out.half, metadata=metadata)
        return
    from PIL import Image, PngImagePlugin

    lo, hi = png_range
    planes = [np.clip((np.asarray(c, np.float32) - lo) / max(hi - lo, 1e-12), 0.0, 1.0) for c in channels.values()]
    info = PngImagePlugin.PngInfo()
    for key, value in metadata.items():
        info.add_itxt(f"keygrip:{key}", value)
    if len(planes) == 1:
        Image.fromarray(np.rint(planes[0] * 65535.0).astype(np.uint16)).save(path, "PNG", pnginfo=info)
        return
    # Pillow writes no 16-bit colour PNG; OpenCV does (BGR(A) order), without text chunks.
    rgba = np.stack(planes, axis=-1)
    order = [2, 1, 0, 3][: rgba.shape[2]]
    cv2.imwrite(str(path), np.rint(rgba[..., order] * 65535.0).astype(np.uint16))


class PreviewWriter:
    """An H.264 MP4 of RGB frames (downsized to max_side), for a quick look at a pass."""

    def __init__(self, path: Path, fps: float, max_side: int = 960) -> None:
        self.path = path
        self.fps = fps if fps > 0 else 24.0
        self.max_side = max_side
        self._out = av.open(str(path), mode="w")
        self._stream: av.video.stream.VideoStream | None = None
        self._count = 0

    def add(self, rgb: np.ndarray) -> None:
        h, w = rgb.shape[:2]
        s = min(1.0, self.max_side / max(h, w))
        if s < 1.0:
            rgb = cv2.resize(rgb, (max(2, round(w * s)), max(2, round(h * s))), interpolation=cv2.INTER_AREA)
        if self._stream is None:
            self._stream = self._out.add_stream("libx264", rate=Fraction(self.fps).limit_denominator(1001))
            self._stream.width, self._stream.height = rgb.shape[1] // 2 * 2, rgb.shape[0] // 2 * 2
            self._stream.pix_fmt = "yuv420p"
            self._stream.options = {"crf": "23", "preset": "veryfast"}
        frame = av.VideoFrame.from_ndarray(np.ascontiguousarray(rgb[: self._stream.height, : self._stream.width]),
                                           format="rgb24")
        frame.pts = self._count
        self._count += 1
        self._out.mux(self._stream.encode(frame))

    def close(self) -> None:
        if self._stream is not None:
            self._out.mux(self._stream.encode(None))
        self._out.close()


def over_checkerboard(rgb: np.ndarray, alpha: np.ndarray, square: int = 16) -> np.ndarray:
    """The plate over a grey checkerboard by the matte (uint8 RGB): what a compositor checks a key with."""
    h, w = alpha.shape
    yy, xx = np.indices((h, w))
    board = np.where(((yy // square) + (xx // square)) % 2 == 0, 0.35, 0.65).astype(np.float32)
    a = alpha[..., None]
    out = rgb.astype(np.float32) * a + (board[..., None] * 255.0) * (1.0 - a)
    return np.clip(out, 0, 255).astype(np.uint8)


def png_bytes(rgb: np.ndarray) -> bytes:
    """An 8-bit PNG of a uint8 RGB image (a job's step preview, a plate's preview)."""
    from PIL import Image

    buf = io.BytesIO()
    Image.fromarray(rgb).save(buf, "PNG")
    return buf.getvalue()
