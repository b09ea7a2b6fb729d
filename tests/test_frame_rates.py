"""Any frame rate from 5 to 240 fps and any clip length from one frame up: solver, retarget, clip tools.

Real landmarks, taken once: MediaPipe Holistic (body, hands, face) on tests/data/video/pose2sim_cam01.mp4.
The source pixelated the subject's face, so MediaPipe finds no face mesh in it; a face mesh built on
the clip's own head landmarks (eyes, nose, mouth) stands in for it, so that the face's filter and
calibration run on every clip of the sweep (the GRID test below uses a real face where the local-only
data is present). The landmarks are re-timed and sliced to every frame rate and length of the sweep;
every combination must give finite motion with the right number of frames, or a KeygripError, and
the warnings must say which steps a short clip or a low frame rate skipped or limited.
"""

from __future__ import annotations

import dataclasses
import re
from fractions import Fraction
from pathlib import Path

import av
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from inference_server.animation import cliptools
from inference_server.animation.gltf_rig import read_gltf_rig
from inference_server.animation.retarget import RetargetOptions, retarget
from inference_server.animation.rig import Rig
from inference_server.errors import FailedPrecondition, InvalidInput
from inference_server.jobs.context import NullContext
from inference_server.mocap import filters
from inference_server.mocap.inference import detect
from inference_server.mocap.landmarks import Landmarks
from inference_server.mocap.options import SolveOptions
from inference_server.mocap.preview import write_preview
from inference_server.mocap.solve import solve
from inference_server.motion import foot_lock
from inference_server.motion.bvh import read_bvh
from inference_server.motion.clip import FrameFlag, MotionClip
from keygrip.tensors import from_tensor
from keygrip.v1 import mocap_pb2

DATA = Path(__file__).parent / "data"
CAM01 = DATA / "video" / "pose2sim_cam01.mp4"  # 1080x1920, 60 fps, 100 frames, one person
SHARED = Path(__file__).resolve().parents[2] / "shared" / "data"  # local-only; tests skip without it
GRID = SHARED / "face_video" / "grid" / "id2_vcd_swwp2s.mpg"  # a talking face, 25 fps

RATES = [5.0, 7.5, 10.0, 12.5, 15.0, 23.976, 24.0, 25.0, 29.97, 30.0, 50.0, 60.0, 120.0, 240.0]
LENGTHS = [1, 2, 3, 4, 5, 8, 16, 100]
SMOOTHING = [0.0, 0.5, 1.0]


# Landmarks -----------------------------------------------------------------------------------------

def _face_on_head(lm: Landmarks) -> np.ndarray:
    """A (F, 468, 3) face mesh on the pose's own head landmarks: the points face.py measures placed
    from the eyes, nose and mouth, the eyelids blinking now and then, the rest on the nose."""
    p = lm.pose_image.astype(np.float64)
    f = len(p)
    eye_l, eye_r, mouth = p[:, 2], p[:, 5], 0.5 * (p[:, 9] + p[:, 10])
    up = 0.5 * (eye_l + eye_r) - mouth
    face = np.repeat(p[:, [0]], 468, axis=1)
    rng = np.random.default_rng(16)
    lid = (0.15 * (np.arange(f) % 25 > 2) + 0.01 * rng.standard_normal(f))[:, None]  # a blink every 25 frames
    jaw = (0.05 + 0.05 * np.sin(np.arange(f) / 4.0))[:, None]
    points = {263: p[:, 3], 362: p[:, 1], 33: p[:, 6], 133: p[:, 4],  # eye corners
              386: eye_l + lid * up, 374: eye_l - 0.05 * up, 159: eye_r + lid * up, 145: eye_r - 0.05 * up,
              13: mouth + jaw * up, 14: mouth - jaw * up, 0: mouth + 0.2 * up, 291: p[:, 9], 61: p[:, 10],
              1: p[:, 0], 152: mouth - (0.8 + jaw) * up, 10: 0.5 * (eye_l + eye_r) + 1.2 * up,
              336: p[:, 1] + 0.3 * up, 300: p[:, 3] + 0.3 * up, 107: p[:, 4] + 0.3 * up, 70: p[:, 6] + 0.3 * up}
    for index, value in points.items():
        face[:, index] = value
    return face.astype(np.float32)


