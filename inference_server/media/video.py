"""Probe and decode video files and image sequences with PyAV, streaming RGB frames.

Frames come out as displayed: the container's display matrix (how phones record portrait video) is
applied, so a clip shot rotated comes out upright. Frame indices count frames in presentation order
from the start of the stream, and frame times are real timestamps (pts), so variable-frame-rate clips
keep their true timing.

An image sequence is named as keygrip.sequences reads it, the one parser the SDK and the server
share: ``plate.####.png``, ``plate.%04d.png``, ``plate.$F4.png``, a folder of numbered frames, or
the first frame's path. Its frames keep their numbers on disk: Frame.index is the number (a plate
from 1001 starts at 1001) and frame ranges count those numbers. Gaps in the numbering are reported
(MediaInfo.missing_frames) and skipped when reading, never closed up. A sequence has no frame rate
of its own: DEFAULT_SEQUENCE_FPS is assumed and callers override it.
"""

from __future__ import annotations

import bisect
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import av
import cv2
import numpy as np

from inference_server.errors import InvalidInput, NotFound
from keygrip.sequences import Sequence, SequenceError, SequenceNotFound, find_sequence, format_gaps

DEFAULT_SEQUENCE_FPS = 24.0


@dataclass(frozen=True)
class MediaInfo:
    """What a clip holds, read without decoding more than needed.

    fps: nominal frame rate (the mean rate for a variable-frame-rate clip).
    frame_count: frames that can be decoded (counted from the packets; for a truncated file, decoded).
        For an image sequence: the frame numbers from the first to the last, missing ones included.
    duration_s: seconds from the first frame's start to the last frame's end.
    width, height: displayed size in pixels, after rotation.
    rotation_deg: 0, 90, 180 or 270: the counter-clockwise rotation a player applies to the coded
        image to display it (FFmpeg's display-matrix convention; a phone held upright usually gives 270).
    variable_frame_rate: frame durations differ by more than 10 % (and 2 time-base ticks).
    truncated: the file ends early (fewer packets than the header promised, or a damaged last packet).
    first_frame: the number of the first frame: 0 for a video, e.g. 1001 for a sequence.
    missing_frames: gaps in a sequence's numbering, as [start, end) ranges of frame numbers.
    sequence_pattern: a sequence's file names as a pattern, e.g. "plate.####.png" ("" for a video).
    """

    path: str
    fps: float
    frame_count: int
    duration_s: float
    codec: str
    width: int
    height: int
    rotation_deg: int
    variable_frame_rate: bool
    has_audio: bool
    is_image_sequence: bool
    pixel_format: str
    truncated: bool = False
    first_frame: int = 0
    missing_frames: tuple[tuple[int, int], ...] = ()
    sequence_pattern: str = ""


@dataclass
class Frame:
    """One decoded frame.

    index: frame number in presentation order from the start of the source (0-based), or the
        frame's number on disk for an image sequence.
    time: seconds from the first frame of the source (real pts; (number - first) / fps for a sequence).
    image: (H, W, 3) uint8 RGB, upright.
    scale: displayed full-resolution size / returned size (1.0 when not downscaled), so that pixel
        coordinates in image times scale are full-resolution pixels.
    """

    index: int
    time: float
    image: np.ndarray
    scale: float = 1.0


