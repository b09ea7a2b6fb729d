"""Raw per-frame MediaPipe output for one clip: the hand-off between inference and solving.

TDs want these raw values too, so they are kept and exported next to the solved skeleton.
Missing detections are NaN (never zeros), so that no solver mistakes them for a pose.
"""

from __future__ import annotations

from dataclasses import dataclass, fields
from pathlib import Path

import numpy as np


@dataclass
class Landmarks:
    """MediaPipe landmarks of one subject over F frames, in the displayed (rotation-applied) image.

    times: (F,) seconds of each frame from the clip start (real timestamps).
    frame_indices: (F,) int index of each frame in the source video.
    image_size: (width, height) of the displayed full-resolution frames, pixels.
    fps: nominal frame rate of the source.
    pose_image: (F, 33, 3) x and y normalised to [0, 1] of image width and height, z MediaPipe's
        relative depth (same scale as x); NaN where no person was found.
    pose_world: (F, 33, 3) MediaPipe world landmarks: metres, origin between the hips,
        MediaPipe axes (x to the image right, y down, z away from the camera); NaN where missing.
    pose_visibility: (F, 33) 0..1 visibility of each pose landmark; 0 where missing.
    pose_present: (F,) bool, a person was found in the frame.
    left_hand_image / right_hand_image: (F, 21, 3) the subject's own left / right hand, normalised
        image coordinates as pose_image; NaN where the hand was not found. None when hands were
        not asked for.
    face_image: (F, 468, 3) face mesh, normalised image coordinates; NaN where no face. None when
        the face was not asked for.
    """

    times: np.ndarray
    frame_indices: np.ndarray
    image_size: tuple[int, int]
    fps: float
    pose_image: np.ndarray
    pose_world: np.ndarray
    pose_visibility: np.ndarray
    pose_present: np.ndarray
    left_hand_image: np.ndarray | None = None
    right_hand_image: np.ndarray | None = None
    face_image: np.ndarray | None = None

    @property
    def num_frames(self) -> int:
        return len(self.times)

    def save_npz(self, path: str | Path) -> None:
        arrays = {}
        for f in fields(self):
            value = getattr(self, f.name)
            if value is not None:
                arrays[f.name] = np.asarray(value)
        np.savez_compressed(path, **arrays)

    @classmethod
    def load_npz(cls, path: str | Path) -> Landmarks:
        with np.load(path) as data:
            kwargs = {k: data[k] for k in data.files}
        kwargs["image_size"] = tuple(int(v) for v in kwargs["image_size"])
        kwargs["fps"] = float(kwargs["fps"])
        return cls(**kwargs)
