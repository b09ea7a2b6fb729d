"""Foot contacts, foot locking and the one two-bone IK (motion/foot_lock.py), on synthetic legs."""

from __future__ import annotations

import numpy as np

from inference_server.mocap import skeleton_fit
from inference_server.motion import foot_lock, quat
from inference_server.motion.clip import Skeleton, forward_kinematics


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


def _standing_legs(frames: int) -> tuple[Skeleton, np.ndarray, np.ndarray]:
    """A canonical skeleton standing on bent legs whose body sways 1 cm side to side and back and
    forth: the slide a lock must take out."""
    measures = skeleton_fit.BodyMeasures(
        hip_half_width=0.09, trunk=0.5, neck=0.15, shoulder_half_width=0.18, upper_arm=0.28, forearm=0.26,
        thigh=0.42, shin=0.40, ankle_height=0.07, heel_back=0.05, toe_front=0.15, ear_width=0.15)
    skeleton = skeleton_fit.build_skeleton(measures)
    rotations = quat.identity((frames, skeleton.num_joints))
    x_axis = np.array([1.0, 0.0, 0.0])
    for side in ("left", "right"):
        # Knee forward, shin back under it, foot flat.
        rotations[:, skeleton.index(f"{side}UpperLeg")] = quat.from_axis_angle(x_axis, np.radians(-25.0))
        rotations[:, skeleton.index(f"{side}LowerLeg")] = quat.from_axis_angle(x_axis, np.radians(50.0))
        rotations[:, skeleton.index(f"{side}Foot")] = quat.from_axis_angle(x_axis, np.radians(-25.0))
    t = np.arange(frames) / 60.0
    root = np.stack([0.01 * np.sin(7.0 * t), 0.85 + 0.005 * np.sin(3.0 * t), 0.01 * np.cos(5.0 * t)], axis=-1)
    return skeleton, rotations, root


def test_one_camera_moves_the_body_along_its_view_then_pins_the_ankle() -> None:
    fps, frames = 60.0, 90
    skeleton, rotations, root = _standing_legs(frames)
    contact = np.arange(frames) < 75
    camera = np.array([0.0, 1.0, 4.0])
    locked, locked_root = foot_lock.lock_skeleton_feet(skeleton, rotations, root, {"left": contact}, fps, camera)
    _, before = forward_kinematics(skeleton, rotations, root)
    _, after = forward_kinematics(skeleton, locked, locked_root)
    ankle = skeleton.index("leftFoot")
    anchor = before[:75, ankle].mean(axis=0)
    np.testing.assert_allclose(after[:75 - 7, ankle], np.broadcast_to(anchor, (75 - 7, 3)), atol=1e-6)
    # The root moved along the line of sight only (the depth a single view is unsure of).
    moved = locked_root - root
    ray = before[:, ankle] - camera
    across = moved - np.sum(moved * ray, axis=-1, keepdims=True) * ray / np.sum(ray * ray, axis=-1, keepdims=True)
    assert np.abs(moved).max() > 1e-3 and np.abs(across).max() < 1e-9


def test_a_calibrated_lock_keeps_the_body_and_lets_go_of_a_foot_that_moves_away() -> None:
    fps, frames, run = 60.0, 150, 120
    skeleton, rotations, root = _standing_legs(frames)
    # The contact was found too long: over its last 15 frames the body (and the foot) moves 12 cm forward.
    root[:, 2] += np.clip((np.arange(frames) - (run - 15)) / 15.0, 0.0, 1.0) * 0.12
    down = np.arange(frames) < run
    _, before = forward_kinematics(skeleton, rotations, root)
    locked, locked_root = foot_lock.lock_skeleton_feet(skeleton, rotations, root, {"left": down}, fps, None)
    _, after = forward_kinematics(skeleton, locked, locked_root)
    np.testing.assert_allclose(locked_root, root)  # the cameras placed the body: it stays
    ankle = before[:, skeleton.index("leftFoot")]
    anchor = ankle[:run].mean(axis=0)
    gap = np.linalg.norm(anchor - ankle, axis=-1)
    # Pinned on the anchor while within the hold of it (most of the run)...
    held = (gap < foot_lock.TRIANGULATED_HOLD_M) & down
    assert held[:run - 15].mean() > 0.9
    assert np.abs(after[held, skeleton.index("leftFoot")] - anchor).max() < 1e-6
    # ... and let go of once twice that far away: there it is where it was.
    far = (gap > 2 * foot_lock.TRIANGULATED_HOLD_M) & down
    assert far[run - 5:run].all()
    np.testing.assert_allclose(after[far, skeleton.index("leftFoot")], ankle[far], atol=1e-6)