def probe(path: str | Path) -> MediaInfo:
    """Describe a video file or image sequence; raises InvalidInput for anything that is not one."""
    seq = image_sequence(path)
    if seq is not None:
        return _probe_sequence(path, seq)
    p = _check_file(path)
    packets = _scan_packets(p)
    container, stream = _open_video(p)
    with container:
        codec = stream.codec_context.name
        has_audio = len(container.streams.audio) > 0
        first = None
        decoded = 0
        for frame in _decode(container, stream):
            if first is None:
                first = frame
                if not packets.truncated:
                    break
            decoded += 1
        if first is None:
            raise InvalidInput(
                f"{p.name}: no frame of its {codec} video could be decoded. The file is damaged or "
                "incomplete; export it again or convert it to H.264 MP4."
            )
        rate = stream.average_rate or stream.guessed_rate
        # Read while the container is open: a closed container's stream is freed memory, whose time base
        # reads as garbage once something else reuses it (seen as a negative frame rate under Ray).
        tb = float(stream.time_base) if stream.time_base else 0.0
    frame_count = decoded if packets.truncated else max(packets.count, 1)
    rotation = _rotation_deg(first)
    w, h = first.width, first.height
    if rotation in (90, 270):
        w, h = h, w
    median_dt, variable = _frame_spacing(packets.pts)
    fps = float(rate) if rate else (1.0 / (median_dt * tb) if median_dt and tb else 0.0)
    # The mean rate over the whole clip, from its timestamps: a GIF's delays (7, 7, 6 hundredths)
    # or a phone's variable rate give FFmpeg's nominal rate from the first frames only.
    # Timestamps are whole ticks (milliseconds in MKV), so a short clip's mean is only that exact.
    span = packets.pts[-1] - packets.pts[0] if len(packets.pts) >= 2 else 0
    if span > 0 and tb:
        mean = (len(packets.pts) - 1) / (span * tb)
        if not fps or abs(fps - mean) > max(0.01, 2.0 / span) * mean:
            fps = mean
    if fps <= 0:
        raise InvalidInput(f"{p.name}: the video has no usable frame rate; convert it to H.264 MP4.")
    if len(packets.pts) >= 2 and tb:
        duration = (packets.pts[-1] - packets.pts[0] + median_dt) * tb
    else:
        duration = frame_count / fps
    if packets.truncated:
        duration = min(duration, frame_count / fps)
    return MediaInfo(
        path=str(p), fps=fps, frame_count=frame_count, duration_s=float(duration), codec=codec,
        width=w, height=h, rotation_deg=rotation, variable_frame_rate=variable, has_audio=has_audio,
        is_image_sequence=False, pixel_format=first.format.name, truncated=packets.truncated,
    )


def iter_frames(
    path: str | Path, start: int = 0, end: int | None = None, max_side: int | None = None, step: int = 1
) -> Iterator[Frame]:
    """Yield frames start <= index < end (end None: to the last), upright RGB.

    step: only frames whose index - start is a multiple of it (the others are still decoded, a
    video's frames depend on each other, but not converted: that is most of a skipped frame's cost).

    For an image sequence, start and end are frame numbers (a start before the first frame means
    from the first) and missing numbers are skipped. Streams: one decoded frame is held at a time.
    max_side downsizes (never enlarges) each frame so that its longer side is at most max_side
    pixels, with cv2.INTER_AREA. Seeks to the keyframe before start instead of decoding from the
    beginning.
    """
    if end is not None and end < start:
        raise InvalidInput(f"invalid frame range {start}-{end}: the end must not be before the start")
    if step < 1:
        raise InvalidInput(f"a frame step must be 1 or more, not {step}")
    seq = image_sequence(path)
    if seq is not None:
        yield from _iter_sequence(seq, start, end, max_side, step)
        return
    if start < 0:
        raise InvalidInput(f"invalid frame range {start}-{end}: a video's frames start at 0")
    p = _check_file(path)
    pts_index = _scan_packets(p).pts
    # A frame's index is its rank among the stream's presentation timestamps; that stays right after a
    # seek and on variable-frame-rate clips. Without timestamps (rare raw streams) frames are counted.
    use_pts = len(pts_index) > 0
    seek = use_pts and 0 < start < len(pts_index)
    while True:
        container, stream = _open_video(p)
        with container:
            if seek:
                container.seek(pts_index[start], stream=stream, backward=True, any_frame=False)
            if stream.time_base is None:
                raise InvalidInput(f"{p.name}: the video stream has no time base; re-encode the file")
            tb = float(stream.time_base)
            counter = 0
            restart = False
            for frame in _decode(container, stream):
                if use_pts and frame.pts is not None:
                    index = min(bisect.bisect_left(pts_index, frame.pts), len(pts_index) - 1)
                    time = (frame.pts - pts_index[0]) * tb
                else:
                    index = counter
                    time = counter / float(stream.average_rate or DEFAULT_SEQUENCE_FPS)
                counter += 1
                if seek and counter == 1 and index > start:
                    # The demuxer landed after the wanted frame (imprecise seeking in some containers):
                    # decode from the beginning instead.
                    restart = True
                    break
                if index < start:
                    continue
                if end is not None and index >= end:
                    break
                if (index - start) % step:
                    continue
                image, scale = _to_rgb(frame.to_ndarray(format="rgb24"), max_side, _rotation_deg(frame))
                yield Frame(index=index, time=float(time), image=image, scale=scale)
        if not restart:
            return
        seek = False


