"""Video probing and decoding on real clips, and on broken or unusual inputs made from them."""

from __future__ import annotations

from fractions import Fraction
from pathlib import Path

import av
import cv2
import numpy as np
import pytest

from inference_server.errors import InvalidInput, NotFound
from inference_server.media.video import iter_frames, poster_frame_png, probe

DATA = Path(__file__).parent / "data" / "video"
CAM01 = DATA / "pose2sim_cam01.mp4"  # H.264, 1080x1920 portrait, 60 fps, 100 frames, no audio
CAM02 = DATA / "pose2sim_cam02_vp9_audio.mp4"  # VP9 in MP4 with AAC audio, same trial


def _frames(path: Path, n: int, size: tuple[int, int] | None = None) -> list[np.ndarray]:
    out = []
    for f in iter_frames(path, end=n):
        out.append(f.image if size is None else cv2.resize(f.image, size, interpolation=cv2.INTER_AREA))
    return out


def _encode(path: Path, images: list[np.ndarray], pts: list[int] | None = None, rate: int = 30,
            rotation: int = 0) -> Path:
    with av.open(str(path), "w") as out:
        stream = out.add_stream("libx264", rate=rate)
        stream.height, stream.width = images[0].shape[:2]
        stream.pix_fmt = "yuv420p"
        stream.options = {"crf": "12"}
        if pts is not None:
            stream.codec_context.time_base = Fraction(1, 1000)
        if rotation:
            stream.set_display_rotation(rotation)
        for i, image in enumerate(images):
            frame = av.VideoFrame.from_ndarray(image, format="rgb24")
            frame.pts = i if pts is None else pts[i]
            if pts is not None:
                frame.time_base = Fraction(1, 1000)
            out.mux(stream.encode(frame))
        out.mux(stream.encode(None))
    return path


def test_probe_real_clips():
    info = probe(CAM01)
    assert (info.codec, info.width, info.height, info.frame_count) == ("h264", 1080, 1920, 100)
    assert info.fps == pytest.approx(60.0)
    assert info.duration_s == pytest.approx(100 / 60, abs=1e-3)
    assert not info.has_audio and not info.variable_frame_rate and not info.truncated
    assert info.rotation_deg == 0 and not info.is_image_sequence and info.pixel_format == "yuv420p"
    info = probe(CAM02)
    assert (info.codec, info.width, info.height, info.frame_count) == ("vp9", 1080, 1920, 100)
    assert info.has_audio


def test_iter_frames_times_scale_and_seek():
    frames = list(iter_frames(CAM01, max_side=480))
    assert [f.index for f in frames] == list(range(100))
    assert frames[1].time == pytest.approx(1 / 60) and frames[99].time == pytest.approx(99 / 60)
    assert frames[0].image.shape == (480, 270, 3) and frames[0].image.dtype == np.uint8
    assert frames[0].scale == pytest.approx(4.0)
    # Seeking to a frame gives exactly the frame that sequential decoding gives.
    seeked = list(iter_frames(CAM01, start=57, end=60, max_side=480))
    assert [f.index for f in seeked] == [57, 58, 59]
    for f in seeked:
        assert np.array_equal(f.image, frames[f.index].image)
        assert f.time == pytest.approx(frames[f.index].time)
    # Every third frame from 57: the same frames, the ones between not converted.
    stepped = list(iter_frames(CAM01, start=57, end=66, max_side=480, step=3))
    assert [f.index for f in stepped] == [57, 60, 63]
    assert all(np.array_equal(f.image, frames[f.index].image) for f in stepped)


def test_poster_frame_png():
    data = poster_frame_png(CAM01, max_side=128)
    image = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_COLOR)
    assert data[:8] == b"\x89PNG\r\n\x1a\n" and max(image.shape[:2]) == 128


@pytest.mark.parametrize("content, message", [
    (b"", "empty"),
    (b"just some text, not a video\n" * 10, "not a readable"),
])
def test_bad_files(tmp_path, content, message):
    p = tmp_path / "clip.mp4"
    p.write_bytes(content)
    with pytest.raises(InvalidInput, match=message):
        probe(p)
    with pytest.raises(InvalidInput, match=message):
        next(iter_frames(p))


def test_missing_file_and_no_video_stream(tmp_path):
    with pytest.raises(InvalidInput, match="not found"):
        probe(tmp_path / "nope.mp4")
    audio = tmp_path / "tone.m4a"
    with av.open(str(audio), "w") as out:
        stream = out.add_stream("aac", rate=44100)
        t = np.arange(44100, dtype=np.float32) / 44100
        frame = av.AudioFrame.from_ndarray(np.sin(2 * np.pi * 440 * t)[None].astype(np.float32),
                                           format="fltp", layout="mono")
        frame.sample_rate = 44100
        for packet in stream.encode(frame):
            out.mux(packet)
        out.mux(stream.encode(None))
    with pytest.raises(InvalidInput, match="no video stream"):
        probe(audio)


def test_truncated_file(tmp_path):
    # With the index at the front (faststart), a cut file still holds decodable frames.
    faststart = tmp_path / "faststart.mp4"
    with av.open(str(CAM01)) as src, av.open(str(faststart), "w", options={"movflags": "faststart"}) as out:
        stream = out.add_stream_from_template(src.streams.video[0])
        for packet in src.demux(src.streams.video[0]):
            if packet.dts is not None:
                packet.stream = stream
                out.mux(packet)
    cut = tmp_path / "cut.mp4"
    cut.write_bytes(faststart.read_bytes()[: int(faststart.stat().st_size * 0.4)])
    info = probe(cut)
    assert info.truncated and 10 < info.frame_count < 100
    assert len(list(iter_frames(cut, max_side=64))) == info.frame_count
    # The original has its index at the end: cut, nothing can be read.
    cut_end = tmp_path / "cut_end.mp4"
    cut_end.write_bytes(CAM01.read_bytes()[: int(CAM01.stat().st_size * 0.4)])
    with pytest.raises(InvalidInput):
        probe(cut_end)


