"""Foot contacts and foot locking: the one place where feet are pinned to the ground, for a
captured skeleton (mocap/solve.py) and for a retargeted rig (animation/retarget.py) alike.

Contacts, two ways:
- floor_contacts: the floor (y = 0) and the camera are known, as after a capture. Height above the
  floor and speed with hysteresis (entering contact needs the point low and slow, leaving it needs
  it clearly up or moving), so noise near the thresholds does not make contacts flicker. From one
  camera, speeds are measured across its line of sight (depth is the least certain direction); a
  body triangulated from calibrated cameras is measured in every direction.
- relative_contacts: nothing is known about the floor, as for a BVH from elsewhere. Each point is
  compared with its own lowest height over the clip, speeds are scaled by the leg length.

Locking, two ways, both with the same leg solver (two_bone_ik):
- lock_skeleton_feet (captures): each contact run pins the ankle at its mean 3D position, blending in
  and out. From one camera the whole body first moves along the camera's line of sight (where a
  capture's depth jitter lives) before the legs bend for what is left; a body triangulated from
  calibrated cameras keeps its place, and a lock lets go of a foot that moves away from its anchor.
- lock_offsets (retargeting): horizontal offsets that pin a heel or toe point on the ground plane;
  animation/retarget.py turns them into leg rotations on the rig.
"""

from __future__ import annotations

import numpy as np
from scipy import ndimage

from inference_server.motion import quat
from inference_server.motion.clip import Skeleton, forward_kinematics

# floor_contacts thresholds for a contact point (metres above the floor, metres per second horizontally).
HEIGHT_ON, HEIGHT_OFF = 0.06, 0.10
SPEED_ON, SPEED_OFF = 0.35, 0.60
# Contacts and gaps between them shorter than this are noise: 3 frames at 60 fps, and never under
# 2 frames, so that a one-frame flicker is dropped at any frame rate.
MIN_CONTACT_S = 0.05
_BLEND_S = 0.1  # blend time into and out of a lock, seconds
# A foot triangulated from calibrated cameras is placed to within about a centimetre: a lock that
# would move it further than this is holding a foot that moves (a contact found too long, a foot
# lifting slowly), so its hold fades out between once and twice this far (metres). On the Pose2Sim
# trial a full hold to the end of such a run pulled a lifting foot down and swung the nearly
# straight standing knee by up to 12 cm.
TRIANGULATED_HOLD_M = 0.02


def min_contact_frames(fps: float) -> int:
    """Frames a contact must last at fps (MIN_CONTACT_S, at least 2); a clip shorter than this has
    no contacts to find, and nothing to lock."""
    frames = MIN_CONTACT_S * fps if np.isfinite(fps) and fps > 0 else 0.0
    return max(2, int(round(frames)))


# Contacts ----------------------------------------------------------------------------------------

def _across_view(vectors: np.ndarray, points: np.ndarray, camera: np.ndarray) -> np.ndarray:
    """Components of vectors (..., 3) at points (..., 3) normal to the camera's line of sight."""
    ray = points - camera
    ray = ray / np.maximum(np.linalg.norm(ray, axis=-1, keepdims=True), 1e-9)
    return vectors - np.sum(vectors * ray, axis=-1, keepdims=True) * ray


def floor_contacts(points: np.ndarray, fps: float, camera: np.ndarray | None) -> np.ndarray:
    """Contacts (F, C) bool for contact points (F, C, 3), Y-up metres with the floor at y = 0,
    seen from one camera at camera (3,), or triangulated from calibrated views (None: speeds in every
    direction count). Clips shorter than min_contact_frames(fps) have none."""
    f = len(points)
    min_frames = min_contact_frames(fps)
    if f < min_frames:
        return np.zeros(points.shape[:2], dtype=bool)
    height = points[..., 1]
    velocity = np.gradient(points, axis=0)
    if camera is not None:
        velocity = _across_view(velocity, points, camera)
    speed = np.linalg.norm(velocity[..., [0, 2]], axis=-1) * fps
    on = (height < HEIGHT_ON) & (speed < SPEED_ON)
    off = (height > HEIGHT_OFF) | (speed > SPEED_OFF)
    # Hysteresis without a frame loop: each frame takes the state of the latest on/off event.
    idx = np.arange(f)[:, None]
    last_on = np.maximum.accumulate(np.where(on, idx, -1), axis=0)
    last_off = np.maximum.accumulate(np.where(off, idx, -1), axis=0)
    state = last_on > last_off
    structure = np.ones((min_frames, 1), dtype=bool)
    state = ndimage.binary_closing(state, structure=structure, border_value=0) | state
    return np.asarray(ndimage.binary_opening(state, structure=structure))


