"""Foot contacts and foot locking.

Contacts come from height above the floor and speed with hysteresis (entering contact needs the
point low and slow, leaving it needs it clearly up or moving), so noise near the thresholds does
not make contacts flicker. Locking pins each foot's ankle during a contact and re-solves the leg
with analytic two-bone IK, blending in and out around the contact.

From one camera, depth is the least certain direction: speeds are measured across the camera's
line of sight, and a locked foot first moves the whole body along that line (where the root's
depth jitter lives) before IK bends the leg for what is left.
"""

from __future__ import annotations

import numpy as np
from scipy import ndimage

from inference_server.motion import quat
from inference_server.motion.clip import Skeleton, forward_kinematics

# Thresholds for a contact point (metres above the floor, metres per second horizontally).
HEIGHT_ON, HEIGHT_OFF = 0.06, 0.10
SPEED_ON, SPEED_OFF = 0.35, 0.60
_MIN_FRAMES = 3  # contacts and gaps shorter than this are noise
_BLEND_S = 0.1  # blend time into and out of a lock, seconds


def _across_view(vectors: np.ndarray, points: np.ndarray, camera: np.ndarray) -> np.ndarray:
    """Components of vectors (..., 3) at points (..., 3) normal to the camera's line of sight."""
    ray = points - camera
    ray = ray / np.maximum(np.linalg.norm(ray, axis=-1, keepdims=True), 1e-9)
    return vectors - np.sum(vectors * ray, axis=-1, keepdims=True) * ray


def detect_contacts(points: np.ndarray, fps: float, camera: np.ndarray) -> np.ndarray:
    """Contacts (F, C) bool for contact points (F, C, 3), Y-up metres with the floor at y = 0,
    seen from a camera at camera (3,)."""
    f = len(points)
    if f < 2:
        return points[..., 1] < HEIGHT_ON
    height = points[..., 1]
    velocity = _across_view(np.gradient(points, axis=0), points, camera)
    speed = np.linalg.norm(velocity[..., [0, 2]], axis=-1) * fps
    on = (height < HEIGHT_ON) & (speed < SPEED_ON)
    off = (height > HEIGHT_OFF) | (speed > SPEED_OFF)
    # Hysteresis without a frame loop: each frame takes the state of the latest on/off event.
    idx = np.arange(f)[:, None]
    last_on = np.maximum.accumulate(np.where(on, idx, -1), axis=0)
    last_off = np.maximum.accumulate(np.where(off, idx, -1), axis=0)
    state = last_on > last_off
    structure = np.ones((_MIN_FRAMES, 1), dtype=bool)
    state = ndimage.binary_closing(state, structure=structure, border_value=0) | state
    return ndimage.binary_opening(state, structure=structure)


def _segment_anchors(contact: np.ndarray, positions: np.ndarray, fps: float
                     ) -> tuple[np.ndarray, np.ndarray]:
    """Lock targets (F, 3) and blend weights (F,) for one foot.

    Each contact segment pins the ankle at its mean position over the segment; frames just
    outside a segment blend from the free pose towards that anchor over _BLEND_S.
    """
    f = len(contact)
    if not contact.any():
        return positions.copy(), np.zeros(f)
    labels, count = ndimage.label(contact)
    sums = np.stack([np.bincount(labels, positions[:, k], minlength=count + 1) for k in range(3)], -1)
    anchors = sums / np.maximum(np.bincount(labels, minlength=count + 1), 1)[:, None]
    # Nearest contact frame of every frame and how far it is.
    dist, (nearest,) = ndimage.distance_transform_edt(~contact, return_indices=True)
    blend_frames = max(_BLEND_S * fps, 1.0)
    weight = np.clip(1.0 - dist / (blend_frames + 1.0), 0.0, 1.0)
    return anchors[labels[nearest]], weight