def test_rotated_video_comes_out_upright(tmp_path):
    upright = _frames(CAM01, 6, size=(270, 480))  # portrait 270x480
    # Store the frames turned a quarter clockwise (landscape) with a display matrix that turns them
    # back, as a phone does.
    stored = [np.ascontiguousarray(np.rot90(im, -1)) for im in upright]
    path = _encode(tmp_path / "rotated.mp4", stored, rotation=90)
    info = probe(path)
    assert info.rotation_deg == 90 and (info.width, info.height) == (270, 480)
    out = list(iter_frames(path))
    assert len(out) == 6
    for got, want in zip(out, upright, strict=True):
        assert got.image.shape == want.shape
        assert np.abs(got.image.astype(int) - want).mean() < 6


def test_variable_frame_rate(tmp_path):
    images = _frames(CAM01, 12, size=(144, 256))
    pts_ms = [0, 33, 66, 100, 200, 233, 266, 400, 433, 466, 500, 700]
    path = _encode(tmp_path / "vfr.mp4", images, pts=pts_ms)
    info = probe(path)
    assert info.variable_frame_rate and info.frame_count == 12
    times = [f.time for f in iter_frames(path)]
    assert times == pytest.approx([t / 1000 for t in pts_ms], abs=2e-3)
    assert not probe(_encode(tmp_path / "cfr.mp4", images)).variable_frame_rate


def test_image_sequence(tmp_path):
    images = _frames(CAM01, 5, size=(90, 160))
    folder = tmp_path / "frames"
    folder.mkdir()
    for i, im in enumerate(images):
        cv2.imwrite(str(folder / f"img_{i + 8:04d}.png"), cv2.cvtColor(im, cv2.COLOR_RGB2BGR))
    (folder / "notes.txt").write_text("not a frame")
    for source in (folder, folder / "img_%04d.png", folder / "img_####.png", folder / "img_0008.png"):
        info = probe(source)
        assert info.is_image_sequence and info.frame_count == 5 and (info.width, info.height) == (90, 160)
        assert (info.first_frame, info.missing_frames, info.sequence_pattern) == (8, (), "img_####.png")
        # Frames keep their numbers on disk; a range counts those numbers.
        frames = list(iter_frames(source, start=9, end=11))
        assert [f.index for f in frames] == [9, 10]
        assert [f.time for f in frames] == pytest.approx([1 / 24, 2 / 24])
        assert np.array_equal(frames[0].image, images[1])  # PNG is lossless
        assert [f.index for f in iter_frames(source, start=0, end=10)] == [8, 9]  # before the first: from it
    with pytest.raises(NotFound, match="no file matches the pattern other_###.png"):
        probe(folder / "other_###.png")


def _write_exr(path: Path, rgb: np.ndarray) -> Path:
    """A scene-linear float EXR written by FFmpeg's encoder (OpenCV reads EXR only when enabled)."""
    ctx = av.CodecContext.create("exr", "w")
    ctx.height, ctx.width = rgb.shape[:2]
    ctx.pix_fmt, ctx.time_base = "gbrpf32le", Fraction(1, 24)
    frame = av.VideoFrame.from_ndarray(np.ascontiguousarray(rgb, dtype=np.float32), format="gbrpf32le")
    path.write_bytes(b"".join(bytes(p) for p in [*ctx.encode(frame), *ctx.encode(None)]))
    return path


def test_exr_sequence_and_unreadable_frames(tmp_path):
    rgb = np.zeros((16, 24, 3), np.float32)
    rgb[..., 0], rgb[..., 2] = 0.25, 1.0  # linear 0.25 is sRGB 137 of 255
    for n in (1001, 1002, 1004):
        _write_exr(tmp_path / f"beauty.{n}.exr", rgb)
    info = probe(tmp_path / "beauty.####.exr")
    assert (info.first_frame, info.frame_count, info.missing_frames) == (1001, 4, ((1003, 1004),))
    assert info.codec == "exr" and (info.width, info.height) == (24, 16)
    frames = list(iter_frames(tmp_path / "beauty.$F4.exr"))
    assert [f.index for f in frames] == [1001, 1002, 1004]
    assert frames[0].image[0, 0].tolist() == [137, 0, 255]
    (tmp_path / "beauty.1002.exr").write_bytes(b"not an image")
    with pytest.raises(InvalidInput, match=r"beauty\.1002\.exr: the frame is not a readable image"):
        list(iter_frames(tmp_path / "beauty.%04d.exr"))
    (tmp_path / "beauty.1004.exr").write_bytes(b"")
    with pytest.raises(InvalidInput, match=r"beauty\.1004\.exr: frame 1004 is empty"):
        probe(tmp_path)


def test_half_float_exr_frames_read_like_float_ones(tmp_path):
    """Compositors' plates are mostly half-float EXR (FFmpeg decodes them as gbrpf16le, which PyAV
    cannot turn into numpy directly)."""
    from inference_server.scene.exr import write_exr

    rgb = np.zeros((16, 24, 3), np.float32)
    rgb[..., 0], rgb[..., 2] = 0.25, 1.0
    write_exr(tmp_path / "plate.1001.exr", rgb, half=True)
    write_exr(tmp_path / "plate.1002.exr", rgb, half=False)
    frames = list(iter_frames(tmp_path / "plate.####.exr"))
    assert [f.image[0, 0].tolist() for f in frames] == [[137, 0, 255], [137, 0, 255]]
