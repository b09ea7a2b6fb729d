"""Foot contacts and the one two-bone IK (motion/foot_lock.py), on synthetic legs."""

from __future__ import annotations

import numpy as np

from inference_server.motion import foot_lock, quat


def _leg(frames: int, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Bent legs, randomly tilted: hip at the origin, thigh 0.45 m, shin 0.42 m."""
    hip = np.zeros((frames, 3))
    knee = hip + np.array([0.0, -0.4, 0.2]) * 0.45 / np.hypot(0.4, 0.2)
    ankle = knee + np.array([0.0, -0.4, -0.2]) * 0.42 / np.hypot(0.4, 0.2)
    tilt = quat.from_axis_angle(rng.normal(size=(frames, 3)), rng.uniform(0, 0.3, frames))
    return hip, quat.rotate(tilt, knee), quat.rotate(tilt, ankle)


def _apply(hip: np.ndarray, knee: np.ndarray, ankle: np.ndarray, upper: np.ndarray,
           lower: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    new_knee = hip + quat.rotate(upper, knee - hip)
    return new_knee, new_knee + quat.rotate(lower, ankle - knee)


def test_two_bone_ik_reaches_and_keeps_bone_lengths() -> None:
    rng = np.random.default_rng(0)
    hip, knee, ankle = _leg(200, rng)
    target = ankle + rng.uniform(-0.05, 0.05, ankle.shape)  # all within reach
    upper, lower = foot_lock.two_bone_ik(hip, knee, ankle, target)
    new_knee, new_ankle = _apply(hip, knee, ankle, upper, lower)
    np.testing.assert_allclose(new_ankle, target, atol=1e-9)
    np.testing.assert_allclose(np.linalg.norm(new_knee - hip, axis=-1), 0.45, atol=1e-9)
    np.testing.assert_allclose(np.linalg.norm(new_ankle - new_knee, axis=-1), 0.42, atol=1e-9)
    # The knee stays in the plane of the target direction and where it was.
    normal = np.cross(target - hip, knee - hip)
    assert np.abs(np.sum(normal * (new_knee - hip), axis=-1)).max() < 1e-9


def test_two_bone_ik_out_of_reach_and_straight() -> None:
    hip = np.zeros((1, 3))
    knee, ankle = np.array([[0.0, -0.45, 0.0]]), np.array([[0.0, -0.87, 0.0]])  # straight
    far = np.array([[0.0, -2.0, 0.3]])
    upper, lower = foot_lock.two_bone_ik(hip, knee, ankle, far, np.array([[1.0, 0.0, 0.0]]))
    _, new_ankle = _apply(hip, knee, ankle, upper, lower)
    # Out of reach: as far as the bones go, towards the target, the knee still a little bent.
    assert 0.869 < np.linalg.norm(new_ankle) < 0.87
    np.testing.assert_allclose(new_ankle / np.linalg.norm(new_ankle), far / np.linalg.norm(far), atol=1e-9)
    # A straight leg pulled up bends its knee forward, about the side axis it is given.
    up = np.array([[0.0, -0.6, 0.0]])
    upper, lower = foot_lock.two_bone_ik(hip, knee, ankle, up, np.array([[1.0, 0.0, 0.0]]))
    new_knee, new_ankle = _apply(hip, knee, ankle, upper, lower)
    np.testing.assert_allclose(new_ankle, up, atol=1e-9)
    assert new_knee[0, 2] > 0.2 and abs(new_knee[0, 0]) < 1e-9


def test_contacts() -> None:
    fps, frames = 60.0, 120
    t = np.arange(frames) / fps
    # Point 0 stands on the floor; point 1 walks fast along x at floor height; point 2 hovers.
    points = np.zeros((frames, 3, 3))
    points[:, 1, 0] = 1.5 * t
    points[:, 2, 1] = 0.3
    camera = np.array([0.0, 1.0, 4.0])
    assert foot_lock.floor_contacts(points, fps, camera).tolist() == [[True, False, False]] * frames
    relative = foot_lock.relative_contacts(points + [0.0, 0.5, 0.0], fps, leg_length=0.9)
    assert relative[:, 0].all() and not relative[:, 1].any()
    assert foot_lock.spans(np.array([0, 1, 1, 0, 1], bool)) == [(1, 3), (4, 5)]