@pytest.fixture(scope="module")
def landmarks() -> Landmarks:
    lm = detect(CAM01, hands=True, face=True, workers=1, ctx=NullContext())
    assert lm.num_frames == 100 and lm.pose_present.all()
    assert lm.face_image is not None and lm.left_hand_image is not None
    if not np.isfinite(lm.face_image).all(axis=(1, 2)).any():  # the source pixelated the face
        lm = dataclasses.replace(lm, face_image=_face_on_head(lm))
    return lm


@pytest.fixture(scope="module")
def cesium() -> Rig:
    return read_gltf_rig(DATA / "models" / "CesiumMan.glb")


@pytest.fixture(scope="module")
def walk() -> MotionClip:
    """2 s of a real BVH walk (120 fps): retargeting detects its foot contacts itself."""
    return cliptools.trim(read_bvh(DATA / "bvh" / "cmu_131_01_walk.bvh"), 2.0, 4.0)


def retime(lm: Landmarks, fps: float, frames: int, start: int = 0) -> Landmarks:
    """frames frames of lm from start, as if shot at fps."""
    f = lm.num_frames
    per_frame = {k: v[start:start + frames] for k, v in vars(lm).items()
                 if isinstance(v, np.ndarray) and v.ndim >= 1 and len(v) == f}
    n = len(per_frame["times"])
    return dataclasses.replace(lm, **{**per_frame, "times": np.arange(n) / fps, "fps": float(fps)})


def without(lm: Landmarks, track: str, keep: list[int]) -> Landmarks:
    """lm with track ("pose", "face", "left_hand", "right_hand") lost in every frame but keep."""
    lost = np.ones(lm.num_frames, dtype=bool)
    lost[keep] = False
    if track == "pose":
        return dataclasses.replace(
            lm, pose_present=lm.pose_present & ~lost,
            pose_image=np.where(lost[:, None, None], np.nan, lm.pose_image),
            pose_world=np.where(lost[:, None, None], np.nan, lm.pose_world),
            pose_visibility=np.where(lost[:, None], 0.0, lm.pose_visibility))
    name = f"{track}_image"
    return dataclasses.replace(lm, **{name: np.where(lost[:, None, None], np.nan, getattr(lm, name))})


# Checks ------------------------------------------------------------------------------------------

def _finite_clip(clip: MotionClip, frames: int) -> None:
    assert clip.num_frames == frames and clip.rotations.shape[0] == frames
    assert np.isfinite(clip.rotations).all() and np.isfinite(clip.root_translation).all()
    assert np.allclose(np.linalg.norm(clip.rotations, axis=-1), 1.0, atol=1e-6)
    assert clip.face_curves.shape[0] == frames and np.isfinite(clip.face_curves).all()
    assert clip.contacts.shape[0] == frames and np.isfinite(clip.times).all()


def _solve(lm: Landmarks, smoothing: float) -> MotionClip:
    clip = solve(lm, SolveOptions(hands=True, face=True, smoothing=smoothing, foot_lock=True))
    _finite_clip(clip, lm.num_frames)
    assert all(isinstance(w, str) and w for w in clip.warnings)
    return clip


def _retarget(clip: MotionClip, rig: Rig) -> None:
    res = retarget(clip, rig, options=RetargetOptions(foot_lock=True))
    n = clip.num_frames
    assert res.rotations.shape == (n, rig.num_bones, 4) and np.isfinite(res.rotations).all()
    assert all(v.shape == (n, 3) and np.isfinite(v).all() for v in res.locations.values())
    assert np.isfinite(res.root_position_world).all() and res.contacts is not None and len(res.contacts) == n
    assert res.face_curves is not None and res.face_curves.shape[0] == n