def poster_frame_png(path: str | Path, max_side: int = 256) -> bytes:
    """A small PNG of the frame about 10 % into the clip (or the next one there is, or the first)."""
    info = probe(path)
    target = info.first_frame + int(info.frame_count * 0.1)
    frame = next(iter_frames(path, start=target, max_side=max_side), None)
    if frame is None:
        frame = next(iter_frames(path, start=info.first_frame, max_side=max_side))
    ok, data = cv2.imencode(".png", cv2.cvtColor(frame.image, cv2.COLOR_RGB2BGR))
    if not ok:
        raise InvalidInput(f"{Path(path).name}: could not encode a thumbnail")
    return data.tobytes()


@dataclass
class _Packets:
    count: int
    pts: list[int]
    truncated: bool


def _check_file(path: str | Path) -> Path:
    p = Path(path)
    if not p.exists():
        raise InvalidInput(f"{p}: file not found. Check the path, or upload the file first.")
    if p.stat().st_size == 0:
        raise InvalidInput(f"{p.name}: the file is empty (0 bytes); copy or export it again.")
    return p


def _open_video(p: Path) -> tuple[av.container.InputContainer, av.video.stream.VideoStream]:
    try:
        # Cameras write metadata in other encodings than UTF-8 (a Latin-1 handler name): replace
        # what does not decode rather than refuse the whole file.
        container = av.open(str(p), mode="r", metadata_errors="replace")
    except av.error.FFmpegError as e:
        raise InvalidInput(
            f"{p.name}: not a readable video ({e.strerror or e}). Pick a video file (MP4, MOV, MKV, ...) "
            "or an image sequence; a file cut short while copying loses its index and cannot be read."
        ) from None
    if not container.streams.video:
        container.close()
        raise InvalidInput(f"{p.name}: the file has no video stream (audio only?); pick a video file.")
    stream = container.streams.video[0]
    if stream.codec_context is None:
        container.close()
        raise InvalidInput(f"{p.name}: its video codec is unknown to Keygrip's decoder (or the file's header is "
                           "damaged); convert it to H.264 MP4.")
    # Frame threading roughly doubles decode speed. It drops the last frames before a damaged packet,
    # so probe decodes with it too and counts exactly the frames iter_frames yields.
    stream.thread_type = "AUTO"
    return container, stream


def _scan_packets(p: Path) -> _Packets:
    """Count the video packets and collect their pts without decoding (cheap: reads the file once)."""
    container, stream = _open_video(p)
    count, pts, truncated = 0, [], False
    with container:
        try:
            for packet in container.demux(stream):
                if packet.size == 0:
                    continue  # the flush packet that ends demuxing
                count += 1
                if packet.pts is not None:
                    pts.append(packet.pts)
                truncated |= packet.is_corrupt
        except av.error.FFmpegError:
            truncated = True
        if stream.frames and count < stream.frames:
            truncated = True
    if len(pts) != count:
        pts = []  # incomplete timestamps cannot index frames
    pts.sort()
    return _Packets(count=count, pts=pts, truncated=truncated)


def _decode(container: av.container.InputContainer, stream: av.video.stream.VideoStream
            ) -> Iterator[av.VideoFrame]:
    """Decode packet by packet, skipping damaged packets so that a truncated file yields what it can."""
    try:
        for packet in container.demux(stream):
            try:
                yield from packet.decode()
            except av.error.InvalidDataError:
                continue
    except av.error.FFmpegError:
        pass
    # Demuxing ended early or on a damaged packet: drain the frames still inside the decoder.
    try:
        yield from stream.codec_context.decode(None)
    except av.error.FFmpegError:
        return


