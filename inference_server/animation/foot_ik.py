"""Foot contacts and foot locking with analytic two-bone IK, vectorised over frames.

Contact points: the heel is the foot bone's head (the ankle), the toes are the toes bone's head.
While the heel is down the ankle is locked; while only the toes are down the toes are locked and
the ankle follows them rigidly, so a heel lifting off the ground still rolls over the toes.
"""

from __future__ import annotations

import numpy as np

from inference_server.motion import quat


def detect_contacts(points: np.ndarray, fps: float, leg_length: float, *,
                    height_margin: float = 0.06, speed_limit: float = 0.5, min_frames: int = 3) -> np.ndarray:
    """Contacts (F, P) bool of P foot points from their world positions (F, P, 3), Y-up metres.

    A point is in contact when it is within height_margin * leg_length of its own lowest height
    over the clip (5th percentile, robust to a glitch) and its horizontal speed is below
    speed_limit * leg_length per second. Runs shorter than min_frames are dropped.
    """
    f = points.shape[0]
    if f < 2:
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


def two_bone_ik(hip: np.ndarray, knee: np.ndarray, ankle: np.ndarray, target: np.ndarray,
                bend_axis: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """World rotations (upper, lower) (F, 4) that move a two-bone chain's end onto target.

    hip, knee, ankle, target: (F, 3) world positions. bend_axis: (F, 3) axis the knee bends about
    when the leg is straight (the character's left for a forward-bending knee).
    Apply upper_delta to the upper bone's world rotation and upper_delta * lower_delta to the
    lower bone's: returns (upper_delta, lower_delta). Unreachable targets are approached as closely
    as the bone lengths allow.
    """
    thigh = knee - hip
    shin = ankle - knee
    a = np.linalg.norm(thigh, axis=-1)
    b = np.linalg.norm(shin, axis=-1)
    reach = target - hip
    d = np.clip(np.linalg.norm(reach, axis=-1), np.abs(a - b) + 1e-6, a + b - 1e-6)
    # Knee bend (0 = straight) wanted by the law of cosines, and the current one.
    cos_inner = np.clip((a * a + b * b - d * d) / np.maximum(2 * a * b, 1e-12), -1.0, 1.0)
    want = np.pi - np.arccos(cos_inner)
    cos_now = np.clip(np.sum(thigh * shin, axis=-1) / np.maximum(a * b, 1e-12), -1.0, 1.0)
    now = np.arccos(cos_now)
    axis = np.cross(thigh, shin)
    straight = np.linalg.norm(axis, axis=-1) < 1e-6 * np.maximum(a * b, 1e-12)
    axis = np.where(straight[:, None], bend_axis, axis)
    lower_delta = quat.from_axis_angle(axis, want - now)
    new_ankle = knee + quat.rotate(lower_delta, shin)
    upper_delta = quat.between(new_ankle - hip, reach)
    return upper_delta, lower_delta
