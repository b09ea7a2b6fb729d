"""The cameras a MotionClip carries: OpenCV calibrations in and out of the one camera model, and the
wire format (a clip keeps its cameras through a round trip; a damaged camera is refused by name)."""

from __future__ import annotations

import cv2
import numpy as np
import pytest

from inference_server.motion.clip import MotionClip, Skeleton
from inference_server.motion.wire import clip_from_proto, clip_to_proto
from keygrip.projection import Camera, VideoCamera

# cam01 of the Pose2Sim balancing trial's calibration (OpenCV convention, Rodrigues rotation).
K = np.array([[1671.5012042021037, 0.0, 564.6403499852015], [0.0, 1671.3866928599075, 933.0074897877159],
              [0.0, 0.0, 1.0]])
RVEC = np.array([1.678784562972848, 1.031972654261743, -0.3910235872501538])
TVEC = np.array([0.2609476905995074, 0.9641586618892432, 2.932963441842366])


def test_from_opencv_projects_like_opencv() -> None:
    cam = Camera.from_opencv(K, RVEC, TVEC, width=1088, height=1920)
    rng = np.random.default_rng(0)
    points = rng.uniform(-0.8, 0.8, (50, 3)) + [0.0, 0.0, 0.9]   # around the trial's subject
    expected = cv2.projectPoints(points, RVEC, TVEC, K, None)[0].reshape(-1, 2)
    u, v, depth = cam.project(points)
    assert np.all(depth > 0)
    # OpenCV's pixel centres are on integers, ours at +0.5.
    np.testing.assert_allclose(np.stack([u, v], axis=1) - 0.5, expected, atol=1e-6)
    k, r, t = cam.to_opencv()
    np.testing.assert_allclose(k, K, atol=1e-9)
    np.testing.assert_allclose(r, cv2.Rodrigues(RVEC)[0], atol=1e-9)
    np.testing.assert_allclose(t, TVEC, atol=1e-9)


def _clip(cameras: list[VideoCamera]) -> MotionClip:
    skeleton = Skeleton(["hips", "spine"], np.array([-1, 0]), np.array([[0, 0, 0], [0, 0.1, 0]]))
    frames = 3
    return MotionClip(skeleton, 30.0, np.arange(frames) / 30.0, np.tile([0, 0, 0, 1.0], (frames, 2, 1)),
                      np.zeros((frames, 3)), cameras=cameras)


def test_clip_keeps_its_cameras_on_the_wire() -> None:
    cam = VideoCamera("cam01", Camera.from_opencv(K, RVEC, TVEC, 1088, 1920),
                      distortion=(-0.05, 0.15, -0.0001, 0.0006), video="cam01.mp4", frame_offset=4)
    back = clip_from_proto(clip_to_proto(_clip([cam])))
    (got,) = back.cameras
    assert (got.name, got.video, got.frame_offset, got.distortion) == ("cam01", "cam01.mp4", 4, cam.distortion)
    assert (got.camera.width, got.camera.height) == (1088, 1920)
    np.testing.assert_allclose(got.camera.camera_to_world, cam.camera.camera_to_world)
    assert clip_from_proto(clip_to_proto(_clip([]))).cameras == []


def test_a_damaged_camera_is_refused_by_name() -> None:
    msg = clip_to_proto(_clip([VideoCamera("cam02", Camera.from_opencv(K, RVEC, TVEC, 1088, 1920))]))
    del msg.cameras[0].camera_to_world[3:]
    with pytest.raises(ValueError, match="cam02: camera_to_world must hold 16 numbers"):
        clip_from_proto(msg)