def _two_bone_ik(root: np.ndarray, mid: np.ndarray, end: np.ndarray, target: np.ndarray,
                 len_a: float, len_b: float) -> tuple[np.ndarray, np.ndarray]:
    """New mid (knee) and end (ankle) positions (F, 3) reaching target, bending in the plane of
    the current mid joint."""
    to_target = target - root
    d = np.linalg.norm(to_target, axis=-1)
    e = to_target / np.maximum(d, 1e-9)[:, None]
    d = np.clip(d, abs(len_a - len_b) + 1e-4, (len_a + len_b) * 0.9999)
    along = (len_a**2 - len_b**2 + d**2) / (2.0 * d)
    height = np.sqrt(np.maximum(len_a**2 - along**2, 0.0))
    pole = mid - root
    pole = pole - np.sum(pole * e, axis=-1, keepdims=True) * e
    pole = pole / np.maximum(np.linalg.norm(pole, axis=-1, keepdims=True), 1e-9)
    new_mid = root + along[:, None] * e + height[:, None] * pole
    return new_mid, root + d[:, None] * e


def lock_feet(skeleton: Skeleton, rotations: np.ndarray, root_translation: np.ndarray,
              foot_contacts: dict[str, np.ndarray], fps: float, camera: np.ndarray
              ) -> tuple[np.ndarray, np.ndarray]:
    """Rotations (F, J, 4) and root translation (F, 3) with the ankles pinned during contact.

    foot_contacts: side ("left"/"right") -> (F,) bool, the foot touches the floor; camera: (3,)
    where the camera is. The root moves along the line of sight by the mean depth error of the
    locked feet; then only the upper leg, lower leg and foot local rotations change, and the foot
    keeps its global orientation.
    """
    _, g_pos = forward_kinematics(skeleton, rotations, root_translation)
    targets, shift, count = {}, np.zeros_like(root_translation), np.zeros(len(rotations))
    for side, contact in foot_contacts.items():
        ankle = g_pos[:, skeleton.index(f"{side}Foot")]
        anchor, weight = _segment_anchors(contact, ankle, fps)
        targets[side] = (anchor, weight)
        error = weight[:, None] * (anchor - ankle)
        shift += error - _across_view(error, ankle, camera)
        count += weight > 0
    root = root_translation + shift / np.maximum(count, 1)[:, None]

    out = rotations.copy()
    g_rot, g_pos = forward_kinematics(skeleton, rotations, root)
    for side, (anchor, weight) in targets.items():
        hip, knee, ankle = (skeleton.index(f"{side}{n}") for n in ("UpperLeg", "LowerLeg", "Foot"))
        if not weight.any():
            continue
        target = g_pos[:, ankle] + weight[:, None] * (anchor - g_pos[:, ankle])
        len_a = float(np.linalg.norm(skeleton.offsets[knee]))
        len_b = float(np.linalg.norm(skeleton.offsets[ankle]))
        new_knee, new_ankle = _two_bone_ik(g_pos[:, hip], g_pos[:, knee], g_pos[:, ankle], target,
                                           len_a, len_b)
        # Turn each bone by the shortest arc onto its new direction, keeping its twist.
        swing_a = quat.between(g_pos[:, knee] - g_pos[:, hip], new_knee - g_pos[:, hip])
        g_upper = quat.multiply(swing_a, g_rot[:, hip])
        carried = quat.rotate(swing_a, g_pos[:, ankle] - g_pos[:, knee])
        swing_b = quat.between(carried, new_ankle - new_knee)
        g_lower = quat.multiply(swing_b, quat.multiply(swing_a, g_rot[:, knee]))
        parent = skeleton.parents[hip]
        out[:, hip] = quat.multiply(quat.inverse(g_rot[:, parent]), g_upper)
        out[:, knee] = quat.multiply(quat.inverse(g_upper), g_lower)
        out[:, ankle] = quat.multiply(quat.inverse(g_lower), g_rot[:, ankle])
    return quat.make_continuous(quat.normalize(out), axis=0), root
