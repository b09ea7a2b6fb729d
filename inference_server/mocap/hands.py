"""Finger joints from MediaPipe hand landmarks: 15 rotations per hand.

Hand landmarks are image-space (x, y in the normalised image, z relative depth on the x scale), so
they are turned into pixels, flipped into the Y-up camera frame the body uses, and only their
directions are used: each finger segment is the smallest turn from where its parent carries it to
where the landmarks point. The palm orientation (wrist, index and little-finger knuckles) replaces
the coarse hand orientation the body landmarks give.

Rest pose: fingers straight along the hand (+X for the left hand, -X for the right), the thumb
45 degrees forward; the knuckles where the clip's median hand puts them.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from inference_server.mocap import filters
from inference_server.mocap.landmarks import Landmarks
from inference_server.mocap.skeleton_fit import BodyMeasures, frame_rotation, to_y_up
from inference_server.motion import quat
from inference_server.motion.clip import FrameFlag
from keygrip import humanoid

WRIST, INDEX_MCP, MIDDLE_MCP, PINKY_MCP = 0, 5, 9, 17
# Hand landmark of each finger's first joint; the next three landmarks follow along the finger.
_FINGER_BASE = {"Thumb": 1, "Index": 5, "Middle": 9, "Ring": 13, "Little": 17}
# Palm length (wrist to middle knuckle) per forearm length, adult proportions: hand landmarks
# carry no metric scale of their own.
_PALM_PER_FOREARM = 0.4
_SIDES = {"left": 1.0, "right": -1.0}


@dataclass
class HandTracks:
    """Gap-filled, filtered hand landmarks in the Y-up camera frame, per side.

    points: side -> (F, 21, 3) in pixels (only directions and ratios are used);
    flags: side -> (F,) FrameFlag of the hand's own detection.
    """

    points: dict[str, np.ndarray]
    flags: dict[str, np.ndarray]

    @classmethod
    def from_landmarks(cls, lm: Landmarks, present: np.ndarray, max_gap: int, fps: float,
                       cutoff_hz: float | None, level: np.ndarray) -> HandTracks:
        """Hand tracks of both hands; level (4,) is the rotation that levelled the body's world."""
        w, _ = lm.image_size
        scale = np.array([w, lm.image_size[1], w], dtype=np.float64)
        points, flags = {}, {}
        for side, raw in (("left", lm.left_hand_image), ("right", lm.right_hand_image)):
            if raw is None:
                continue
            valid = present & np.all(np.isfinite(raw), axis=(1, 2))
            if not valid.any():
                continue
            filled, fl = filters.fill_gaps(quat.rotate(level, to_y_up(raw * scale)), valid, max_gap)
            points[side] = filters.lowpass(filled, fps, cutoff_hz)
            flags[side] = fl
        return cls(points, flags)

    def palm_rotation(self, side: str) -> np.ndarray:
        """Global hand rotation (F, 4) from the palm: wrist to middle knuckle, index to little."""
        p = self.points[side]
        return frame_rotation(p[:, MIDDLE_MCP] - p[:, WRIST], p[:, INDEX_MCP] - p[:, PINKY_MCP],
                              np.array([_SIDES[side], 0.0, 0.0]), np.array([0.0, 0.0, 1.0]))


def _rest_direction(side: str, finger: str) -> np.ndarray:
    x = _SIDES[side]
    d = np.array([x, 0.0, 1.0]) if finger == "Thumb" else np.array([x, 0.0, 0.0])
    return d / np.linalg.norm(d)


def finger_offsets(tracks: HandTracks, measures: BodyMeasures) -> dict[str, np.ndarray]:
    """Rest offsets of all 30 finger joints (name -> (3,)), metres.

    A hand never seen in the clip gets the other hand's proportions mirrored, or, with no hand at
    all, a generic hand scaled to the forearm.
    """
    palm_m = _PALM_PER_FOREARM * measures.forearm
    shapes: dict[str, tuple[np.ndarray, np.ndarray]] = {}
    for side, p in tracks.points.items():
        tracked = tracks.flags[side] == FrameFlag.TRACKED
        pts = p[tracked] if tracked.any() else p
        to_m = palm_m / np.median(np.linalg.norm(pts[:, MIDDLE_MCP] - pts[:, WRIST], axis=-1))
        # Knuckles in the palm's own frame, mirrored to a left hand, and segment lengths.
        palm = tracks.palm_rotation(side)
        inv = quat.inverse(palm[tracked] if tracked.any() else palm)
        local = quat.rotate(inv[:, None], pts - pts[:, :1]) * to_m
        if side == "right":
            local[..., 0] *= -1.0
        seg = np.linalg.norm(np.diff(pts[:, 1:].reshape(len(pts), 5, 4, 3), axis=2), axis=-1) * to_m
        shapes[side] = (np.median(local, axis=0), np.median(seg, axis=0))
    if not shapes:
        generic = np.array([[0.25, 0.0, 0.25], [1.0, 0.0, 0.2], [1.0, 0.0, 0.0], [0.95, 0.0, -0.2],
                            [0.9, 0.0, -0.4]]) * palm_m
        knuckles = np.zeros((21, 3))
        knuckles[[1, 5, 9, 13, 17]] = generic
        shapes["left"] = (knuckles, np.full((5, 3), 0.3 * palm_m))
    offsets: dict[str, np.ndarray] = {}
    for side, mirror in _SIDES.items():
        local, seg = shapes.get(side) or shapes[next(iter(shapes))]
        for fi, finger in enumerate(humanoid.FINGERS):
            names = [n for n in humanoid.HAND_JOINTS[side] if n.startswith(f"{side}{finger}")]
            base = local[_FINGER_BASE[finger]] * np.array([mirror, 1.0, 1.0])
            offsets[names[0]] = base
            for k in (1, 2):
                offsets[names[k]] = _rest_direction(side, finger) * seg[fi, k - 1]
    return offsets


def apply_finger_rotations(tracks: HandTracks, g_rot: np.ndarray, confidence: np.ndarray,
                           names: list[str]) -> None:
    """Fill hand and finger global rotations (F, J, 4) and confidences (F, J) in place.

    Frames where a hand is missing keep the body's hand orientation and straight fingers.
    """
    for side, p in tracks.points.items():
        seen = tracks.flags[side] != FrameFlag.MISSING
        hand = names.index(f"{side}Hand")
        g_rot[:, hand] = np.where(seen[:, None], tracks.palm_rotation(side), g_rot[:, hand])
        conf = np.where(tracks.flags[side] == FrameFlag.TRACKED, 1.0,
                        np.where(seen, 0.5, 0.0)).astype(np.float32)
        for finger in humanoid.FINGERS:
            parent_rot = g_rot[:, hand]
            rest = _rest_direction(side, finger)
            base = _FINGER_BASE[finger]
            for k, name in enumerate(n for n in humanoid.HAND_JOINTS[side]
                                     if n.startswith(f"{side}{finger}")):
                observed = p[:, base + k + 1] - p[:, base + k]
                # The segment starts aligned with its parent, then swings onto the observation.
                carried = quat.rotate(parent_rot, rest)
                rot = quat.multiply(quat.between(carried, observed), parent_rot)
                rot = np.where(seen[:, None], rot, parent_rot)
                j = names.index(name)
                g_rot[:, j] = rot
                confidence[:, j] = conf
                parent_rot = rot
        confidence[:, hand] = np.maximum(confidence[:, hand], conf)
