"""scripts/eval_mocap.py's breakdown of where a single view's error is: each part taken from the
reference removes exactly the error of that part, on joints whose errors are known."""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "scripts"))

import eval_mocap  # noqa: E402

from inference_server.errors import KeygripError  # noqa: E402
from keygrip.projection import Camera  # noqa: E402


def _camera(turn: float, position: tuple[float, float, float]) -> Camera:
    """A camera at position turned about +Y by turn radians (looking down its -Z)."""
    c, s = np.cos(turn), np.sin(turn)
    to_world = np.eye(4)
    to_world[:3, :3] = [[c, 0, s], [0, 1, 0], [-s, 0, c]]
    to_world[:3, 3] = position
    return Camera(width=1000, height=1000, focal_x=900, focal_y=900, center_x=500, center_y=500,
                  camera_to_world=to_world)


def _body(frames: int = 6) -> np.ndarray:
    """(F, 12, 3) joints in eval_mocap.JOINTS order, limbs reaching towards and away from the view."""
    rng = np.random.default_rng(3)
    base = np.array([[0.1, 0.9, 0], [-0.1, 0.9, 0], [0.12, 0.5, 0.25], [-0.1, 0.5, -0.2], [0.12, 0.1, 0.1],
                     [-0.1, 0.1, -0.35], [0.18, 1.4, 0], [-0.18, 1.4, 0], [0.3, 1.15, 0.2],
                     [-0.3, 1.15, -0.15], [0.35, 0.9, 0.45], [-0.35, 0.95, -0.4]])
    return base + 0.01 * rng.standard_normal((frames, 12, 3))


def test_each_reference_part_removes_its_own_error() -> None:
    ref_cam = _camera(0.6, (2.0, 1.0, 3.5))
    ours_cam = _camera(-0.3, (-1.0, 1.2, 4.0))  # another camera: the parts are compared per view
    ref = _body()
    rays, depth = eval_mocap.in_view(ref, ref_cam)
    to_world = ours_cam.camera_to_world

    def placed(r: np.ndarray, d: np.ndarray) -> np.ndarray:
        return eval_mocap.from_view(r, d) @ to_world[:3, :3].T + to_world[:3, 3]

    exact = eval_mocap.error_sources(placed(rays, depth), ours_cam, ref, ref_cam)
    assert max(exact.values()) < 1e-6

    # Depth off by up to 20 cm per joint: only the reference's depth takes all of it away.
    noisy = depth + 0.2 * np.random.default_rng(5).uniform(-1, 1, depth.shape)
    found = eval_mocap.error_sources(placed(rays, noisy), ours_cam, ref, ref_cam)
    assert found["as solved"] > 20 and found["reference depth"] < 1e-6
    assert found["reference rays"] > 20

    # The left shin's depth mirrored about the knee: putting the depth order right undoes it.
    knee, ankle = 2, 4
    mirrored = depth.copy()
    mirrored[:, ankle] = 2 * depth[:, knee] - depth[:, ankle]
    found = eval_mocap.error_sources(placed(rays, mirrored), ours_cam, ref, ref_cam)
    assert found["as solved"] > 5 and found["reference depth order"] == pytest.approx(0, abs=1e-6)


def test_landmarks_are_cached_and_reused_for_the_same_video_only(tmp_path: Path) -> None:
    """A cached camera's landmarks are read back without running MediaPipe while the video is the same;
    another video under the same name is not given them."""
    from inference_server.mocap.landmarks import Landmarks

    frames = 3
    lm = Landmarks(times=np.arange(frames) / 60, frame_indices=np.arange(frames), image_size=(64, 48), fps=60.0,
                   pose_image=np.full((frames, 33, 3), 0.5), pose_world=np.zeros((frames, 33, 3)),
                   pose_visibility=np.ones((frames, 33)), pose_present=np.ones(frames, dtype=bool))
    video = tmp_path / "trial" / "videos" / "cam07.mp4"
    video.parent.mkdir(parents=True)
    (tmp_path / "cache").mkdir()
    video.write_bytes(b"not decodable: only the cache can answer" * 100)
    lm.save_npz(eval_mocap.cache_path(video, tmp_path / "cache"))
    back = eval_mocap.landmarks(video, tmp_path / "cache")
    assert back.image_size == (64, 48) and np.array_equal(back.pose_image, lm.pose_image)
    # Another file under the same name (same size, other bytes): not the cached one, so MediaPipe is asked,
    # and it says this is no video.
    video.write_bytes(b"Not decodable: only the cache can answer" * 100)
    assert eval_mocap.cache_path(video, tmp_path / "cache") != next((tmp_path / "cache").iterdir())
    with pytest.raises(KeygripError, match="cam07.mp4"):
        eval_mocap.landmarks(video, tmp_path / "cache")