def relative_contacts(points: np.ndarray, fps: float, leg_length: float, *, height_margin: float = 0.06,
                      speed_limit: float = 0.5, min_frames: int | None = None) -> np.ndarray:
    """Contacts (F, P) bool of P foot points from their world positions (F, P, 3), Y-up metres.

    A point is in contact when it is within height_margin * leg_length of its own lowest height
    over the clip (5th percentile, robust to a glitch) and its horizontal speed is below
    speed_limit * leg_length per second. Runs shorter than min_frames (None: min_contact_frames(fps))
    are dropped.
    """
    f = points.shape[0]
    if min_frames is None:
        min_frames = min_contact_frames(fps)
    if f < max(2, min_frames):
        return np.zeros(points.shape[:2], dtype=bool)
    floor = np.percentile(points[..., 1], 5, axis=0)
    low = points[..., 1] < floor + height_margin * leg_length
    vel = np.gradient(points[..., [0, 2]], axis=0) * fps
    slow = np.linalg.norm(vel, axis=-1) < speed_limit * leg_length
    contact = low & slow
    for p in range(contact.shape[1]):
        for start, end in spans(contact[:, p]):
            if end - start < min_frames:
                contact[start:end, p] = False
    return contact


def spans(mask: np.ndarray) -> list[tuple[int, int]]:
    """[start, end) runs of True in a (F,) bool array."""
    m = np.concatenate([[False], np.asarray(mask, dtype=bool), [False]])
    edges = np.flatnonzero(np.diff(m.astype(np.int8)))
    return list(zip(edges[::2].tolist(), edges[1::2].tolist(), strict=True))


# Lock targets ------------------------------------------------------------------------------------

