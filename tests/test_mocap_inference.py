"""MediaPipe inference on real video with the bundled models: single and parallel, cancel, 4K, preview."""

from __future__ import annotations

import copy
import multiprocessing
from pathlib import Path

import av
import cv2
import numpy as np
import pytest
from job_contexts import CancelAfter

from inference_server.errors import FailedPrecondition, JobCancelled
from inference_server.jobs.context import NullContext
from inference_server.media.video import iter_frames, probe
from inference_server.mocap.inference import detect
from inference_server.mocap.preview import write_preview

CAM01 = Path(__file__).parent / "data" / "video" / "pose2sim_cam01.mp4"  # one man balancing, 100 frames
FRAMES = 48


def _encode(path: Path, images: list[np.ndarray], rate: int = 60) -> Path:
    with av.open(str(path), "w") as out:
        stream = out.add_stream("libx264", rate=rate)
        stream.height, stream.width = images[0].shape[:2]
        stream.pix_fmt = "yuv420p"
        stream.options = {"crf": "14", "preset": "veryfast"}
        for i, image in enumerate(images):
            frame = av.VideoFrame.from_ndarray(image, format="rgb24")
            frame.pts = i
            out.mux(stream.encode(frame))
        out.mux(stream.encode(None))
    return path


@pytest.fixture(scope="module")
def single():
    ctx = NullContext()
    return detect(CAM01, end=FRAMES, workers=1, ctx=ctx), ctx


def test_detect_finds_the_person(single):
    lm, ctx = single
    assert lm.num_frames == FRAMES and lm.image_size == (1080, 1920) and lm.fps == pytest.approx(60)
    assert list(lm.frame_indices) == list(range(FRAMES))
    assert lm.times[1] == pytest.approx(1 / 60)
    assert lm.pose_present.mean() > 0.9
    xy = lm.pose_image[lm.pose_present][..., :2]
    assert np.all((xy > -0.1) & (xy < 1.1))
    # The subject stands in the middle of the portrait frame, head above hips (image y grows down).
    nose_y, hip_y = lm.pose_image[lm.pose_present, 0, 1], lm.pose_image[lm.pose_present, 23, 1]
    assert np.mean(nose_y) < np.mean(hip_y)
    world = lm.pose_world[lm.pose_present]
    assert np.isfinite(world).all() and np.abs(world).max() < 1.5
    assert np.isnan(lm.pose_image[~lm.pose_present]).all()
    assert lm.left_hand_image is None and lm.face_image is None
    stages = {e[0] for e in ctx.events}
    assert stages == {"inference"} and ctx.events[-1][1:3] == (FRAMES, FRAMES)


def test_parallel_chunks_match_single_process(single):
    lm1, _ = single
    lm2 = detect(CAM01, end=FRAMES, workers=2, ctx=NullContext())
    assert list(lm2.frame_indices) == list(lm1.frame_indices)
    assert np.array_equal(lm2.pose_present, lm1.pose_present)
    d = np.linalg.norm(lm2.pose_image[..., :2] - lm1.pose_image[..., :2], axis=-1)
    # After the warm-up the second chunk's tracker has settled onto the same landmarks.
    assert np.nanmedian(d) < 0.005 and np.nanmax(np.nanmean(d, axis=1)) < 0.03


def test_holistic_hands_are_the_subjects_own(tmp_path):
    lm = detect(CAM01, end=12, hands=True, workers=1, ctx=NullContext())
    assert lm.left_hand_image.shape == (12, 21, 3) and lm.face_image is None
    found = 0
    for hand, own, other in ((lm.left_hand_image, 15, 16), (lm.right_hand_image, 16, 15)):
        for f in range(lm.num_frames):
            if np.isnan(hand[f]).any():
                continue
            found += 1
            wrist = hand[f, 0, :2]
            assert np.linalg.norm(wrist - lm.pose_image[f, own, :2]) < np.linalg.norm(
                wrist - lm.pose_image[f, other, :2])
    assert found > 5


def test_nobody_in_the_clip(tmp_path):
    rng = np.random.default_rng(0)
    wall = np.full((360, 640, 3), (120, 140, 160), np.uint8)
    images = [np.clip(wall + rng.normal(0, 4, wall.shape), 0, 255).astype(np.uint8) for _ in range(30)]
    path = _encode(tmp_path / "empty_room.mp4", images)
    with pytest.raises(FailedPrecondition, match="no person found in frames 0-29 of empty_room.mp4"):
        detect(path, workers=1, ctx=NullContext())


def test_cancel_stops_and_ends_workers():
    ctx = CancelAfter(3)
    with pytest.raises(JobCancelled):
        detect(CAM01, workers=2, ctx=ctx)
    assert ctx.calls == 4  # it stopped at the first check that raised
    assert multiprocessing.active_children() == []
    assert not ctx.events or ctx.events[-1][1] < 100


def test_4k_input_matches_low_resolution(tmp_path, single):
    lm_low, _ = single
    n = 6
    frames = [cv2.resize(f.image, (2160, 3840), interpolation=cv2.INTER_CUBIC)
              for f in iter_frames(CAM01, end=n)]
    path = _encode(tmp_path / "uhd.mp4", frames)
    assert (probe(path).width, probe(path).height) == (2160, 3840)
    lm = detect(path, workers=1, ctx=NullContext())
    assert lm.image_size == (2160, 3840) and lm.pose_present.all()
    d = np.linalg.norm(lm.pose_image[..., :2] - lm_low.pose_image[:n, :, :2], axis=-1)
    assert np.nanmedian(d) < 0.02


def test_preview_video(tmp_path, single):
    lm = copy.deepcopy(single[0])
    lm.pose_present[5] = False
    lm.pose_image[5] = np.nan
    out = write_preview(CAM01, lm, tmp_path / "preview.mp4", max_side=480)
    info = probe(out)
    assert info.codec == "h264" and info.frame_count == FRAMES and (info.width, info.height) == (270, 480)
    plain = {f.index: f.image.astype(int) for f in iter_frames(CAM01, end=FRAMES, max_side=480)}
    drawn = {f.index: f.image.astype(int) for f in iter_frames(out)}
    # Lines were drawn over the person, and the flagged frame carries a red label, not a skeleton.
    assert np.abs(drawn[10] - plain[10]).mean() > np.abs(drawn[5] - plain[5]).mean()
    label = drawn[5][:60, :200] - plain[5][:60, :200]
    assert ((label[..., 0] - label[..., 1]) > 60).sum() > 30
