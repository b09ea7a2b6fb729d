"""Host-neutral motion data: a skeleton and a clip of local rotations over time.

Conventions (DESIGN.md): metres, seconds, right-handed Y-up, quaternions (x, y, z, w). A character
at rest faces +Z with its left side towards +X (the VRM 1.0 / glTF convention).

Local rotations include the rest rotation: the global rotation of joint j is
    G[j] = G[parent[j]] * rotations[j]
and its global position is
    P[j] = P[parent[j]] + rotate(G[parent[j]], offsets[j])
with the root placed at root_translation (a world position) and G[root] = rotations[root].
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import IntEnum

import numpy as np

from inference_server.motion import quat
from keygrip.projection import VideoCamera
from keygrip.v1 import motion_pb2


class FrameFlag(IntEnum):
    """Per-frame provenance of a captured pose: keygrip.v1.FrameFlag's values, by name."""

    TRACKED = motion_pb2.FRAME_FLAG_TRACKED
    INTERPOLATED = motion_pb2.FRAME_FLAG_INTERPOLATED
    MISSING = motion_pb2.FRAME_FLAG_MISSING


@dataclass(init=False)
class Skeleton:
    """Joint hierarchy with its rest pose.

    names: joint names, parents before children.
    parents: (J,) int index of each joint's parent, -1 for the root.
    offsets: (J, 3) rest translation of each joint in its parent's frame, metres.
    rest_rotations: (J, 4) local rest rotations (x, y, z, w); identity for a skeleton whose rest
        pose is expressed in offsets alone (BVH, our canonical skeleton).
    """

    names: list[str]
    parents: np.ndarray
    offsets: np.ndarray
    rest_rotations: np.ndarray

    def __init__(self, names: list[str], parents: np.ndarray, offsets: np.ndarray,
                 rest_rotations: np.ndarray | None = None) -> None:
        self.names = names
        self.parents = np.asarray(parents, dtype=np.int64)
        self.offsets = np.asarray(offsets, dtype=np.float64).reshape(-1, 3)
        if rest_rotations is None:
            rest_rotations = quat.identity((len(self.names),))
        self.rest_rotations = np.asarray(rest_rotations, dtype=np.float64).reshape(-1, 4)
        n = len(self.names)
        if not (len(self.parents) == len(self.offsets) == len(self.rest_rotations) == n):
            raise ValueError("skeleton arrays must all have one entry per joint")
        for j, p in enumerate(self.parents):
            if p >= j:
                raise ValueError(f"joint {self.names[j]!r} is listed before its parent")

    @property
    def num_joints(self) -> int:
        return len(self.names)

    def index(self, name: str) -> int:
        return self.names.index(name)

    def children(self, j: int) -> list[int]:
        return [int(c) for c in np.nonzero(self.parents == j)[0]]

    def rest_global(self) -> tuple[np.ndarray, np.ndarray]:
        """Global rest rotations (J, 4) and positions (J, 3), root at the origin."""
        rot, pos = forward_kinematics(self, self.rest_rotations[None], np.zeros((1, 3)))
        return rot[0], pos[0]