def segment_anchors(contact: np.ndarray, positions: np.ndarray, fps: float) -> tuple[np.ndarray, np.ndarray]:
    """Lock targets (F, 3) and blend weights (F,) for one point.

    Each contact segment pins the point at its mean position over the segment; frames just
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


def lock_offsets(point: np.ndarray, contact: np.ndarray, blend_frames: int) -> np.ndarray:
    """Horizontal offsets (F, 3) that pin `point` (F, 3) during each contact run.

    Each run is pinned at the mean position of the point over the run; outside runs the offset
    of the nearest run edge fades linearly to zero over blend_frames so the leg does not pop.
    Linear in F whatever the number of runs (long clips have thousands of steps).
    """
    f = len(point)
    offset = np.zeros((f, 3))
    runs = spans(contact)
    if not runs:
        return offset
    starts = np.array([r[0] for r in runs])
    ends = np.array([r[1] for r in runs])
    run_of = np.cumsum(np.bincount(starts, minlength=f + 1)[:f]) - 1  # last run started at or before
    xz = point[:, [0, 2]]
    sums = np.add.reduceat(np.where(contact[:, None], xz, 0.0), starts, axis=0)
    anchors = sums / (ends - starts)[:, None]
    inside = contact.astype(bool)
    inside_xz = anchors[run_of[inside]] - xz[inside]
    offset[np.flatnonzero(inside)[:, None], [0, 2]] = inside_xz
    # Outside: the previous run's last offset and the next run's first, whichever weighs more.
    frames = np.arange(f)
    prev_run = run_of
    next_run = np.searchsorted(starts, frames, side="left")
    blend = max(blend_frames, 1)
    w_prev = np.where(prev_run >= 0, 1.0 - (frames - ends[np.maximum(prev_run, 0)] + 1) / blend, 0.0)
    w_next = np.where(next_run < len(runs), 1.0 - (starts[np.minimum(next_run, len(runs) - 1)] - frames) / blend,
                      0.0)
    edge_prev = anchors[np.maximum(prev_run, 0)] - xz[np.clip(ends[np.maximum(prev_run, 0)] - 1, 0, f - 1)]
    edge_next = anchors[np.minimum(next_run, len(runs) - 1)] - xz[starts[np.minimum(next_run, len(runs) - 1)]]
    use_prev = w_prev >= w_next
    w = np.clip(np.where(use_prev, w_prev, w_next), 0.0, 1.0)
    edge = np.where(use_prev[:, None], edge_prev, edge_next)
    outside = ~inside
    offset[np.flatnonzero(outside)[:, None], [0, 2]] = edge[outside] * w[outside, None]
    return offset


# The leg solver ----------------------------------------------------------------------------------

def two_bone_ik(root: np.ndarray, mid: np.ndarray, end: np.ndarray, target: np.ndarray,
                bend_axis: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
    """World-rotation changes (upper, lower) (F, 4) that put a two-bone chain's end on target.

    root, mid, end, target: (F, 3) world positions of the chain's top (hip), its joint (knee), its
    end (ankle) and where the end should go. The bones keep their lengths; the joint is placed
    analytically (law of cosines) in the plane of the target direction and its current position,
    so a knee keeps pointing where it did. bend_axis: (F, 3) axis a straight chain bends about
    (the character's left for a knee that bends forward), used only where the joint lies on the
    line to the target. Targets beyond reach are approached as far as a slightly bent chain allows,
    which keeps the bend direction defined.

    Turn the upper bone's world rotation by `upper` and the lower bone's by `lower` (which already
    includes `upper`): each bone turns by the shortest arc onto its new direction, keeping its twist.
    """
    len_a = np.linalg.norm(mid - root, axis=-1)
    len_b = np.linalg.norm(end - mid, axis=-1)
    to_target = target - root
    d = np.linalg.norm(to_target, axis=-1)
    e = to_target / np.maximum(d, 1e-9)[:, None]
    d = np.clip(d, np.abs(len_a - len_b) + 1e-4, (len_a + len_b) * 0.9999)
    along = (len_a**2 - len_b**2 + d**2) / (2.0 * d)
    height = np.sqrt(np.maximum(len_a**2 - along**2, 0.0))
    pole = mid - root
    pole = pole - np.sum(pole * e, axis=-1, keepdims=True) * e
    size = np.linalg.norm(pole, axis=-1)
    if bend_axis is not None:
        straight = size < 1e-6 * np.maximum(len_a, 1e-12)
        pole = np.where(straight[:, None], np.cross(e, bend_axis), pole)
        size = np.linalg.norm(pole, axis=-1)
    pole = pole / np.maximum(size, 1e-9)[:, None]
    new_mid = root + along[:, None] * e + height[:, None] * pole
    new_end = root + d[:, None] * e
    upper = quat.between(mid - root, new_mid - root)
    carried = quat.rotate(upper, end - mid)
    lower = quat.multiply(quat.between(carried, new_end - new_mid), upper)
    return upper, lower


# Locking a skeleton's feet -----------------------------------------------------------------------

def lock_skeleton_feet(skeleton: Skeleton, rotations: np.ndarray, root_translation: np.ndarray,
                       foot_contacts: dict[str, np.ndarray], fps: float,
                       camera: np.ndarray | None) -> tuple[np.ndarray, np.ndarray]:
    """Rotations (F, J, 4) and root translation (F, 3) with the ankles pinned during contact.

    skeleton: a humanoid with VRM joint names (leftUpperLeg, leftLowerLeg, leftFoot, ...).
    foot_contacts: side ("left"/"right") -> (F,) bool, the foot touches the floor. Each contact run
    pins the ankle at its mean position over the run. camera: (3,) where the one camera is: the
    root first moves along its line of sight by the mean depth error of the locked feet (where one
    view's depth jitter lives). None, a body triangulated from calibrated views, placed as well in
    every direction: the root stays, and a lock holds the ankle only while it is within
    TRIANGULATED_HOLD_M of its anchor, letting go by twice that.
    Then only the upper leg, lower leg and foot local rotations change, and the foot keeps its
    global orientation.
    """
    _, g_pos = forward_kinematics(skeleton, rotations, root_translation)
    errors: dict[str, tuple[np.ndarray, np.ndarray]] = {}
    shift, count = np.zeros_like(root_translation), np.zeros(len(rotations))
    for side, contact in foot_contacts.items():
        ankle = g_pos[:, skeleton.index(f"{side}Foot")]
        anchor, weight = segment_anchors(contact, ankle, fps)
        error = weight[:, None] * (anchor - ankle)
        if camera is not None:
            shift += error - _across_view(error, ankle, camera)
            count += weight > 0
        else:
            hold = np.clip(2.0 - np.linalg.norm(anchor - ankle, axis=-1) / TRIANGULATED_HOLD_M, 0.0, 1.0)
            error, weight = error * hold[:, None], weight * hold
        errors[side] = (error, weight)
    shift /= np.maximum(count, 1)[:, None]
    root = root_translation + shift

    out = rotations.copy()
    g_rot, g_pos = forward_kinematics(skeleton, rotations, root)
    side_axis = g_pos[:, skeleton.index("leftUpperLeg")] - g_pos[:, skeleton.index("rightUpperLeg")]
    for side, (error, weight) in errors.items():
        hip, knee, foot = (skeleton.index(f"{side}{n}") for n in ("UpperLeg", "LowerLeg", "Foot"))
        if not weight.any():
            continue
        # The root's move carried the locked share of the error along already.
        target = g_pos[:, foot] + error - weight[:, None] * shift
        upper, lower = two_bone_ik(g_pos[:, hip], g_pos[:, knee], g_pos[:, foot], target, side_axis)
        g_upper = quat.multiply(upper, g_rot[:, hip])
        g_lower = quat.multiply(lower, g_rot[:, knee])
        parent = skeleton.parents[hip]
        out[:, hip] = quat.multiply(quat.inverse(g_rot[:, parent]), g_upper)
        out[:, knee] = quat.multiply(quat.inverse(g_upper), g_lower)
        out[:, foot] = quat.multiply(quat.inverse(g_lower), g_rot[:, foot])
    return quat.make_continuous(quat.normalize(out), axis=0), root