def _clip_tools(clip: MotionClip, foot_sliding: bool = True) -> None:
    duration = clip.times[-1] - clip.times[0]
    for rate in (24.0, 30.0, 60.0):
        out = cliptools.resample(clip, rate)
        _finite_clip(out, int(np.floor(duration * rate + 1e-6)) + 1)
        assert out.fps == rate
    half = 0.5 * clip.times[-1]
    _finite_clip(cliptools.trim(clip, 0.0, half), int((clip.times <= half + 1e-9).sum()))
    _finite_clip(cliptools.smooth(clip, 0.05), clip.num_frames)
    if foot_sliding:  # a retarget onto the clip's own (canonical) rig with foot locking
        _finite_clip(cliptools.remove_foot_sliding(clip), clip.num_frames)


def _attempt(failures: list[str], label: str, check, *args):
    """Run check(*args); an exception that is not a KeygripError is a failure, recorded with its label."""
    try:
        return check(*args)
    except (InvalidInput, FailedPrecondition) as exc:
        failures.append(f"{label}: refused: {exc}")  # none expected on these landmarks
    except Exception as exc:  # noqa: BLE001 - the sweep reports every combination that breaks
        failures.append(f"{label}: {type(exc).__name__}: {exc}")
    return None


# The sweep ---------------------------------------------------------------------------------------

@pytest.mark.parametrize("fps", RATES)
def test_every_length_and_smoothing_at(fps: float, landmarks: Landmarks, cesium: Rig, walk: MotionClip) -> None:
    failures: list[str] = []
    for frames in LENGTHS:
        lm = retime(landmarks, fps, frames)
        for smoothing in SMOOTHING:
            label = f"{fps:g} fps, {frames} frames, smoothing {smoothing:g}"
            clip = _attempt(failures, f"{label}: solve", _solve, lm, smoothing)
            if clip is not None and smoothing == 0.5:
                _attempt(failures, f"{label}: retarget", _retarget, clip, cesium)
                _attempt(failures, f"{label}: clip tools", _clip_tools, clip, frames in (1, 3, 100))
        # A BVH at this rate: the retarget finds the contacts itself.
        bvh = cliptools.resample(walk, fps)
        _attempt(failures, f"{fps:g} fps BVH, {frames} frames: retarget", _retarget,
                 cliptools.trim(bvh, 0.0, bvh.times[min(frames, bvh.num_frames) - 1]), cesium)
    assert not failures, "\n".join(failures)


@settings(max_examples=12, deadline=None, derandomize=True)
@given(fps=st.floats(5.0, 240.0), frames=st.integers(1, 100), start=st.integers(0, 99),
       smoothing=st.floats(0.0, 1.0), drop=st.sampled_from([0.0, 0.3, 0.95]), seed=st.integers(0, 2**16))
def test_random_rates_lengths_and_lost_frames(landmarks: Landmarks, cesium: Rig, fps: float, frames: int,
                                              start: int, smoothing: float, drop: float, seed: int) -> None:
    lm = retime(landmarks, fps, frames, start)
    rng = np.random.default_rng(seed)
    for track in ("pose", "face", "left_hand", "right_hand"):
        lm = without(lm, track, list(np.flatnonzero(rng.random(lm.num_frames) >= drop)))
    if not lm.pose_present.any():
        with pytest.raises(FailedPrecondition, match="No person was found"):
            solve(lm, SolveOptions(hands=True, face=True, smoothing=smoothing))
        return
    clip = _solve(lm, smoothing)
    _retarget(clip, cesium)
    _clip_tools(clip)