@dataclass(init=False)
class MotionClip:
    """A skeleton animated over F frames.

    times: (F,) seconds from the first frame (real timestamps; variable frame rate is allowed).
    rotations: (F, J, 4) local rotations (x, y, z, w), rest included.
    root_translation: (F, 3) world position of the root joint, metres.
    confidence: (F, J) 0..1 per joint per frame.
    frame_flags: (F,) FrameFlag values.
    contact_names / contacts: (C,) names and (F, C) bool foot contacts
        (leftHeel, leftToes, rightHeel, rightToes for captured clips).
    face_names / face_curves: (K,) ARKit blendshape names and (F, K) weights in 0..1.
    warnings: what the user should know about how the clip was made (steps skipped on a short clip,
        smoothing limited by a low frame rate); in memory only, the capture job reports them.
    cameras: the cameras that filmed the motion, in the clip's world (none for motion from a file).
    """

    skeleton: Skeleton
    fps: float
    times: np.ndarray
    rotations: np.ndarray
    root_translation: np.ndarray
    confidence: np.ndarray
    frame_flags: np.ndarray
    contact_names: list[str]
    contacts: np.ndarray
    face_names: list[str]
    face_curves: np.ndarray
    metadata: dict[str, str]
    warnings: list[str]
    cameras: list[VideoCamera]

    def __init__(self, skeleton: Skeleton, fps: float, times: np.ndarray, rotations: np.ndarray,
                 root_translation: np.ndarray, confidence: np.ndarray | None = None,
                 frame_flags: np.ndarray | None = None, contact_names: list[str] | None = None,
                 contacts: np.ndarray | None = None, face_names: list[str] | None = None,
                 face_curves: np.ndarray | None = None, metadata: dict[str, str] | None = None,
                 warnings: list[str] | None = None, cameras: list[VideoCamera] | None = None) -> None:
        """Arrays left None get defaults: all confident, all tracked, no contact, no face."""
        self.skeleton = skeleton
        self.fps = fps
        self.times = np.asarray(times, dtype=np.float64)
        self.rotations = np.asarray(rotations, dtype=np.float64)
        self.root_translation = np.asarray(root_translation, dtype=np.float64)
        f, j = len(self.times), self.skeleton.num_joints
        if self.rotations.shape != (f, j, 4):
            raise ValueError(f"rotations must be ({f}, {j}, 4), got {self.rotations.shape}")
        if self.root_translation.shape != (f, 3):
            raise ValueError(f"root_translation must be ({f}, 3), got {self.root_translation.shape}")
        self.contact_names = [] if contact_names is None else contact_names
        self.face_names = [] if face_names is None else face_names
        self.metadata = {} if metadata is None else metadata
        self.warnings = [] if warnings is None else list(warnings)
        self.cameras = [] if cameras is None else list(cameras)
        self.confidence = np.ones((f, j), dtype=np.float32) if confidence is None else confidence
        self.frame_flags = np.full(f, FrameFlag.TRACKED, dtype=np.uint8) if frame_flags is None else frame_flags
        self.contacts = np.zeros((f, len(self.contact_names)), dtype=bool) if contacts is None else contacts
        self.face_curves = (np.zeros((f, len(self.face_names)), dtype=np.float32) if face_curves is None
                            else face_curves)

    @property
    def num_frames(self) -> int:
        return len(self.times)

    @property
    def frame_rate(self) -> float:
        """fps when it is a usable number, else what the times say (see frame_rate)."""
        return frame_rate(self.fps, self.times)

    def global_transforms(self) -> tuple[np.ndarray, np.ndarray]:
        """Global rotations (F, J, 4) and positions (F, J, 3)."""
        return forward_kinematics(self.skeleton, self.rotations, self.root_translation)


DEFAULT_FPS = 30.0


def frame_rate(fps: float, times: np.ndarray | None = None) -> float:
    """A usable frame rate: fps when it is a positive finite number, else one frame per median
    step of times (F,) seconds, else DEFAULT_FPS. Files without a frame rate (image sequences, a
    clip from elsewhere) and a damaged header give 0 or NaN; no filter or window may see those."""
    if np.isfinite(fps) and fps > 0:
        return float(fps)
    if times is not None and len(times) > 1:
        steps = np.diff(np.asarray(times, dtype=np.float64))
        steps = steps[np.isfinite(steps) & (steps > 0)]
        if len(steps) and np.isfinite(1.0 / np.median(steps)):
            return float(1.0 / np.median(steps))
    return DEFAULT_FPS


def forward_kinematics(
    skeleton: Skeleton, rotations: np.ndarray, root_translation: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """Global rotations and positions for local rotations (F, J, 4); loops over joints, not frames."""
    f = rotations.shape[0]
    j_count = skeleton.num_joints
    g_rot = np.empty((f, j_count, 4))
    g_pos = np.empty((f, j_count, 3))
    for j in range(j_count):
        p = skeleton.parents[j]
        if p < 0:
            g_rot[:, j] = rotations[:, j]
            g_pos[:, j] = root_translation
        else:
            g_rot[:, j] = quat.multiply(g_rot[:, p], rotations[:, j])
            g_pos[:, j] = g_pos[:, p] + quat.rotate(g_rot[:, p], skeleton.offsets[j])
    return g_rot, g_pos