def _rotation_deg(frame: av.VideoFrame) -> int:
    return int(round(frame.rotation / 90.0)) % 4 * 90


def _frame_spacing(pts: list[int]) -> tuple[float, bool]:
    """Median frame duration in time-base ticks, and whether the spacing varies."""
    if len(pts) < 2:
        return 0.0, False
    dt = np.diff(np.asarray(pts, dtype=np.int64))
    median = float(np.median(dt))
    variable = bool(np.any(np.abs(dt - median) > max(2.0, 0.1 * median)))
    return median, variable


def _to_rgb(image: np.ndarray, max_side: int | None, rotation_deg: int) -> tuple[np.ndarray, float]:
    h, w = image.shape[:2]
    if max_side and max(h, w) > max_side:
        s = max_side / max(h, w)
        image = cv2.resize(image, (max(1, round(w * s)), max(1, round(h * s))), interpolation=cv2.INTER_AREA)
    scale = w / image.shape[1]
    if rotation_deg:
        # np.rot90 turns counter-clockwise, the display matrix's direction.
        image = np.ascontiguousarray(np.rot90(image, rotation_deg // 90))
    return image, float(scale)


def image_sequence(path: str | Path) -> Sequence | None:
    """The image sequence a path names (pattern, folder or first frame), or None for a single file.

    Raises NotFound for a pattern that matches no file and InvalidInput for a folder without one
    numbered sequence, each naming the folder and what was searched.
    """
    try:
        return find_sequence(path)
    except SequenceNotFound as exc:
        raise NotFound(str(exc), reason="NO_FRAMES") from None
    except SequenceError as exc:
        raise InvalidInput(str(exc)) from None


def first_frame_number(path: str | Path) -> int:
    """The number of a source's first frame: 0 for a video, the first number on disk for a sequence."""
    seq = image_sequence(path)
    return seq.first if seq is not None else 0


def missing_in(info: MediaInfo, start: int, end: int) -> list[tuple[int, int]]:
    """The gaps of info.missing_frames inside frames [start, end), as [start, end) ranges."""
    out = []
    for a, b in info.missing_frames:
        a, b = max(a, start), min(b, end)
        if a < b:
            out.append((a, b))
    return out


def frame_numbers(info: MediaInfo, start: int, end: int) -> np.ndarray:
    """The numbers of the frames there are in [start, end): a sequence may skip some on disk."""
    numbers = np.arange(start, end, dtype=np.int64)
    for a, b in info.missing_frames:
        numbers = numbers[(numbers < a) | (numbers >= b)]
    return numbers


def frames_in_range(info: MediaInfo, start: int, end: int | None, name: str | None = None) -> tuple[int, int]:
    """[start, end) of the frames a clip has, from a requested range (end None: to the last frame).

    A start before the first frame means from the first and an end past the last means to the last;
    a sequence's range is narrowed to begin and end on frames there are on disk. InvalidInput naming
    the clip (name, default its file's name) and its frames when nothing is left (a range outside the
    clip, or start >= end).
    """
    first, stop = info.first_frame, info.first_frame + info.frame_count
    asked = f"{start}-{'end' if end is None else end}"
    if info.is_image_sequence:
        start, end = max(start, first), stop if end is None else min(end, stop)
        for a, b in info.missing_frames:
            if a <= start < b:
                start = b
            if a < end <= b:
                end = a
    else:
        end = stop if end is None else min(end, stop)
    if not first <= start < end:
        gaps = " (some of them missing on disk)" if info.missing_frames else ""
        raise InvalidInput(
            f"frame range {asked} holds no frame: {name or Path(info.path).name} has {info.frame_count} frames "
            f"({first}-{stop - 1}){gaps}; pick a range inside them, with the start below the end."
        )
    return start, end


def gap_warnings(path: str | Path, first: int, last: int) -> list[str]:
    """What a user should hear about missing frames of a sequence among frames first..last.

    Empty for a video or a sequence without gaps there. The numbers are kept: the missing ones are
    frames where nobody could be seen, which capture fills in (interpolated, or flagged missing).
    """
    seq = image_sequence(path)
    if seq is None:
        return []
    gaps = [(max(a, first), min(b, last)) for a, b in seq.gaps() if b >= first and a <= last]
    if not gaps:
        return []
    count = sum(b - a + 1 for a, b in gaps)
    return [f"{seq.file_pattern()}: {count} frame{'s' if count > 1 else ''} missing on disk "
            f"({format_gaps(gaps)}); the numbering is kept and those frames are filled in from their "
            "neighbours (interpolated, or held and flagged missing over long gaps). Render or copy the "
            "missing files and capture again to track them."]


def _read_image(f: Path) -> np.ndarray:
    """An image file as RGB uint8; InvalidInput naming the file when it is not a readable image."""
    if f.stat().st_size == 0:
        raise InvalidInput(f"{f.name}: the frame is empty (0 bytes); render or copy it again.")
    # IMREAD_COLOR applies the EXIF orientation, so photos come out upright too.
    try:
        image = cv2.imread(str(f), cv2.IMREAD_COLOR)
    except cv2.error:  # a codec OpenCV has but keeps disabled (EXR unless enabled at import)
        image = None
    if image is not None:
        return cv2.cvtColor(image, cv2.COLOR_BGR2RGB)
    # OpenCV reads no DPX, and EXR only when enabled at import: FFmpeg's image decoders read both.
    try:
        with av.open(str(f), mode="r", metadata_errors="replace") as container:
            for frame in container.decode(video=0):
                if "f16" in frame.format.name:  # half-float EXR: PyAV has no numpy form of gbrpf16le
                    frame = frame.reformat(format=frame.format.name.replace("f16", "f32"))
                if "f32" in frame.format.name:
                    return _linear_to_srgb8(np.asarray(frame.to_ndarray())[..., :3])
                return np.asarray(frame.to_ndarray(format="rgb24"))
    except (av.error.FFmpegError, IndexError, ValueError):
        pass
    raise InvalidInput(f"{f.name}: the frame is not a readable image (damaged, or not an image at all); "
                       "re-render or re-export it, or remove it and its number is reported as missing.")


def _linear_to_srgb8(rgb: np.ndarray) -> np.ndarray:
    """Scene-linear float RGB (EXR) as display sRGB uint8, which is what the trackers were trained on."""
    x = np.clip(np.nan_to_num(rgb.astype(np.float32)), 0.0, 1.0)
    srgb = np.where(x <= 0.0031308, 12.92 * x, 1.055 * np.power(x, 1 / 2.4) - 0.055)
    return np.ascontiguousarray(np.round(srgb * 255.0).astype(np.uint8))


def _probe_sequence(path: str | Path, seq: Sequence) -> MediaInfo:
    for number, f in seq.paths():
        # Reading every frame would cost as much as the capture; an empty one is cheap to spot.
        if f.stat().st_size == 0:
            raise InvalidInput(f"{f.name}: frame {number} is empty (0 bytes); render or copy it again.")
    h, w = _read_image(seq.path(seq.first)).shape[:2]
    count = seq.last - seq.first + 1
    return MediaInfo(
        path=str(path), fps=DEFAULT_SEQUENCE_FPS, frame_count=count,
        duration_s=count / DEFAULT_SEQUENCE_FPS, codec=seq.tail.rsplit(".", 1)[-1].lower(),
        width=w, height=h, rotation_deg=0, variable_frame_rate=False, has_audio=False,
        is_image_sequence=True, pixel_format="rgb24", first_frame=seq.first,
        missing_frames=tuple((a, b + 1) for a, b in seq.gaps()), sequence_pattern=seq.file_pattern(),
    )


def _iter_sequence(seq: Sequence, start: int, end: int | None, max_side: int | None, step: int = 1
                   ) -> Iterator[Frame]:
    lo = bisect.bisect_left(seq.frames, start)
    hi = len(seq.frames) if end is None else bisect.bisect_left(seq.frames, end)
    for number in seq.frames[lo:hi]:
        if (number - start) % step:
            continue
        image, scale = _to_rgb(_read_image(seq.path(number)), max_side, 0)
        yield Frame(index=number, time=(number - seq.first) / DEFAULT_SEQUENCE_FPS, image=image, scale=scale)