@pytest.mark.parametrize("fps", [5.0, 240.0])
def test_lost_tracks_and_single_frames(fps: float, landmarks: Landmarks) -> None:
    """Tracks found in no frame or in one frame only (the first, a middle one, the last); at 5 fps
    gaps of one frame are filled, at 240 fps gaps longer than these clips."""
    failures: list[str] = []
    for frames in (1, 3, 16):
        base = retime(landmarks, fps, frames)
        for track in ("face", "left_hand", "right_hand", "pose"):
            for keep in sorted({(), (0,), (frames // 2,), (frames - 1,)}):
                lm = without(base, track, list(keep))
                label = f"{fps:g} fps, {frames} frames, {track} only in frames {list(keep)}"
                if not keep and track == "pose":
                    with pytest.raises(FailedPrecondition, match="No person was found"):
                        solve(lm, SolveOptions(hands=True, face=True))
                    continue
                clip = _attempt(failures, label, _solve, lm, 0.5)
                if not keep and track == "face" and clip is not None:
                    assert any("face was asked for but not found" in w for w in clip.warnings)
    assert not failures, "\n".join(failures)


# What a user is told ------------------------------------------------------------------------------

def test_warnings_say_what_was_skipped_or_limited(landmarks: Landmarks, cesium: Rig) -> None:
    assert _solve(retime(landmarks, 60.0, 100), 0.5).warnings == []  # the clip as shot: nothing to say
    webcam = _solve(retime(landmarks, 15.0, 100), 0.5).warnings
    assert len(webcam) == 1 and webcam[0].startswith("15 fps limits smoothing of the face"), webcam
    assert "raise smoothing" in webcam[0]
    slow = _solve(retime(landmarks, 5.0, 100), 0.5).warnings
    assert any(w.startswith("5 fps limits smoothing of the body") for w in slow), slow
    assert _solve(retime(landmarks, 15.0, 100), 0.0).warnings == []  # no smoothing asked, none limited
    three = _solve(retime(landmarks, 60.0, 3), 0.5).warnings
    assert "clip has 3 frames: smoothing skipped (needs at least 4)" in three
    assert any("face" in w and "average face" in w for w in three)  # 3 frames cannot calibrate a face
    one = _solve(retime(landmarks, 60.0, 1), 0.5)
    assert "clip has 1 frame: foot contact detection and foot locking skipped (needs at least 3 at 60 fps)" \
        in one.warnings
    assert any("floor is taken as level with the camera" in w for w in one.warnings)
    assert not one.contacts.any()
    res = retarget(one, cesium, options=RetargetOptions(foot_lock=True))
    assert any(w.startswith("clip has 1 frame: foot locking skipped") for w in res.warnings), res.warnings


def test_filters_and_windows_at_any_rate() -> None:
    t = np.arange(50)
    signal = np.stack([np.sin(t / 3.0), np.cos(t / 5.0)], axis=1)
    for fps in RATES + [1.0, 1000.0]:
        for cutoff in (0.1, 0.45 * fps, fps, 100.0 * fps):
            out = filters.lowpass(signal, fps, cutoff)
            assert out.shape == signal.shape and np.isfinite(out).all()
        assert filters.smoothing_cutoff_hz(0.5, fps) <= filters.max_cutoff_hz(fps)
    for bad_fps in (0.0, float("nan"), float("inf")):
        np.testing.assert_array_equal(filters.lowpass(signal, bad_fps, 4.0), signal)
    np.testing.assert_array_equal(filters.lowpass(signal[:3], 60.0, 4.0), signal[:3])
    # One valid frame and a gap limit longer than the clip: the ends hold, nothing is read past them.
    values = np.arange(5.0)[:, None]
    filled, flags = filters.fill_gaps(values, np.array([False, False, True, False, False]), max_gap=10)
    np.testing.assert_array_equal(filled[:, 0], [2.0] * 5)
    assert list(flags) == [FrameFlag.MISSING] * 2 + [FrameFlag.TRACKED] + [FrameFlag.MISSING] * 2
    # Contacts last at least 0.05 s, and never less than 2 frames.
    assert [foot_lock.min_contact_frames(r) for r in (5.0, 30.0, 60.0, 240.0, float("nan"))] == [2, 2, 3, 12, 2]


def test_clip_tools_refuse_unusable_numbers(landmarks: Landmarks) -> None:
    clip = solve(retime(landmarks, 30.0, 8), SolveOptions())
    for fps in (0.0, -24.0, float("nan"), float("inf")):
        with pytest.raises(InvalidInput, match="fps must be a positive number"):
            cliptools.resample(clip, fps)
    for strength in (-1.0, float("nan"), float("inf")):
        with pytest.raises(InvalidInput, match="smoothing strength"):
            cliptools.smooth(clip, strength)
    # A clip whose frame rate is unknown (0 or NaN) takes it from its times.
    for unknown in (0.0, float("nan")):
        odd = dataclasses.replace(clip, fps=unknown)
        assert odd.frame_rate == pytest.approx(30.0)
        _finite_clip(cliptools.smooth(odd, 0.1), 8)
    unknown_rate = solve(dataclasses.replace(retime(landmarks, 30.0, 8), fps=float("nan")), SolveOptions())
    assert unknown_rate.fps == pytest.approx(30.0)
    assert any("no usable frame rate" in w for w in unknown_rate.warnings)


def test_preview_at_any_rate(landmarks: Landmarks, tmp_path: Path) -> None:
    for fps in (5.0, 23.976, 240.0, 0.0, float("nan")):  # 0 and NaN: a file without a usable rate
        lm = dataclasses.replace(retime(landmarks, 30.0, 4), fps=fps)
        with av.open(str(write_preview(CAM01, lm, tmp_path / f"preview_{fps}.mp4"))) as video:
            stream = video.streams.video[0]
            assert stream.frames == 4 and float(stream.average_rate) == pytest.approx(fps if fps > 0 else 30.0, 1e-3)


@pytest.mark.skipif(not GRID.is_file(), reason="GRID clips are local-only evaluation data (../shared/data)")
def test_a_real_face_at_low_rates() -> None:
    lm = detect(GRID, end=40, face=True, workers=1, ctx=NullContext())
    assert lm.face_image is not None and np.isfinite(lm.face_image).all(axis=(1, 2)).sum() > 30
    for fps in (5.0, 12.5, 15.0):
        for frames in (1, 4, 40):
            clip = solve(retime(lm, fps, frames), SolveOptions(face=True, smoothing=0.5))
            _finite_clip(clip, frames)
            assert ((clip.face_curves >= 0) & (clip.face_curves <= 1)).all()


# Through the server --------------------------------------------------------------------------------

def _reencode(source: Path, dest: Path, *, fps: int, frames: int, every: int, width: int, height: int) -> Path:
    """Every `every`-th frame of source, downscaled, as an H.264 MP4 at fps (frames frames)."""
    with av.open(str(source)) as src, av.open(str(dest), "w") as out:
        stream = out.add_stream("libx264", rate=Fraction(fps))
        stream.width, stream.height, stream.pix_fmt = width, height, "yuv420p"
        kept = 0
        for i, frame in enumerate(src.decode(video=0)):
            if i % every or kept >= frames:
                continue
            small = frame.reformat(width=width, height=height, format="yuv420p")
            small.pts, small.time_base = kept, Fraction(1, fps)
            out.mux(stream.encode(small))
            kept += 1
        out.mux(stream.encode(None))
    return dest


def test_capture_a_15_fps_clip_with_the_face_on(client, tmp_path: Path) -> None:
    clip_path = _reencode(CAM01, tmp_path / "webcam_15fps.mp4", fps=15, frames=30, every=3, width=272,
                          height=480)
    result: mocap_pb2.CaptureMotionResult = client.capture_motion(clip_path, face=True, workers=1).result(
        timeout=300)
    s = result.summary
    assert s.frames == 30 and s.tracked_frames + s.interpolated_frames + s.missing_frames == 30
    assert s.tracked_frames >= 20
    clip = client.read_clip(result.clip)
    assert clip.fps == pytest.approx(15.0)
    times = from_tensor(clip.times)
    assert len(times) == 30 and np.allclose(np.diff(times), 1 / 15, atol=1e-3)
    assert np.isfinite(from_tensor(clip.rotations)).all()
    # The source pixelated the face: the job says so instead of failing, and says nothing else odd.
    warnings = list(result.warnings)
    assert len(warnings) == 1 and warnings[0].startswith("the face was asked for but not found"), warnings
    assert not any(re.search(r"\w+Error\(|Traceback", w) for w in warnings), warnings
